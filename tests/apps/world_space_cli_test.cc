// `register` and `apply` in world space (CLI.md): a moving image on another grid is resampled into
// the fixed image's world with one stderr line saying so; every output carries the fixed affine; a
// pair that does not overlap in the world is refused (exit 2, nothing written); `apply` carries
// label maps on any grid through world coordinates.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <numbers>
#include <string>

#include <Eigen/Geometry>

#include "registration/image_io.h"
#include "registration/world_space.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;
namespace reg = diffeoflow::registration;
using diffeoflow::testing::CliRun;

reg::Grid MakeGrid(std::array<int, 3> size, double spacing, std::array<double, 3> origin,
                   const Eigen::Matrix3d& direction) {
  reg::Grid g;
  g.dim = 2;
  g.size = size;
  g.spacing_mm = {spacing, spacing, 1.0};
  g.origin_mm = origin;
  g.direction = direction;
  return g;
}

template <typename F>
reg::Image Sampled(const reg::Grid& grid, F f) {
  reg::Image image{grid, Eigen::VectorXd(grid.voxels())};
  for (int j = 0; j < grid.size[1]; ++j) {
    for (int i = 0; i < grid.size[0]; ++i) {
      image.data[grid.index(i, j)] = f(grid.VoxelToPhysical(Eigen::Vector3d(i, j, 0)));
    }
  }
  return image;
}

// A disc of radius 8 mm with a smooth edge, centred at (1, −2) mm.
double Disc(const Eigen::Vector3d& p) {
  return 0.5 * (1.0 - std::tanh((std::hypot(p[0] - 1.0, p[1] + 2.0) - 8.0) / 2.0));
}

// Labels: 6 mm blocks numbered 1 + bx + 10 by inside a circle of radius 14 mm, 0 outside.
constexpr double kBlock = 6.0, kRadius = 14.0;
int Label(const Eigen::Vector3d& p) {
  if (std::hypot(p[0], p[1]) > kRadius) return 0;
  return 1 + static_cast<int>(std::floor((p[0] + 18.0) / kBlock)) +
         10 * static_cast<int>(std::floor((p[1] + 18.0) / kBlock));
}
// Distance from p to the nearest edge of the label function.
double DistanceToLabelEdge(const Eigen::Vector3d& p) {
  auto to_edge = [](double x) {
    const double r = std::fmod(x + 18.0, kBlock);
    return std::min(r, kBlock - r);
  };
  return std::min({to_edge(p[0]), to_edge(p[1]), std::abs(std::hypot(p[0], p[1]) - kRadius)});
}

Eigen::Matrix3d FlipX() { return Eigen::Vector3d(-1.0, 1.0, 1.0).asDiagonal(); }

class WorldSpaceCli : public diffeoflow::testing::CliTest {
 protected:
  WorldSpaceCli() : CliTest("", "diffeoflow_world_space_cli_") {}
  void SetUp() override {
    CliTest::SetUp();
    // Fixed: 32 × 32 voxels of 1 mm, RAS. Moving: the same disc, LAS, 1.25 mm voxels, 28 × 26.
    fixed_grid_ = MakeGrid({32, 32, 1}, 1.0, {-15.5, -15.5, 0.0}, Eigen::Matrix3d::Identity());
    reg::WriteImage(P("fixed.nii.gz"), Sampled(fixed_grid_, Disc));
    reg::WriteImage(P("moving_las.nii.gz"),
                    Sampled(MakeGrid({28, 26, 1}, 1.25, {17.0, -16.0, 0.0}, FlipX()), Disc));
    reg::WriteImage(P("far.nii.gz"), Sampled(MakeGrid({32, 32, 1}, 1.0, {1000.0, 1000.0, 0.0},
                                                      Eigen::Matrix3d::Identity()),
                                             Disc));
    // Labels (int16) at 0.8 mm, LAS and rotated by 15 degrees, centred on the fixed grid: its
    // field of view (32 mm square) leaves the fixed grid's corners uncovered.
    const Eigen::Matrix3d direction =
        Eigen::AngleAxisd(15.0 * std::numbers::pi / 180.0, Eigen::Vector3d::UnitZ())
            .toRotationMatrix() *
        FlipX();
    labels_grid_ = MakeGrid({40, 40, 1}, 0.8, {0.0, 0.0, 0.0}, direction);
    const Eigen::Vector3d origin = -labels_grid_.VoxelToPhysical(Eigen::Vector3d(19.5, 19.5, 0));
    labels_grid_.origin_mm = {origin[0], origin[1], 0.0};
    reg::Image labels = Sampled(labels_grid_, [](const Eigen::Vector3d& p) { return Label(p); });
    reg::WriteImage(P("labels.nii.gz"), labels, reg::ElementType::kInt16);
  }
  std::string P(const std::string& name) const { return (dir_ / name).string(); }

  reg::Grid fixed_grid_, labels_grid_;
};

TEST_F(WorldSpaceCli, RegisterResamplesTheMovingImageSaysSoAndWritesTheFixedAffine) {
  const CliRun run =
      Run("register --fixed " + P("fixed.nii.gz") + " --moving " + P("moving_las.nii.gz") +
          " --out " + P("out") + " --levels 1 --iterations 3 --steps 2");
  ASSERT_EQ(run.status, 0) << run.output();
  // One line on stderr: what differed, and that the moving image was resampled.
  const std::string note = "diffeoflow: note: --moving is on another grid than --fixed";
  const auto at = run.err.find(note);
  ASSERT_NE(at, std::string::npos) << run.err;
  EXPECT_EQ(run.err.find(note, at + 1), std::string::npos) << run.err;
  const std::string line = run.err.substr(at, run.err.find('\n', at) - at);
  for (const char* words : {"size 28x26 vs 32x32", "spacing 1.25x1.25 vs 1x1 mm",
                            "orientation LA vs RA", "resampled"}) {
    EXPECT_NE(line.find(words), std::string::npos) << words << " in: " << line;
  }

  const reg::Grid fixed = reg::ReadImage(P("fixed.nii.gz")).grid;
  const reg::Grid grids[] = {reg::ReadImage(P("out/warped.nii.gz")).grid,
                             reg::ReadImage(P("out/jacobian.nii.gz")).grid,
                             reg::ReadVectorField(P("out/displacement.nii.gz")).grid};
  for (const reg::Grid& g : grids) {
    EXPECT_EQ(g.size, fixed.size);
    EXPECT_EQ(g.spacing_mm[0], fixed.spacing_mm[0]);
    EXPECT_EQ(g.spacing_mm[1], fixed.spacing_mm[1]);
    EXPECT_EQ(g.origin_mm, fixed.origin_mm);
    EXPECT_EQ(g.direction, fixed.direction);
  }
  // The warped moving image is the disc on the fixed grid (not mirrored, not offset).
  const reg::Image warped = reg::ReadImage(P("out/warped.nii.gz"));
  const reg::Image expected = Sampled(fixed_grid_, Disc);
  EXPECT_LT((warped.data - expected.data).cwiseAbs().maxCoeff(), 0.1);

  // --quiet: no note.
  const CliRun quiet =
      Run("register --fixed " + P("fixed.nii.gz") + " --moving " + P("moving_las.nii.gz") +
          " --out " + P("out_quiet") + " --levels 1 --iterations 3 --steps 2 --quiet");
  ASSERT_EQ(quiet.status, 0) << quiet.output();
  EXPECT_EQ(quiet.err, "");
  // The same grid: no note.
  const CliRun same =
      Run("register --fixed " + P("fixed.nii.gz") + " --moving " + P("fixed.nii.gz") + " --out " +
          P("out_same") + " --levels 1 --iterations 3 --steps 2");
  ASSERT_EQ(same.status, 0) << same.output();
  EXPECT_EQ(same.err.find("note"), std::string::npos) << same.err;
}

TEST_F(WorldSpaceCli, PairsThatDoNotOverlapInTheWorldAreRefused) {
  for (const std::string command : {"register", "compare"}) {
    const CliRun run =
        Run(command + " --fixed " + P("fixed.nii.gz") + " --moving " + P("far.nii.gz") + " --out " +
            P("out") + " --levels 1 --iterations 3 --steps 2");
    EXPECT_EQ(run.status, 2) << run.output();
    for (const std::string& words :
         {"--moving " + P("far.nii.gz"), "--fixed " + P("fixed.nii.gz"),
          std::string("do not overlap"), std::string("[999.5, 1031.5] x [999.5, 1031.5] mm"),
          std::string("[-16, 16] x [-16, 16] mm")}) {
      EXPECT_NE(run.err.find(words), std::string::npos) << words << " in: " << run.err;
    }
    EXPECT_FALSE(fs::exists(P("out"))) << command;
  }
}

TEST_F(WorldSpaceCli, ApplyCarriesLabelsOnAnotherGridThroughWorldCoordinates) {
  // No iterations: φ is the identity, so what comes back is the label map resampled into the
  // fixed grid through the three affines (fixed, moving, labels).
  const CliRun reg_run =
      Run("register --fixed " + P("fixed.nii.gz") + " --moving " + P("moving_las.nii.gz") +
          " --out " + P("out") + " --iterations 0 --quiet");
  ASSERT_EQ(reg_run.status, 0) << reg_run.output();
  const CliRun apply =
      Run("apply --transform " + P("out") + " --image " + P("labels.nii.gz") +
          " --interpolation nearest --out " + P("labels_on_fixed.nii.gz") + " --quiet");
  ASSERT_EQ(apply.status, 0) << apply.output();
  const reg::Image labels = reg::ReadImage(P("labels_on_fixed.nii.gz"));
  EXPECT_EQ(labels.source_type, reg::ElementType::kInt16);
  const reg::Grid fixed = reg::ReadImage(P("fixed.nii.gz")).grid;
  EXPECT_EQ(labels.grid.origin_mm, fixed.origin_mm);
  EXPECT_EQ(labels.grid.direction, fixed.direction);

  long checked = 0, outside = 0;
  for (int j = 0; j < 32; ++j) {
    for (int i = 0; i < 32; ++i) {
      const Eigen::Vector3d p = fixed_grid_.VoxelToPhysical(Eigen::Vector3d(i, j, 0));
      const Eigen::Vector3d q = labels_grid_.PhysicalToVoxel(p);
      const double value = labels.data[fixed_grid_.index(i, j)];
      if (q[0] < -0.501 || q[1] < -0.501 || q[0] > 39.501 || q[1] > 39.501) {
        EXPECT_EQ(value, 0.0) << i << ", " << j;  // the labels' background
        ++outside;
      } else if (DistanceToLabelEdge(p) > 0.6) {  // > half a label voxel's diagonal (0.57 mm)
        EXPECT_EQ(value, Label(p)) << i << ", " << j;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 300);  // of 1024: the rest lies within 0.6 mm of a label edge or outside
  EXPECT_GT(outside, 8);

  // --default-value fills what the labels do not cover.
  const CliRun filled =
      Run("apply --transform " + P("out") + " --image " + P("labels.nii.gz") +
          " --interpolation nearest --default-value 99 --out " + P("filled.nii.gz") + " --quiet");
  ASSERT_EQ(filled.status, 0) << filled.output();
  const reg::Image f = reg::ReadImage(P("filled.nii.gz"));
  EXPECT_EQ((f.data.array() == 99.0).count(), outside);

  // The moving image itself comes back as the disc on the fixed grid (linear).
  const CliRun image = Run("apply --transform " + P("out") + " --image " + P("moving_las.nii.gz") +
                           " --out " + P("moving_on_fixed.nii.gz") + " --quiet");
  ASSERT_EQ(image.status, 0) << image.output();
  const reg::Image back = reg::ReadImage(P("moving_on_fixed.nii.gz"));
  EXPECT_LT((back.data - Sampled(fixed_grid_, Disc).data).cwiseAbs().maxCoeff(), 0.06);

  // An image elsewhere in the world: refused, naming --image.
  const CliRun far = Run("apply --transform " + P("out") + " --image " + P("far.nii.gz") +
                         " --out " + P("far_out.nii.gz"));
  EXPECT_EQ(far.status, 2) << far.output();
  EXPECT_NE(far.err.find("--image"), std::string::npos) << far.err;
  EXPECT_NE(far.err.find("do not overlap"), std::string::npos) << far.err;
  EXPECT_FALSE(fs::exists(P("far_out.nii.gz")));
}

}  // namespace
