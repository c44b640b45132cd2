// Synthetic test data the project draws itself: the 2-D "disc to C" demo pair, and smooth random
// warps to make a known deformation of any image (e.g. a brain against a warped copy of itself);
// and the hard cases of the robustness benchmark (bench/robustness.cc, docs/robustness.md): thin
// C rings with a deep, narrow-mouthed hollow, large translations, large random diffeomorphisms
// of any 2-D/3-D image, intensity ranges other than [0, 1]; and landmark sets for the landmark
// matching benchmarks and tests.
#pragma once

#include <array>
#include <cstdint>

#include "registration/image.h"

namespace diffeoflow::registration {

struct ShapeOptions {
  int size = 256;                 // N × N pixels, unit spacing; N >= 16
  double radius_fraction = 0.3;   // disc radius as a fraction of N
  // The C's bite: a disc of radius bite_radius_fraction·N whose centre lies on the +x axis at
  // bite_offset_fraction·N from the main disc's centre, removed from the main disc.
  double bite_radius_fraction = 0.17;
  double bite_offset_fraction = 0.27;
  double edge_width_px = 1.5;     // anti-aliasing: intensity = ½(1 − tanh(signed distance / width))
  double noise_sigma = 0.0;       // additive Gaussian noise (intensity units), seeded
  std::uint64_t seed = 0;
};

// A filled disc centred in the image, intensity 1 inside, 0 outside, with a smooth edge.
Image DiscImage(const ShapeOptions& options = {});
// The same disc with a circular bite removed on the +x side (a "C").
Image CShapeImage(const ShapeOptions& options = {});

// The built-in demo pair of `make demo`: moving = disc, fixed = C.
struct ShapePair {
  Image moving;
  Image fixed;
};
ShapePair DiscToCPair(const ShapeOptions& options = {});

struct SmoothWarpOptions {
  int bumps = 8;                     // number of Gaussian bumps
  double width_fraction = 0.15;      // bump standard deviation as a fraction of the field of view
  double max_displacement_mm = 4.0;  // bump amplitude, and a bound on max |u| (mm)
  // The field is scaled down when needed so that Σ_bumps |∇u_b| <= max_gradient_norm < 1
  // everywhere, which makes x + u(x) a diffeomorphism (det(I + ∇u) > 0).
  double max_gradient_norm = 0.5;
  std::uint64_t seed = 0;
};

// A smooth displacement u (mm, along the image axes) on `grid`: u(x) = Σ_b a_b exp(−|x − c_b|²/2s²)
// with random centres c_b inside the grid (physical coordinates), random directions a_b and a
// common width s, seeded; then scaled down if needed so that max |u| <= max_displacement_mm.
// x + u(x) is guaranteed to be a diffeomorphism of space (see SmoothWarpOptions::max_gradient_norm).
VectorField SmoothRandomDisplacement(const Grid& grid, const SmoothWarpOptions& options = {});

// A known deformation of `image`: warped(x) = image(x + u(x)) (linear interpolation, clamped), with
// u = SmoothRandomDisplacement(image.grid, options).
struct WarpedPair {
  Image original;
  Image warped;
  VectorField displacement_mm;  // u: warped = original ∘ (id + u)
};
WarpedPair MakeWarpedPair(const Image& image, const SmoothWarpOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Hard cases (bench/robustness.cc)

// A thin C-shaped ring: the annulus outer_radius_px − thickness_px <= r <= outer_radius_px with a
// straight slot of width mouth_width_px (parallel sides, symmetric about the mouth axis) cut
// through it on one side. The hollow (the inner disc, diameter 2(outer − thickness)) is reached
// only through the slot, so a mouth narrower than the hollow leaves a deep concavity that a
// registration from the solid disc must empty through a gap narrower than what it empties.
// Lengths are in pixels; the pixel size is spacing_mm. The shape is centred at pixel coordinates
// ((N − 1)/2, (N − 1)/2) + centre_offset_px and evaluated at the pixel centres.
struct CRingOptions {
  int size = 256;                  // N × N pixels; N >= 16
  double spacing_mm = 1.0;         // pixel size (the same in x and y)
  double outer_radius_px = 77.0;
  double thickness_px = 25.0;      // outer − inner radius; in (0, outer_radius_px]
  double mouth_width_px = 40.0;    // slot width; in [0, 2·outer_radius_px); 0: a closed ring
  // Direction of the mouth, counter-clockwise from the +x (i) axis towards +y (j), in degrees.
  double rotation_deg = 0.0;
  // 0: sharp edges, every pixel exactly `low` or `high` (inside where the signed distance < 0).
  // > 0: intensity low + (high − low)·½(1 − tanh(signed distance / edge_width_px)).
  double edge_width_px = 0.0;
  double low = 0.0;                // background
  double high = 1.0;               // the shape
  std::array<double, 2> centre_offset_px{0.0, 0.0};  // shape centre relative to the image centre
};

// Throws InputError naming the field when the options are invalid or the shape leaves the image.
void ValidateCRing(const CRingOptions& options);
// The C ring of `options`.
Image CRingImage(const CRingOptions& options = {});
// Its partner: the solid disc of radius outer_radius_px, same centre, edge and intensities.
Image CRingDiscImage(const CRingOptions& options = {});
// moving = the solid disc, fixed = the C ring (the registration empties the hollow).
ShapePair DiscToCRingPair(const CRingOptions& options = {});

// The reference hard case, the classic circle → C pair: 256 × 256, unit spacing, outer radius
// 77 px, ring 25 px thick, a 40 px mouth (the hollow is 104 px across), sharp 0/1 edges, mouth
// towards +x. Moving = solid disc, fixed = C ring.
CRingOptions ReferenceCRing();
// The same geometry (a 256 mm field of view) on 64 × 64 pixels of 4 mm: a ring 6.25 px thick, a
// 10 px mouth onto a 26 px hollow, sharp edges. It is the reference problem for the metric
// (α in mm²) at a sixteenth of the pixels: a hard pair small enough for a unit test.
CRingOptions SmallHardCRing();
ShapePair SmallHardCRingPair();

// `image` moved by shift_mm (along the image axes, mm): out(x) = image(x − shift), linear
// interpolation; points that come from outside the grid take `background`. A shift by whole
// voxels copies values exactly.
Image TranslateImage(const Image& image, const std::array<double, 3>& shift_mm, double background);
// A pair that differs by the translation shift_mm: fixed = image moved by −shift/2, moving =
// image moved by +shift/2 (so the content needs |shift|/2 of margin on every side).
ShapePair TranslatedPair(const Image& image, const std::array<double, 3>& shift_mm,
                         double background);

// Maps the image's minimum to `low` and its maximum to `high` linearly (a constant image becomes
// `low`): e.g. [100, 1100], or a CT-like [−1000, 3000].
Image RescaleIntensity(const Image& image, double low, double high);

// A large random diffeomorphism φ = exp(v): the flow at time 1 of a stationary, smooth, seeded
// random velocity field v,
//     v_c(x) = s Σ_k a_{c,k} |k|^(−spectral_decay) sin(2π Σ_d k_d x_d / L_d + p_{c,k}),
// over the integer wave vectors k with 1 <= max_d |k_d| <= max_cycles (one of each pair ±k), x in
// mm from the first voxel, L_d = n_d·h_d the extent of axis d, a ~ N(0, 1) and p ~ U(0, 2π)
// drawn from `seed`. The flow dq/dt = v(q) is integrated per voxel by RK4 with v interpolated
// multilinearly from the grid (a Lipschitz field, whose flow is one-to-one), in steps of at most
// half a voxel. The scale s is solved for (a few flows) so that max_x |φ(x) − x| equals
// max_displacement_fraction × the largest extent max_d L_d (to a relative 1e-3). The inverse is
// exp(−v). Throws NumericalError if det Dφ (finite differences, image_ops.h) is not > 0 at every
// voxel — with the defaults it is, and the unit tests check it.
struct RandomDiffeomorphismOptions {
  double max_displacement_fraction = 0.10;
  int max_cycles = 2;              // cycles per field of view of the fastest mode
  double spectral_decay = 2.0;     // amplitude ∝ |k|^(−decay): the slowest modes dominate
  std::uint64_t seed = 0;
};

struct RandomDiffeomorphism {
  VectorField velocity_mm;              // v (mm per unit time)
  VectorField displacement_mm;          // u: φ(x) = x + u(x), φ = exp(v)
  VectorField inverse_displacement_mm;  // φ⁻¹ = exp(−v) = id + u⁻¹
  double max_displacement_mm = 0.0;     // max |u|
  double min_jacobian = 0.0;            // det Dφ on the grid
  double max_jacobian = 0.0;
  int steps = 0;                        // RK4 steps of the flow
};

RandomDiffeomorphism MakeRandomDiffeomorphism(const Grid& grid,
                                              const RandomDiffeomorphismOptions& options = {});

// A known large deformation of `image`: warped = image ∘ φ (linear interpolation, clamped) with
// φ = MakeRandomDiffeomorphism(image.grid, options); displacement_mm = φ − id.
WarpedPair MakeRandomlyWarpedPair(const Image& image,
                                  const RandomDiffeomorphismOptions& options = {});

// Landmarks (rows, N × 2) for the landmark benchmarks and tests: n landmarks evenly on the unit circle, and their image under
// the smooth diffeomorphism φ(x, y) = (x + a sin(π y), y + a cos(π x)) (det Dφ ≥ 1 − a²π² > 0
// for a < 1/π).
Eigen::MatrixXd CircleLandmarks(int n);
Eigen::MatrixXd SmoothWarpOfPoints(const Eigen::MatrixXd& points, double amplitude);

}  // namespace diffeoflow::registration
