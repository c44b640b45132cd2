// `apply` for real work (CLI.md, docs/transforms.md): a register folder, warp and affine files in
// a chain (ANTs' order), --inverse, --reference, --interpolation bspline, and bad inputs refused
// with one line, exit 2 and nothing written.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "registration/displacement_file.h"
#include "registration/image_io.h"
#include "solvers/hdf5.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;
namespace reg = diffeoflow::registration;
using diffeoflow::testing::CliRun;

reg::Image Blob(const reg::Grid& g, double cx, double cy, double rx, double ry) {
  reg::Image image{g, Eigen::VectorXd(g.voxels())};
  for (int j = 0; j < g.size[1]; ++j)
    for (int i = 0; i < g.size[0]; ++i) {
      const Eigen::Vector3d p = g.VoxelToPhysical(Eigen::Vector3d(i, j, 0));
      const double r = std::hypot((p[0] - cx) / rx, (p[1] - cy) / ry);
      image.data[g.index(i, j)] = 0.5 * (1.0 - std::tanh((r - 1.0) * 4.0));
    }
  return image;
}

double Correlation(const Eigen::VectorXd& a, const Eigen::VectorXd& b) {
  const Eigen::ArrayXd x = a.array() - a.mean(), y = b.array() - b.mean();
  return (x * y).sum() / std::sqrt((x * x).sum() * (y * y).sum());
}

class ApplyCli : public diffeoflow::testing::CliTest {
 protected:
  ApplyCli() : CliTest("", "apply_cli_") {}
  std::string P(const std::string& name) const { return (dir_ / name).string(); }

  void SetUp() override {
    CliTest::SetUp();
    reg::Grid fixed;
    fixed.dim = 2;
    fixed.size = {40, 36, 1};
    fixed.spacing_mm = {1.0, 1.1, 1.0};
    fixed.direction = Eigen::Vector3d(-1, 1, 1).asDiagonal();  // LAS
    fixed.origin_mm = {20.0, -19.0, 0.0};
    reg::Grid moving;
    moving.dim = 2;
    moving.size = {44, 44, 1};
    moving.spacing_mm = {0.9, 0.9, 1.0};
    moving.origin_mm = {-19.0, -19.0, 0.0};
    reg::WriteImage(P("fixed.nii.gz"), Blob(fixed, 0.0, 0.0, 11.0, 8.0));
    reg::WriteImage(P("moving.nii.gz"), Blob(moving, 1.5, -1.0, 9.0, 9.0));
    reg::Image far = Blob(moving, 0, 0, 5, 5);
    far.grid.origin_mm = {600.0, 0.0, 0.0};
    reg::WriteImage(P("far.nii.gz"), far);
    const CliRun r = Run("register --fixed " + P("fixed.nii.gz") + " --moving " +
                         P("moving.nii.gz") + " --out " + P("reg") +
                         " --levels 1 --iterations 25 --alpha 16 --quiet");
    ASSERT_EQ(r.status, 0) << r.output();
  }
};

TEST_F(ApplyCli, FolderWarpFilesChainsInverseAndReference) {
  // The folder alone: what register wrote as warped.nii.gz (moving on the fixed grid).
  ASSERT_EQ(Run("apply --transform " + P("reg") + " --image " + P("moving.nii.gz") + " --out " +
                P("a.nii.gz") + " --quiet").status, 0);
  const reg::Image a = reg::ReadImage(P("a.nii.gz"));
  const reg::Image warped = reg::ReadImage(P("reg/warped.nii.gz"));
  EXPECT_LT((a.data - warped.data).cwiseAbs().maxCoeff(), 1e-4);
  // The folder's two files as ANTs takes them (-t warp -t affine.txt): the same map. The warp
  // alone is not (the default affine stage moved the blob's centre by about 2 mm).
  ASSERT_TRUE(fs::exists(P("reg/affine.txt")));
  ASSERT_EQ(Run("apply --transform " + P("reg/displacement.nii.gz") + " --transform " +
                P("reg/affine.txt") + " --image " + P("moving.nii.gz") + " --out " +
                P("b.nii.gz") + " --quiet").status, 0);
  EXPECT_LT((reg::ReadImage(P("b.nii.gz")).data - a.data).cwiseAbs().maxCoeff(), 1e-4);
  ASSERT_EQ(Run("apply --transform " + P("reg/displacement.nii.gz") + " --image " +
                P("moving.nii.gz") + " --out " + P("warp_only.nii.gz") + " --quiet").status, 0);
  EXPECT_GT((reg::ReadImage(P("warp_only.nii.gz")).data - a.data).cwiseAbs().maxCoeff(), 0.05);

  // A chain φ then φ⁻¹ (first given first applied to the point) is the identity: the fixed image
  // comes back. In the other order it is not (φ⁻¹ acts on the moving grid, φ on the fixed).
  const reg::Image fixed = reg::ReadImage(P("fixed.nii.gz"));
  ASSERT_EQ(Run("apply --transform " + P("reg/displacement.nii.gz") + " --transform " +
                P("reg/inverse_displacement.nii.gz") + " --image " + P("fixed.nii.gz") +
                " --out " + P("round.nii.gz") + " --quiet").status, 0);
  const reg::Image round = reg::ReadImage(P("round.nii.gz"));
  EXPECT_GT(Correlation(round.data, fixed.data), 0.999);
  EXPECT_LT(Correlation(a.data, fixed.data), Correlation(round.data, fixed.data));

  // --inverse: the fixed image onto the moving grid (default reference), close to the moving one.
  ASSERT_EQ(Run("apply --transform " + P("reg") + " --inverse --image " + P("fixed.nii.gz") +
                " --out " + P("inv.nii.gz") + " --quiet").status, 0);
  const reg::Image inv = reg::ReadImage(P("inv.nii.gz"));
  const reg::Image moving = reg::ReadImage(P("moving.nii.gz"));
  ASSERT_EQ(inv.grid.size, moving.grid.size);
  EXPECT_NEAR(inv.grid.spacing_mm[0], 0.9, 1e-6);
  const double before = Correlation(
      reg::ReadImage(P("moving.nii.gz")).data,
      [&] {
        // The fixed image on the moving grid without any warp, for comparison.
        const CliRun r = Run("apply --transform " + P("reg/inverse_displacement.nii.gz") +
                             " --transform " + P("reg/displacement.nii.gz") + " --image " +
                             P("fixed.nii.gz") + " --reference " + P("moving.nii.gz") +
                             " --out " + P("plain.nii.gz") + " --quiet");
        EXPECT_EQ(r.status, 0) << r.output();
        return reg::ReadImage(P("plain.nii.gz")).data;
      }());
  const double after = Correlation(moving.data, inv.data);
  std::printf("fixed on the moving grid: correlation with moving %.4f (identity chain), %.4f "
              "(inverse map)\n", before, after);
  EXPECT_GT(after, 0.99);
  EXPECT_GT(after, before);

  // --reference: the output lies on that grid; bspline is close to linear.
  ASSERT_EQ(Run("apply --transform " + P("reg") + " --image " + P("moving.nii.gz") +
                " --reference " + P("moving.nii.gz") + " --interpolation bspline --out " +
                P("c.nii.gz") + " --quiet").status, 0);
  const reg::Image c = reg::ReadImage(P("c.nii.gz"));
  EXPECT_EQ(c.grid.size, moving.grid.size);
  EXPECT_TRUE(c.data.allFinite());
}

TEST_F(ApplyCli, LabelInterpolationKeepsTheLabelsAndTheirElementType) {
  // Three labels on the moving grid (the blob's core, its rim, background), stored as int16.
  reg::Image labels = reg::ReadImage(P("moving.nii.gz"));
  for (Eigen::Index v = 0; v < labels.data.size(); ++v) {
    labels.data[v] = labels.data[v] > 0.8 ? 7.0 : labels.data[v] > 0.2 ? 3.0 : 0.0;
  }
  reg::WriteImage(P("labels.nii.gz"), labels, reg::ElementType::kInt16);
  const CliRun r = Run("apply --transform " + P("reg") + " --image " + P("labels.nii.gz") +
                       " --interpolation label --out " + P("carried.nii.gz") + " --quiet");
  ASSERT_EQ(r.status, 0) << r.output();
  const reg::Image carried = reg::ReadImage(P("carried.nii.gz"));
  EXPECT_EQ(carried.source_type, reg::ElementType::kInt16);
  int counts[3] = {0, 0, 0};
  for (Eigen::Index v = 0; v < carried.data.size(); ++v) {
    const double l = carried.data[v];
    ASSERT_TRUE(l == 0.0 || l == 3.0 || l == 7.0) << l;
    ++counts[l == 0.0 ? 0 : l == 3.0 ? 1 : 2];
  }
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[2], 0);
}

TEST_F(ApplyCli, BadInputsOneLineExitTwoNothingWritten) {
  // A 3-D warp for a 2-D image, garbage, --inverse with a chain, a far --reference.
  reg::VectorField u3;
  u3.grid.dim = 3;
  u3.grid.size = {8, 8, 8};
  u3.data = Eigen::VectorXd::Zero(3 * 512);
  reg::WriteDisplacementFile(P("warp3d.nii.gz"), u3);
  std::ofstream(P("garbage.nii.gz")) << "garbage";
  std::ofstream(P("garbage.txt")) << "garbage";
  // A folder as an older diffeoflow wrote it: trajectory.h5 without fixed_affine (its
  // displacement.nii.gz then held vectors along the image axes, not ITK's LPS).
  fs::create_directory(P("old"));
  fs::copy_file(P("reg/displacement.nii.gz"), P("old/displacement.nii.gz"));
  {
    diffeoflow::h5::Writer old(P("old/trajectory.h5"));
    old.WriteDoubles("times", std::vector<double>{0.0, 1.0}, diffeoflow::h5::Shape{2});
    old.Commit();
  }
  const std::string image = " --image " + P("moving.nii.gz");
  struct Case {
    std::string args, words1, words2;
  };
  const Case cases[] = {
      {"--transform " + P("warp3d.nii.gz") + image, "--image", "3-D"},
      {"--transform " + P("reg") + " --transform " + P("warp3d.nii.gz") + image, "warp3d",
       "2-D"},
      {"--transform " + P("garbage.nii.gz") + image, "--transform", "garbage.nii.gz"},
      {"--transform " + P("reg") + " --transform " + P("reg") + " --inverse" + image,
       "--inverse", "one --transform"},
      {"--transform " + P("reg/displacement.nii.gz") + " --inverse" + image, "--inverse",
       "warp file"},
      {"--transform " + P("reg") + image + " --reference " + P("far.nii.gz"), "--reference",
       "do not overlap"},
      {"--transform " + P("reg") + image + " --interpolation cubic", "--interpolation", "bspline"},
      {"--transform " + P("garbage.txt") + image, "--transform", "garbage.txt"},
      {"--transform " + P("reg/affine.txt") + image, "--reference", "affine file"},
      {"--transform " + P("old") + image, "older diffeoflow", "register"},
  };
  int k = 0;
  for (const Case& c : cases) {
    const std::string out = P("bad_" + std::to_string(k++) + ".nii.gz");
    const CliRun r = Run("apply " + c.args + " --out " + out);
    EXPECT_EQ(r.status, 2) << c.args << "\n" << r.output();
    EXPECT_NE(r.err.find(c.words1), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.words2), std::string::npos) << r.err;
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.args;
  }
}

}  // namespace
