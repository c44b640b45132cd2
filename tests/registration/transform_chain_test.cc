// The world-point transforms of `apply` (transform_chain.h): the order of a chain, ITK's reading
// of a displacement field (outside the buffer: no displacement), the folder kind, the cubic
// B-spline, and resampling with nearest labels and the overlap check.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "registration/affine.h"
#include "registration/displacement_file.h"
#include "registration/image_io.h"
#include "registration/transform_chain.h"
#include "registration/transform_io.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"
#include "tests/scratch.h"

namespace {

using namespace diffeoflow::registration;

// fn throws InputError whose message contains both fragments.
template <typename Fn>
void ExpectInputError(Fn&& fn, const std::string& a, const std::string& b) {
  try {
    fn();
    ADD_FAILURE() << "no InputError";
  } catch (const diffeoflow::InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(a), std::string::npos) << what;
    EXPECT_NE(what.find(b), std::string::npos) << what;
  }
}

Eigen::Matrix4d Translation(double x, double y, double z) {
  Eigen::Matrix4d m = Eigen::Matrix4d::Identity();
  m.col(3).head<3>() << x, y, z;
  return m;
}

TEST(TransformChain, FirstGivenIsAppliedFirstToThePoint) {
  Eigen::Matrix4d scale = Eigen::Matrix4d::Identity();
  scale(0, 0) = 2.0;
  TransformChain chain;
  chain.Append(std::make_unique<AffineWorldTransform>(Translation(1, 0, 0), "t"));
  chain.Append(std::make_unique<AffineWorldTransform>(scale, "s"));
  // s(t(p)) = 2 (x + 1), not 2x + 1.
  EXPECT_DOUBLE_EQ(chain.Map(Eigen::Vector3d(3, 0, 0))[0], 8.0);
  EXPECT_FALSE(chain.DefaultReference().has_value());
  EXPECT_THROW(AffineWorldTransform(Eigen::Matrix4d::Zero(), "z"), diffeoflow::InputError);
}

TEST(TransformChain, DisplacementFieldInWorldCoordinatesOnAnLasGrid) {
  // A constant displacement of 2 mm along voxel axis 0 on an LAS grid is −2 mm in world x.
  VectorField u;
  u.grid.dim = 3;
  u.grid.size = {6, 5, 4};
  u.grid.spacing_mm = {2.0, 1.0, 1.0};
  u.grid.direction = Eigen::Vector3d(-1, 1, 1).asDiagonal();
  u.grid.origin_mm = {10.0, 0.0, 0.0};
  u.data = Eigen::VectorXd::Zero(3 * u.grid.voxels());
  u.data.head(u.grid.voxels()).setConstant(2.0);
  u.data.tail(u.grid.voxels()).setConstant(0.5);
  const DisplacementFieldWorldTransform t(u, "u");
  const Eigen::Vector3d inside(5.0, 2.0, 1.0);  // voxel (2.5, 2, 1)
  EXPECT_TRUE(t.Map(inside).isApprox(Eigen::Vector3d(3.0, 2.0, 1.5), 1e-12));
  // Continuous index −0.6 along axis 0 (x = 11.2): outside the buffer, not moved.
  const Eigen::Vector3d outside(11.2, 2.0, 1.0);
  EXPECT_EQ(t.Map(outside), outside);
  // Index −0.4 (x = 10.8): inside, the border value.
  EXPECT_TRUE(t.Map(Eigen::Vector3d(10.8, 2.0, 1.0)).isApprox(Eigen::Vector3d(8.8, 2, 1.5)));
}

TEST(TransformChain, CubicBSplineInterpolatesAndReproducesQuadratics) {
  Grid g;
  g.dim = 2;
  g.size = {40, 36, 1};
  Eigen::VectorXd values(g.voxels());
  auto f = [](double x, double y) { return 0.02 * x * x - 0.03 * x * y + 0.5 * y + 1.0; };
  for (int j = 0; j < g.size[1]; ++j)
    for (int i = 0; i < g.size[0]; ++i) values[g.index(i, j)] = f(i, j);
  const Eigen::VectorXd c = CubicBSplineCoefficients(g, values);
  double node_error = 0.0, interior_error = 0.0;
  for (int j = 0; j < g.size[1]; ++j)
    for (int i = 0; i < g.size[0]; ++i) {
      node_error = std::max(node_error, std::abs(SampleCubicBSpline(g, c.data(),
                                                                     Eigen::Vector3d(i, j, 0)) -
                                                  values[g.index(i, j)]));
    }
  for (double y = 12.25; y < 24; y += 0.7)
    for (double x = 12.3; x < 28; x += 0.9) {
      interior_error = std::max(
          interior_error, std::abs(SampleCubicBSpline(g, c.data(), Eigen::Vector3d(x, y, 0)) -
                                   f(x, y)));
    }
  EXPECT_LT(node_error, 1e-9);
  EXPECT_LT(interior_error, 1e-4);
  // Linear interpolation would miss the curvature between nodes by ~0.02 · ¼ · ¼.
  EXPECT_GT(std::abs(0.25 * (f(20, 20) + f(21, 20) + f(20, 21) + f(21, 21)) - f(20.5, 20.5)),
            1e-3);
}

class ChainResample : public diffeoflow::testing::ScratchTest {
 protected:
  ChainResample() : ScratchTest("transform_chain_") {}
};

TEST_F(ChainResample, NearestKeepsLabelsAndFarImagesAreRefused) {
  Image labels;
  labels.grid.dim = 2;
  labels.grid.size = {20, 20, 1};
  labels.data.resize(labels.grid.voxels());
  labels.source_type = ElementType::kInt16;
  for (int j = 0; j < 20; ++j)
    for (int i = 0; i < 20; ++i) labels.data[labels.grid.index(i, j)] = (i / 5) + 4 * (j / 5);
  // A warp file: shift by one voxel along +x in world (RAS) on the labels' grid.
  VectorField u{labels.grid, Eigen::VectorXd::Zero(2 * labels.grid.voxels())};
  u.component(0).setConstant(1.0);
  WriteDisplacementFile(Path("warp.nii.gz"), u);
  TransformChain chain;
  AppendTransform(chain, Path("warp.nii.gz"), false);
  const Image out = ResampleThroughChain(labels, *chain.DefaultReference(), chain,
                                         ResampleInterpolation::kNearest);
  EXPECT_EQ(out.source_type, ElementType::kInt16);
  EXPECT_EQ(out.data[out.grid.index(4, 7)], labels.data[labels.grid.index(5, 7)]);
  EXPECT_EQ(out.data[out.grid.index(9, 3)], labels.data[labels.grid.index(10, 3)]);
  // An image 500 mm away: nothing of the output grid reaches it.
  Image far = labels;
  far.grid.origin_mm = {500.0, 0.0, 0.0};
  ExpectInputError(
      [&] {
        ResampleThroughChain(far, labels.grid, chain, ResampleInterpolation::kLinear);
      },
      "--image", "do not overlap");
  // A 3-D image through a 2-D warp.
  Image volume;
  volume.grid.dim = 3;
  volume.grid.size = {4, 4, 4};
  volume.data = Eigen::VectorXd::Zero(64);
  ExpectInputError(
      [&] {
        ResampleThroughChain(volume, volume.grid, chain, ResampleInterpolation::kLinear);
      },
      "--transform", "2-D transform");
  // --inverse with a warp file, a garbage file.
  EXPECT_THROW(AppendTransform(chain, Path("warp.nii.gz"), true), diffeoflow::InputError);
  {
    std::ofstream(Path("garbage.nii.gz")) << "not a nifti file at all";
  }
  ExpectInputError(
      [&] { AppendTransform(chain, Path("garbage.nii.gz"), false); }, "--transform",
      "garbage.nii.gz");
}

TEST_F(ChainResample, LabelInterpolationKeepsLabelsOnFlippedObliqueAndCoarserGrids) {
  Image labels;
  labels.grid.dim = 2;
  labels.grid.size = {20, 20, 1};
  labels.grid.spacing_mm = {1.0, 1.2, 1.0};
  labels.data.resize(labels.grid.voxels());
  labels.source_type = ElementType::kInt16;
  for (int j = 0; j < 20; ++j)
    for (int i = 0; i < 20; ++i) labels.data[labels.grid.index(i, j)] = (i / 5) + 4 * (j / 5) + 1;
  const TransformChain identity;
  // The same voxels recorded with the first axis flipped: every value comes back exactly.
  Grid flipped = labels.grid;
  flipped.direction = Eigen::Vector3d(-1, 1, 1).asDiagonal();
  flipped.origin_mm = {19.0, 0.0, 0.0};
  const Image mirrored =
      ResampleThroughChain(labels, flipped, identity, ResampleInterpolation::kLabel);
  EXPECT_EQ(mirrored.source_type, ElementType::kInt16);
  for (int j = 0; j < 20; ++j)
    for (int i = 0; i < 20; ++i)
      ASSERT_EQ(mirrored.data[flipped.index(i, j)], labels.data[labels.grid.index(19 - i, j)]);
  // An oblique, coarser grid over the same world: only label values come out, and every label
  // (5 × 6 mm blocks against 1.6 mm voxels) is still there.
  Grid oblique;
  oblique.dim = 2;
  oblique.size = {16, 18, 1};
  oblique.spacing_mm = {1.6, 1.6, 1.0};
  const double a = 20.0 * M_PI / 180.0;
  oblique.direction.topLeftCorner<2, 2>() << std::cos(a), -std::sin(a), std::sin(a), std::cos(a);
  oblique.origin_mm = {4.0, -2.0, 0.0};
  const Image tilted =
      ResampleThroughChain(labels, oblique, identity, ResampleInterpolation::kLabel, 0.0);
  std::set<double> seen;
  for (Eigen::Index v = 0; v < tilted.data.size(); ++v) {
    const double l = tilted.data[v];
    EXPECT_TRUE(l == 0.0 || (l >= 1.0 && l <= 16.0 && l == std::round(l))) << l;
    seen.insert(l);
  }
  EXPECT_GE(seen.size(), 10u);
  EXPECT_EQ(ParseResampleInterpolation("label"), ResampleInterpolation::kLabel);
  EXPECT_TRUE(KeepsValues(ResampleInterpolation::kLabel));
  EXPECT_FALSE(KeepsValues(ResampleInterpolation::kLinear));
  ExpectInputError([] { ParseResampleInterpolation("labels"); }, "--interpolation", "label");
}

TEST_F(ChainResample, RegisterFolderIsTheAffineAfterTheWarpAndItsInverseBefore) {
  // A folder as `register` leaves it with an affine stage: φ(p) = p + (1, 0, 0) mm everywhere
  // on a 3-D grid, φ⁻¹ the opposite, A = scale x by 2 then move by (0, 3, 0) (trajectory.h5).
  VectorField u;
  u.grid.dim = 3;
  u.grid.size = {40, 40, 40};
  u.grid.origin_mm = {-20.0, -20.0, -20.0};
  u.data = Eigen::VectorXd::Zero(3 * u.grid.voxels());
  u.component(0).setConstant(1.0);
  std::filesystem::create_directories(Path("reg"));
  WriteDisplacementFile(Path("reg/displacement.nii.gz"), u);
  u.component(0).setConstant(-1.0);
  WriteDisplacementFile(Path("reg/inverse_displacement.nii.gz"), u);
  Eigen::Matrix4d a = Translation(0, 3, 0);
  a(0, 0) = 2.0;
  // trajectory.h5 as register writes it: the grid's affine (which marks the LPS convention) and a
  // record of the affine stage, whose file is affine.txt.
  auto write_trajectory = [&](const Eigen::Matrix4d& recorded) {
    diffeoflow::h5::Writer writer(Path("reg/trajectory.h5"));
    auto rows_of = [](const Eigen::Matrix4d& m) {
      std::vector<double> rows(16);
      for (int i = 0; i < 16; ++i) rows[static_cast<std::size_t>(i)] = m(i / 4, i % 4);
      return rows;
    };
    // Unit spacing, identity direction: the voxel-to-world affine is a translation to the origin.
    writer.WriteDoubles("fixed_affine", rows_of(Translation(-20.0, -20.0, -20.0)), {4, 4});
    writer.WriteDoubles("affine", rows_of(recorded), {4, 4});
    writer.Commit();
  };
  write_trajectory(a);
  WriteItkAffine(Path("reg/affine.txt"), a, 3, FieldOfViewCentre(u.grid));
  TransformChain forward, inverse;
  AppendTransform(forward, Path("reg"), false);
  AppendTransform(inverse, Path("reg"), true);
  const Eigen::Vector3d p(1.0, 2.0, 3.0);
  // A(φ(p)) = (2 · (1 + 1), 2 + 3, 3), not φ(A(p)) = (3, 5, 3).
  EXPECT_TRUE(forward.Map(p).isApprox(Eigen::Vector3d(4.0, 5.0, 3.0), 1e-6));
  EXPECT_TRUE(inverse.Map(forward.Map(p)).isApprox(p, 1e-6));
  ASSERT_TRUE(forward.DefaultReference().has_value());
  EXPECT_EQ(forward.DefaultReference()->size, u.grid.size);

  // The affine is affine.txt's: a folder whose trajectory.h5 records another one is refused, and
  // so is one that records an affine stage but has lost affine.txt.
  write_trajectory(Translation(0, 4, 0));
  TransformChain disagreeing;
  ExpectInputError([&] { AppendTransform(disagreeing, Path("reg"), false); }, "--transform",
                   "affine.txt and trajectory.h5's affine differ");
  write_trajectory(a);
  std::filesystem::remove(Path("reg/affine.txt"));
  ExpectInputError([&] { AppendTransform(disagreeing, Path("reg"), false); }, "--transform",
                   "has no affine.txt");
  // A folder written before the ITK/ANTs convention (no fixed_affine) is refused.
  {
    diffeoflow::h5::Writer writer(Path("reg/trajectory.h5"));
    writer.WriteDoubles("times", {0.0, 1.0}, {2});
    writer.Commit();
  }
  ExpectInputError([&] { AppendTransform(disagreeing, Path("reg"), false); }, "--transform",
                   "older diffeoflow");
}

}  // namespace
