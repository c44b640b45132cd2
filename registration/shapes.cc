#include "registration/shapes.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <string>

#include "registration/image_ops.h"
#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

void Validate(const ShapeOptions& o) {
  if (o.size < 16) throw InputError("shape image size must be >= 16, got " + std::to_string(o.size));
  if (!(o.radius_fraction > 0.0 && o.radius_fraction < 0.5)) {
    throw InputError("shape radius_fraction must be in (0, 0.5)");
  }
  if (!(o.bite_radius_fraction > 0.0) || !(o.bite_offset_fraction >= 0.0)) {
    throw InputError("shape bite radius must be > 0 and offset >= 0");
  }
  if (!(o.edge_width_px > 0.0)) throw InputError("shape edge_width_px must be > 0");
  if (!(o.noise_sigma >= 0.0)) throw InputError("shape noise_sigma must be >= 0");
}

// Draws 1 where signed_distance(x, y) < 0, with a tanh edge, plus seeded noise.
template <typename SignedDistance>
Image Draw(const ShapeOptions& o, SignedDistance&& sd) {
  Validate(o);
  Image image;
  image.grid.dim = 2;
  image.grid.size = {o.size, o.size, 1};
  image.data.resize(image.grid.voxels());
  const double c = 0.5 * (o.size - 1);
  for (int j = 0; j < o.size; ++j) {
    for (int i = 0; i < o.size; ++i) {
      const double d = sd(i - c, j - c);
      image.data[image.grid.index(i, j)] = 0.5 * (1.0 - std::tanh(d / o.edge_width_px));
    }
  }
  if (o.noise_sigma > 0.0) {
    std::mt19937_64 rng(o.seed);
    std::normal_distribution<double> noise(0.0, o.noise_sigma);
    for (Eigen::Index i = 0; i < image.data.size(); ++i) image.data[i] += noise(rng);
  }
  return image;
}

}  // namespace

Image DiscImage(const ShapeOptions& o) {
  const double r = o.radius_fraction * o.size;
  return Draw(o, [r](double x, double y) { return std::hypot(x, y) - r; });
}

Image CShapeImage(const ShapeOptions& o) {
  const double r = o.radius_fraction * o.size;
  const double rb = o.bite_radius_fraction * o.size;
  const double ob = o.bite_offset_fraction * o.size;
  // Signed distance of (disc minus bite) = max(d_disc, −d_bite).
  return Draw(o, [=](double x, double y) {
    return std::max(std::hypot(x, y) - r, rb - std::hypot(x - ob, y));
  });
}

ShapePair DiscToCPair(const ShapeOptions& options) {
  ShapeOptions fixed_options = options;
  fixed_options.seed = options.seed + 1;  // independent noise in the two images
  return ShapePair{DiscImage(options), CShapeImage(fixed_options)};
}

VectorField SmoothRandomDisplacement(const Grid& grid, const SmoothWarpOptions& o) {
  if (o.bumps < 1) throw InputError("smooth warp: bumps must be >= 1");
  if (!(o.width_fraction > 0.0)) throw InputError("smooth warp: width_fraction must be > 0");
  if (!(o.max_displacement_mm >= 0.0)) throw InputError("smooth warp: max displacement must be >= 0");
  if (!(o.max_gradient_norm > 0.0 && o.max_gradient_norm < 1.0)) {
    throw InputError("smooth warp: max_gradient_norm must be in (0, 1)");
  }
  const int dim = grid.dim;
  double fov = 0.0;
  for (int d = 0; d < dim; ++d) fov = std::max(fov, grid.size[d] * grid.spacing_mm[d]);
  const double s = o.width_fraction * fov;

  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> gauss(0.0, 1.0);
  std::vector<Eigen::Vector3d> centres(o.bumps), amplitudes(o.bumps);
  for (int b = 0; b < o.bumps; ++b) {
    Eigen::Vector3d c = Eigen::Vector3d::Zero(), a = Eigen::Vector3d::Zero();
    for (int d = 0; d < dim; ++d) {
      // Centres in the middle 80% of each axis, in voxel-aligned physical units (mm).
      c[d] = (0.1 + 0.8 * unit(rng)) * (grid.size[d] - 1) * grid.spacing_mm[d];
      a[d] = gauss(rng);
    }
    const double norm = a.norm();
    a = norm > 0.0 ? a * (o.max_displacement_mm * (0.5 + 0.5 * unit(rng)) / norm) : a;
    centres[b] = c;
    amplitudes[b] = a;
  }
  // |∇(a exp(−|x−c|²/2s²))| <= |a| e^{−1/2} / s (spectral norm): bound the sum by the budget.
  double gradient_bound = 0.0;
  for (const auto& a : amplitudes) gradient_bound += a.norm() * std::exp(-0.5) / s;
  const double scale =
      gradient_bound > o.max_gradient_norm ? o.max_gradient_norm / gradient_bound : 1.0;

  VectorField u{grid, Eigen::VectorXd::Zero(dim * grid.voxels())};
  const Eigen::Index n = grid.voxels();
  const int nz = dim == 3 ? grid.size[2] : 1;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < grid.size[1]; ++j) {
      for (int i = 0; i < grid.size[0]; ++i) {
        const Eigen::Vector3d x(i * grid.spacing_mm[0], j * grid.spacing_mm[1],
                                dim == 3 ? k * grid.spacing_mm[2] : 0.0);
        const Eigen::Index idx = grid.index(i, j, k);
        for (int b = 0; b < o.bumps; ++b) {
          const double w = std::exp(-(x - centres[b]).squaredNorm() / (2.0 * s * s)) * scale;
          for (int d = 0; d < dim; ++d) u.data[d * n + idx] += w * amplitudes[b][d];
        }
      }
    }
  }
  // Overlapping bumps add up: scale down (which keeps the map a diffeomorphism) so that
  // max |u| <= max_displacement_mm.
  double largest = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    double norm2 = 0.0;
    for (int d = 0; d < dim; ++d) norm2 += u.data[d * n + i] * u.data[d * n + i];
    largest = std::max(largest, norm2);
  }
  largest = std::sqrt(largest);
  if (largest > o.max_displacement_mm && largest > 0.0) u.data *= o.max_displacement_mm / largest;
  return u;
}

WarpedPair MakeWarpedPair(const Image& image, const SmoothWarpOptions& options) {
  WarpedPair pair;
  pair.original = image;
  pair.displacement_mm = SmoothRandomDisplacement(image.grid, options);
  const VectorField phi = PositionFromDisplacement(pair.displacement_mm);
  pair.warped = WarpImage(image, phi);
  return pair;
}

}  // namespace diffeoflow::registration
