// Synthetic test data the project draws itself: the 2-D "disc to C" demo pair, and smooth random
// warps to make a known deformation of any image (e.g. a brain against a warped copy of itself).
#pragma once

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

}  // namespace diffeoflow::registration
