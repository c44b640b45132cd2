// The hard-case generators of registration/shapes.h: C rings and their discs, translations,
// intensity rescaling, large random diffeomorphisms.
#include "registration/shapes.h"

#include <cmath>
#include <numbers>
#include <set>

#include <gtest/gtest.h>

#include "registration/image_ops.h"
#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

// Pixels of `image` at `high` (sharp shapes hold only low and high).
long CountHigh(const Image& image, double high) {
  return (image.data.array() == high).count();
}

// The exact area (px²) of the C ring: the annulus minus the part of the slot {x > 0, |y| < w/2}
// inside it (midpoint rule over y, fine enough for a 1e-4 relative error).
double CRingArea(const CRingOptions& o) {
  const double outer = o.outer_radius_px, inner = outer - o.thickness_px;
  const double w = o.mouth_width_px;
  double slot = 0.0;
  const int n = 20000;
  for (int s = 0; s < n; ++s) {
    const double y = -0.5 * w + (s + 0.5) * w / n;
    const double x_out = std::sqrt(std::max(0.0, outer * outer - y * y));
    const double x_in = std::sqrt(std::max(0.0, inner * inner - y * y));
    slot += (x_out - x_in) * w / n;
  }
  return std::numbers::pi * (outer * outer - inner * inner) - slot;
}

TEST(CRing, ReferenceHasTheAskedThicknessMouthAndHollow) {
  const CRingOptions o = ReferenceCRing();
  ASSERT_EQ(o.size, 256);
  const Image c = CRingImage(o);
  EXPECT_EQ(c.grid.size, (std::array<int, 3>{256, 256, 1}));
  // Sharp: only the two intensities.
  const std::set<double> values(c.data.data(), c.data.data() + c.data.size());
  EXPECT_EQ(values, (std::set<double>{0.0, 1.0}));
  // Centre (127.5, 127.5): row j = 127 is at y' = −0.5. Opposite the mouth (x' < 0) the ring is
  // the pixels with 52 < |x'| < 77: 25 of them.
  int wall = 0;
  for (int i = 0; i < 128; ++i) wall += c.data[c.grid.index(i, 127)] == 1.0;
  EXPECT_EQ(wall, 25);
  // The mouth, across the ring's middle (x' = 64.5, column 192): empty for |y'| < 20 (40 pixels),
  // ring on both sides of it.
  int gap = 0;
  for (int j = 0; j < 256; ++j) {
    const double y = j - 127.5;
    const double value = c.data[c.grid.index(192, j)];
    if (std::abs(y) < 20.0) {
      EXPECT_EQ(value, 0.0) << "j = " << j;
      ++gap;
    } else if (std::abs(y) < 35.0) {
      EXPECT_EQ(value, 1.0) << "j = " << j;
    }
  }
  EXPECT_EQ(gap, 40);
  // The hollow is empty and wider (2·52 px) than the mouth.
  for (int i = 127 - 50; i <= 128 + 50; ++i) EXPECT_EQ(c.data[c.grid.index(i, 127)], 0.0);
  EXPECT_GT(2.0 * (o.outer_radius_px - o.thickness_px), o.mouth_width_px);
  // Area against the exact area (pixel counting errs by a fraction of the perimeter).
  EXPECT_NEAR(CountHigh(c, 1.0), CRingArea(o), 0.01 * CRingArea(o));
}

TEST(CRing, RotationThicknessMouthAndEdges) {
  CRingOptions o;
  o.size = 128;
  o.outer_radius_px = 40.0;
  o.thickness_px = 8.0;
  o.mouth_width_px = 12.0;
  // A quarter turn points the mouth at +y: the transpose of the unrotated ring.
  const Image c0 = CRingImage(o);
  o.rotation_deg = 90.0;
  const Image c90 = CRingImage(o);
  for (int j = 0; j < 128; ++j) {
    for (int i = 0; i < 128; ++i) {
      ASSERT_EQ(c90.data[c90.grid.index(i, j)], c0.data[c0.grid.index(j, i)]) << i << ", " << j;
    }
  }
  // Any angle: the same area; the mouth is where the rotation puts it.
  for (const double angle : {30.0, 135.0, 250.0}) {
    o.rotation_deg = angle;
    const Image c = CRingImage(o);
    EXPECT_NEAR(CountHigh(c, 1.0), CRingArea(o), 0.02 * CRingArea(o)) << angle;
    const double a = angle * std::numbers::pi / 180.0, r = 40.0 - 4.0;
    const int mi = static_cast<int>(std::lround(63.5 + r * std::cos(a)));
    const int mj = static_cast<int>(std::lround(63.5 + r * std::sin(a)));
    EXPECT_EQ(c.data[c.grid.index(mi, mj)], 0.0) << "mouth at " << angle;
    const int wi = static_cast<int>(std::lround(63.5 - r * std::cos(a)));
    const int wj = static_cast<int>(std::lround(63.5 - r * std::sin(a)));
    EXPECT_EQ(c.data[c.grid.index(wi, wj)], 1.0) << "wall opposite " << angle;
  }
  // A smooth edge with other intensities: values inside [low, high], reaching both.
  o.rotation_deg = 0.0;
  o.edge_width_px = 1.0;
  o.low = 100.0;
  o.high = 1100.0;
  const Image smooth = CRingImage(o);
  EXPECT_GE(smooth.data.minCoeff(), 100.0);
  EXPECT_LE(smooth.data.maxCoeff(), 1100.0);
  EXPECT_NEAR(smooth.data.minCoeff(), 100.0, 1e-3);
  EXPECT_NEAR(smooth.data.maxCoeff(), 1100.0, 5.0);
  EXPECT_GT(std::set<double>(smooth.data.data(), smooth.data.data() + smooth.data.size()).size(),
            100u);
  // The disc partner: the solid disc of the outer radius, same intensities and centre.
  const Image disc = CRingDiscImage(o);
  EXPECT_NEAR(disc.data[disc.grid.index(63, 63)], 1100.0, 1e-6);
  o.edge_width_px = 0.0;
  const Image sharp_disc = CRingDiscImage(o);
  EXPECT_NEAR(CountHigh(sharp_disc, 1100.0), std::numbers::pi * 40.0 * 40.0, 0.01 * 5027.0);

  CRingOptions bad;
  bad.thickness_px = 0.0;
  EXPECT_THROW(CRingImage(bad), InputError);
  bad = CRingOptions{};
  bad.mouth_width_px = 200.0;
  EXPECT_THROW(CRingImage(bad), InputError);
  bad = CRingOptions{};
  bad.centre_offset_px = {60.0, 0.0};  // 77 + 60 > 127.5: the shape leaves the image
  EXPECT_THROW(CRingImage(bad), InputError);
}

TEST(CRing, SmallHardPairKeepsTheReferenceGeometry) {
  const CRingOptions o = SmallHardCRing();
  const ShapePair pair = SmallHardCRingPair();
  EXPECT_EQ(pair.fixed.grid.size, (std::array<int, 3>{64, 64, 1}));
  EXPECT_EQ(pair.fixed.grid.spacing_mm[0], 4.0);
  EXPECT_EQ(pair.moving.grid.spacing_mm[1], 4.0);
  // The same physical lengths as the reference (256 mm field of view).
  const CRingOptions r = ReferenceCRing();
  EXPECT_DOUBLE_EQ(o.thickness_px * o.spacing_mm, r.thickness_px * r.spacing_mm);
  EXPECT_DOUBLE_EQ(o.mouth_width_px * o.spacing_mm, r.mouth_width_px * r.spacing_mm);
  EXPECT_DOUBLE_EQ(o.size * o.spacing_mm, r.size * r.spacing_mm);
  // Moving = disc, fixed = C with an empty hollow reached through a mouth narrower than it.
  EXPECT_EQ(pair.moving.data[pair.moving.grid.index(32, 32)], 1.0);
  EXPECT_EQ(pair.fixed.data[pair.fixed.grid.index(32, 32)], 0.0);
  EXPECT_LT(o.mouth_width_px, 2.0 * (o.outer_radius_px - o.thickness_px));
  int wall = 0;
  for (int i = 0; i < 32; ++i) wall += pair.fixed.data[pair.fixed.grid.index(i, 31)] == 1.0;
  EXPECT_EQ(wall, 6);  // 13 < |x'| < 19.25 at half-integer x'
  int gap = 0;  // across the mouth at x' = 16.5 (column 48)
  for (int j = 0; j < 64; ++j) gap += pair.fixed.data[pair.fixed.grid.index(48, j)] == 0.0 &&
                                      std::abs(j - 31.5) < 10.0;
  EXPECT_EQ(gap, 10);
  EXPECT_EQ(pair.fixed.data[pair.fixed.grid.index(48, 31 - 6)], 1.0);
  EXPECT_EQ(pair.fixed.data[pair.fixed.grid.index(48, 32 + 6)], 1.0);
}

TEST(Translation, WholeVoxelShiftsAreExactAndPairsDifferByTheShift) {
  CRingOptions o;
  o.size = 128;
  o.outer_radius_px = 30.0;
  o.thickness_px = 10.0;
  o.mouth_width_px = 14.0;
  const Image c = CRingImage(o);
  const ShapePair pair = TranslatedPair(c, {32.0, -16.0, 0.0}, 0.0);
  // moving = the ring drawn 16 px along +x and 8 along −y; fixed the opposite.
  o.centre_offset_px = {16.0, -8.0};
  EXPECT_EQ(pair.moving.data, CRingImage(o).data);
  o.centre_offset_px = {-16.0, 8.0};
  EXPECT_EQ(pair.fixed.data, CRingImage(o).data);
  // Content that enters from outside the grid takes the background value.
  Image ramp = c;
  ramp.data = Eigen::VectorXd::LinSpaced(ramp.data.size(), 1.0, 2.0);
  const Image shifted = TranslateImage(ramp, {4.0, 0.0, 0.0}, -7.0);
  EXPECT_EQ(shifted.data[ramp.grid.index(3, 10)], -7.0);
  EXPECT_DOUBLE_EQ(shifted.data[ramp.grid.index(4, 10)], ramp.data[ramp.grid.index(0, 10)]);
  // Sub-voxel shifts interpolate linearly, in mm (spacing 2 mm: 1 mm = half a voxel).
  Image coarse = ramp;
  coarse.grid.spacing_mm = {2.0, 2.0, 1.0};
  const Image half = TranslateImage(coarse, {1.0, 0.0, 0.0}, 0.0);
  const double left = coarse.data[coarse.grid.index(4, 3)];
  const double right = coarse.data[coarse.grid.index(5, 3)];
  EXPECT_DOUBLE_EQ(half.data[coarse.grid.index(5, 3)], 0.5 * (left + right));
}

TEST(Intensity, RescaleMapsMinAndMax) {
  Image image;
  image.grid.size = {5, 1, 1};
  image.data = (Eigen::VectorXd(5) << 0.2, 0.4, 0.6, 0.8, 1.0).finished();
  const Image ct = RescaleIntensity(image, -1000.0, 3000.0);
  EXPECT_DOUBLE_EQ(ct.data[0], -1000.0);
  EXPECT_DOUBLE_EQ(ct.data[4], 3000.0);
  EXPECT_DOUBLE_EQ(ct.data[2], 1000.0);
  image.data.setConstant(3.0);
  EXPECT_EQ(RescaleIntensity(image, 100.0, 1100.0).data, Eigen::VectorXd::Constant(5, 100.0));
}

Grid MakeTestGrid(int dim, int nx, int ny, int nz, std::array<double, 3> spacing) {
  Grid g;
  g.dim = dim;
  g.size = {nx, ny, dim == 3 ? nz : 1};
  g.spacing_mm = spacing;
  return g;
}

double MaxNorm(const VectorField& u) {
  const Eigen::Index n = u.grid.voxels();
  double largest = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    double norm2 = 0.0;
    for (int c = 0; c < u.grid.dim; ++c) norm2 += u.data[c * n + i] * u.data[c * n + i];
    largest = std::max(largest, std::sqrt(norm2));
  }
  return largest;
}

TEST(RandomDiffeomorphism, DiffeomorphicWithTheAskedDisplacementAndSeeded) {
  for (const int dim : {2, 3}) {
    const Grid grid = dim == 2 ? MakeTestGrid(2, 96, 80, 1, {1.0, 1.25, 1.0})
                               : MakeTestGrid(3, 28, 24, 20, {1.0, 1.2, 1.5});
    const double fov = dim == 2 ? 100.0 : 30.0;  // the largest extent n_d·h_d (mm)
    for (const std::uint64_t seed : {1u, 2u, 3u}) {
      RandomDiffeomorphismOptions o;
      o.seed = seed;
      const RandomDiffeomorphism r = MakeRandomDiffeomorphism(grid, o);
      SCOPED_TRACE("dim " + std::to_string(dim) + " seed " + std::to_string(seed));
      // Max displacement: 10 % of the field of view.
      EXPECT_NEAR(MaxNorm(r.displacement_mm), 0.1 * fov, 1e-3 * 0.1 * fov);
      EXPECT_DOUBLE_EQ(r.max_displacement_mm, MaxNorm(r.displacement_mm));
      // det Dφ > 0 at every voxel, and the reported range is the field's.
      const Image det = JacobianDeterminant(r.displacement_mm);
      EXPECT_GT(det.data.minCoeff(), 0.0);
      EXPECT_DOUBLE_EQ(r.min_jacobian, det.data.minCoeff());
      EXPECT_DOUBLE_EQ(r.max_jacobian, det.data.maxCoeff());
      EXPECT_LT(r.min_jacobian, 0.95);  // a large warp, not a near-identity one
      // One-to-one: φ ∘ φ⁻¹ = id up to interpolation, wherever φ⁻¹ stays inside the grid.
      const VectorField id = ComposeDisplacements(r.displacement_mm, r.inverse_displacement_mm);
      const VectorField inverse_position = PositionFromDisplacement(r.inverse_displacement_mm);
      const Eigen::Index n = grid.voxels();
      double worst = 0.0;
      for (Eigen::Index i = 0; i < n; ++i) {
        bool inside = true;
        for (int c = 0; c < dim; ++c) {
          const double p = inverse_position.data[c * n + i];
          inside = inside && p >= 0.0 && p <= grid.size[c] - 1;
        }
        if (!inside) continue;
        for (int c = 0; c < dim; ++c) worst = std::max(worst, std::abs(id.data[c * n + i]));
      }
      EXPECT_LT(worst, 0.05 * 0.1 * fov);
      // Seeded: the same seed gives the same map; another seed another map.
      EXPECT_EQ(MakeRandomDiffeomorphism(grid, o).displacement_mm.data, r.displacement_mm.data);
      o.seed = seed + 10;
      EXPECT_GT((MakeRandomDiffeomorphism(grid, o).displacement_mm.data - r.displacement_mm.data)
                    .cwiseAbs()
                    .maxCoeff(),
                0.1);
    }
  }
  RandomDiffeomorphismOptions bad;
  bad.max_displacement_fraction = 0.0;
  EXPECT_THROW(MakeRandomDiffeomorphism(MakeTestGrid(2, 16, 16, 1, {1, 1, 1}), bad), InputError);
}

TEST(RandomDiffeomorphism, WarpedPairIsTheImageUnderTheMap) {
  CRingOptions o;
  o.size = 64;
  o.outer_radius_px = 20.0;
  o.thickness_px = 6.0;
  o.mouth_width_px = 8.0;
  const Image c = CRingImage(o);
  RandomDiffeomorphismOptions warp;
  warp.seed = 5;
  const WarpedPair pair = MakeRandomlyWarpedPair(c, warp);
  EXPECT_EQ(pair.original.data, c.data);
  EXPECT_EQ(pair.warped.data, WarpImage(c, PositionFromDisplacement(pair.displacement_mm)).data);
  EXPECT_NEAR(MaxNorm(pair.displacement_mm), 6.4, 6.4e-3);
  EXPECT_GT((pair.warped.data - c.data).cwiseAbs().maxCoeff(), 0.5);
}

}  // namespace
}  // namespace diffeoflow::registration
