#include "registration/shapes.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <random>
#include <string>
#include <vector>

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

// ---------------------------------------------------------------------------------------------
// Hard cases

namespace {

// Draws `low`/`high` from a signed distance (negative inside), sharp or with a tanh edge.
template <typename SignedDistance>
Image DrawCRingShape(const CRingOptions& o, SignedDistance&& sd) {
  ValidateCRing(o);
  Image image;
  image.grid.dim = 2;
  image.grid.size = {o.size, o.size, 1};
  image.grid.spacing_mm = {o.spacing_mm, o.spacing_mm, 1.0};
  image.data.resize(image.grid.voxels());
  const double cx = 0.5 * (o.size - 1) + o.centre_offset_px[0];
  const double cy = 0.5 * (o.size - 1) + o.centre_offset_px[1];
  const double angle = o.rotation_deg * std::numbers::pi / 180.0;
  const double ca = std::cos(angle), sa = std::sin(angle);
  for (int j = 0; j < o.size; ++j) {
    for (int i = 0; i < o.size; ++i) {
      // Coordinates in the shape's frame: x' along the mouth, y' across it.
      const double x = i - cx, y = j - cy;
      const double d = sd(ca * x + sa * y, -sa * x + ca * y);
      const double inside = o.edge_width_px > 0.0 ? 0.5 * (1.0 - std::tanh(d / o.edge_width_px))
                                                  : (d < 0.0 ? 1.0 : 0.0);
      image.data[image.grid.index(i, j)] = o.low + (o.high - o.low) * inside;
    }
  }
  return image;
}

}  // namespace

void ValidateCRing(const CRingOptions& o) {
  auto fail = [](const std::string& what) { throw InputError("C ring: " + what); };
  if (o.size < 16) fail("size must be >= 16, got " + std::to_string(o.size));
  if (!(o.spacing_mm > 0.0)) fail("spacing_mm must be > 0");
  if (!(o.outer_radius_px > 0.0)) fail("outer_radius_px must be > 0");
  if (!(o.thickness_px > 0.0 && o.thickness_px <= o.outer_radius_px)) {
    fail("thickness_px must be in (0, outer_radius_px]");
  }
  if (!(o.mouth_width_px >= 0.0 && o.mouth_width_px < 2.0 * o.outer_radius_px)) {
    fail("mouth_width_px must be in [0, 2 outer_radius_px)");
  }
  if (!std::isfinite(o.rotation_deg)) fail("rotation_deg must be finite");
  if (!(o.edge_width_px >= 0.0)) fail("edge_width_px must be >= 0");
  if (!std::isfinite(o.low) || !std::isfinite(o.high)) fail("low and high must be finite");
  const double half = 0.5 * (o.size - 1);
  for (const double offset : o.centre_offset_px) {
    if (!(std::abs(offset) + o.outer_radius_px <= half)) {
      fail("the shape (outer_radius_px + |centre_offset_px|) must fit inside the image");
    }
  }
}

Image CRingImage(const CRingOptions& o) {
  const double outer = o.outer_radius_px, inner = o.outer_radius_px - o.thickness_px;
  const double half_mouth = 0.5 * o.mouth_width_px;
  return DrawCRingShape(o, [=](double x, double y) {
    const double r = std::hypot(x, y);
    const double annulus = std::max(r - outer, inner - r);
    if (half_mouth <= 0.0) return annulus;
    // The slot {x' > 0, |y'| < w/2}; the C is the annulus minus the slot.
    const double slot = std::max(std::abs(y) - half_mouth, -x);
    return std::max(annulus, -slot);
  });
}

Image CRingDiscImage(const CRingOptions& o) {
  const double outer = o.outer_radius_px;
  return DrawCRingShape(o, [=](double x, double y) { return std::hypot(x, y) - outer; });
}

ShapePair DiscToCRingPair(const CRingOptions& options) {
  return ShapePair{CRingDiscImage(options), CRingImage(options)};
}

CRingOptions ReferenceCRing() { return CRingOptions{}; }

CRingOptions SmallHardCRing() {
  const CRingOptions reference = ReferenceCRing();
  const double shrink = 4.0;
  CRingOptions o = reference;
  o.size = static_cast<int>(reference.size / shrink);
  o.spacing_mm = reference.spacing_mm * shrink;
  o.outer_radius_px = reference.outer_radius_px / shrink;
  o.thickness_px = reference.thickness_px / shrink;
  o.mouth_width_px = reference.mouth_width_px / shrink;
  return o;
}

ShapePair SmallHardCRingPair() { return DiscToCRingPair(SmallHardCRing()); }

Image TranslateImage(const Image& image, const std::array<double, 3>& shift_mm,
                     double background) {
  const Grid& g = image.grid;
  const int dim = g.dim;
  Image out = image;
  std::array<double, 3> shift{0.0, 0.0, 0.0};
  for (int d = 0; d < dim; ++d) {
    if (!std::isfinite(shift_mm[d])) throw InputError("translation: shift_mm must be finite");
    shift[d] = shift_mm[d] / g.spacing_mm[d];
  }
  const int nz = dim == 3 ? g.size[2] : 1;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < g.size[1]; ++j) {
      for (int i = 0; i < g.size[0]; ++i) {
        const std::array<double, 3> p{i - shift[0], j - shift[1], k - shift[2]};
        bool outside = false;
        for (int d = 0; d < dim; ++d) {
          // A whole-voxel shift lands on voxel centres; a margin of 1e-9 keeps them inside.
          outside = outside || p[d] < -1e-9 || p[d] > g.size[d] - 1 + 1e-9;
        }
        out.data[g.index(i, j, k)] =
            outside ? background : SampleLinear(g, image.data.data(), p[0], p[1], p[2]);
      }
    }
  }
  return out;
}

ShapePair TranslatedPair(const Image& image, const std::array<double, 3>& shift_mm,
                         double background) {
  const std::array<double, 3> half{0.5 * shift_mm[0], 0.5 * shift_mm[1], 0.5 * shift_mm[2]};
  const std::array<double, 3> minus_half{-half[0], -half[1], -half[2]};
  return ShapePair{TranslateImage(image, half, background),
                   TranslateImage(image, minus_half, background)};
}

Image RescaleIntensity(const Image& image, double low, double high) {
  if (!std::isfinite(low) || !std::isfinite(high)) {
    throw InputError("intensity rescaling: low and high must be finite");
  }
  if (image.data.size() == 0) return image;
  const double lo = image.data.minCoeff(), hi = image.data.maxCoeff();
  Image out = image;
  if (!(hi > lo)) {
    out.data.setConstant(low);
    return out;
  }
  out.data = ((image.data.array() - lo) * ((high - low) / (hi - lo)) + low).matrix();
  return out;
}

namespace {

// One Fourier mode of the random velocity: wave vector k and, per component, the complex
// coefficient A with v_c += Im(A e^{2πi k·x/L}) = |A| sin(2π k·x/L + arg A).
struct VelocityMode {
  std::array<int, 3> k{0, 0, 0};
  std::array<std::complex<double>, 3> coefficient{};
};

// The unit-scale random velocity (mm per unit time) on `grid`.
VectorField RandomVelocity(const Grid& grid, const RandomDiffeomorphismOptions& o) {
  const int dim = grid.dim;
  const int K = o.max_cycles;
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> gauss(0.0, 1.0);
  std::uniform_real_distribution<double> phase(0.0, 2.0 * std::numbers::pi);
  std::vector<VelocityMode> modes;
  const int kz_max = dim == 3 ? K : 0;
  for (int kz = -kz_max; kz <= kz_max; ++kz) {
    for (int ky = -K; ky <= K; ++ky) {
      for (int kx = -K; kx <= K; ++kx) {
        // One of each pair ±k: the first nonzero component (in the order z, y, x) positive.
        const int first = kz != 0 ? kz : (ky != 0 ? ky : kx);
        if (first <= 0) continue;
        VelocityMode mode;
        mode.k = {kx, ky, kz};
        const double norm = std::sqrt(static_cast<double>(kx * kx + ky * ky + kz * kz));
        const double envelope = std::pow(norm, -o.spectral_decay);
        for (int c = 0; c < dim; ++c) {
          const double a = gauss(rng) * envelope;
          mode.coefficient[c] = std::polar(1.0, phase(rng)) * a;
        }
        modes.push_back(mode);
      }
    }
  }
  // e_d[k + K][i] = exp(2πi k x_i / L_d), x_i = i·h_d, L_d = n_d·h_d (so the spacing cancels).
  std::array<std::vector<std::vector<std::complex<double>>>, 3> waves;
  for (int d = 0; d < 3; ++d) {
    const int n = grid.size[d];
    waves[d].assign(2 * K + 1, std::vector<std::complex<double>>(n, 1.0));
    if (d >= dim) continue;
    for (int k = -K; k <= K; ++k) {
      for (int i = 0; i < n; ++i) {
        waves[d][k + K][i] = std::polar(1.0, 2.0 * std::numbers::pi * k * i / n);
      }
    }
  }
  const Eigen::Index n = grid.voxels();
  VectorField v{grid, Eigen::VectorXd::Zero(dim * n)};
  const int nz = dim == 3 ? grid.size[2] : 1;
  for (int z = 0; z < nz; ++z) {
    for (int y = 0; y < grid.size[1]; ++y) {
      for (int x = 0; x < grid.size[0]; ++x) {
        const Eigen::Index idx = grid.index(x, y, z);
        for (const VelocityMode& m : modes) {
          const std::complex<double> e = waves[0][m.k[0] + K][x] * waves[1][m.k[1] + K][y] *
                                         waves[2][m.k[2] + K][z];
          for (int c = 0; c < dim; ++c) v.data[c * n + idx] += std::imag(m.coefficient[c] * e);
        }
      }
    }
  }
  return v;
}

double MaxVectorNorm(const VectorField& field) {
  const Eigen::Index n = field.grid.voxels();
  double largest = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    double norm2 = 0.0;
    for (int c = 0; c < field.grid.dim; ++c) norm2 += field.data[c * n + i] * field.data[c * n + i];
    largest = std::max(largest, norm2);
  }
  return std::sqrt(largest);
}

// The displacement (mm) of the time-1 flow of scale·v, every voxel's path integrated by RK4 with
// v interpolated multilinearly (clamped), in `steps` equal steps.
VectorField Flow(const VectorField& v, double scale, int steps) {
  const Grid& g = v.grid;
  const int dim = g.dim;
  const Eigen::Index n = g.voxels();
  // The velocity in voxels per unit time, one block per component.
  Eigen::VectorXd w = v.data * scale;
  for (int c = 0; c < dim; ++c) w.segment(c * n, n) /= g.spacing_mm[c];
  auto velocity = [&](const std::array<double, 3>& q) {
    std::array<double, 3> out{0.0, 0.0, 0.0};
    for (int c = 0; c < dim; ++c) out[c] = SampleLinear(g, w.data() + c * n, q[0], q[1], q[2]);
    return out;
  };
  const double h = 1.0 / steps;
  VectorField u{g, Eigen::VectorXd::Zero(dim * n)};
  const int nz = dim == 3 ? g.size[2] : 1;
  for (int z = 0; z < nz; ++z) {
    for (int y = 0; y < g.size[1]; ++y) {
      for (int x = 0; x < g.size[0]; ++x) {
        std::array<double, 3> q{static_cast<double>(x), static_cast<double>(y),
                                static_cast<double>(z)};
        const std::array<double, 3> start = q;
        for (int s = 0; s < steps; ++s) {
          auto shifted = [&](const std::array<double, 3>& k, double t) {
            return std::array<double, 3>{q[0] + t * k[0], q[1] + t * k[1], q[2] + t * k[2]};
          };
          const auto k1 = velocity(q);
          const auto k2 = velocity(shifted(k1, 0.5 * h));
          const auto k3 = velocity(shifted(k2, 0.5 * h));
          const auto k4 = velocity(shifted(k3, h));
          for (int c = 0; c < dim; ++c) {
            q[c] += h / 6.0 * (k1[c] + 2.0 * k2[c] + 2.0 * k3[c] + k4[c]);
          }
        }
        const Eigen::Index idx = g.index(x, y, z);
        for (int c = 0; c < dim; ++c) u.data[c * n + idx] = (q[c] - start[c]) * g.spacing_mm[c];
      }
    }
  }
  return u;
}

// RK4 steps for the flow of scale·v: at most half a voxel per step, at least 8.
int FlowSteps(const VectorField& v, double scale) {
  const Eigen::Index n = v.grid.voxels();
  double fastest = 0.0;  // voxels per unit time
  for (Eigen::Index i = 0; i < n; ++i) {
    double norm2 = 0.0;
    for (int c = 0; c < v.grid.dim; ++c) {
      norm2 += std::pow(scale * v.data[c * n + i] / v.grid.spacing_mm[c], 2);
    }
    fastest = std::max(fastest, norm2);
  }
  return std::max(8, static_cast<int>(std::ceil(2.0 * std::sqrt(fastest))));
}

}  // namespace

RandomDiffeomorphism MakeRandomDiffeomorphism(const Grid& grid,
                                              const RandomDiffeomorphismOptions& o) {
  if (!(o.max_displacement_fraction > 0.0 && o.max_displacement_fraction < 1.0)) {
    throw InputError("random diffeomorphism: max_displacement_fraction must be in (0, 1)");
  }
  if (o.max_cycles < 1) throw InputError("random diffeomorphism: max_cycles must be >= 1");
  if (!(o.spectral_decay >= 0.0)) {
    throw InputError("random diffeomorphism: spectral_decay must be >= 0");
  }
  if (grid.dim != 2 && grid.dim != 3) throw InputError("random diffeomorphism: dim must be 2 or 3");
  double fov = 0.0;
  for (int d = 0; d < grid.dim; ++d) fov = std::max(fov, grid.size[d] * grid.spacing_mm[d]);
  const double target = o.max_displacement_fraction * fov;

  RandomDiffeomorphism result;
  const VectorField unit = RandomVelocity(grid, o);
  const double unit_speed = MaxVectorNorm(unit);
  if (!(unit_speed > 0.0)) throw NumericalError("random diffeomorphism: the velocity is zero");
  // max |exp(s v) − id| is close to s·max|v| for moderate s: a few rescalings s ← s·target/max|u|
  // converge to a relative 1e-3.
  double scale = target / unit_speed;
  bool converged = false;
  for (int attempt = 0; attempt < 30 && !converged; ++attempt) {
    result.steps = FlowSteps(unit, scale);
    result.displacement_mm = Flow(unit, scale, result.steps);
    result.max_displacement_mm = MaxVectorNorm(result.displacement_mm);
    converged = std::abs(result.max_displacement_mm - target) <= 1e-3 * target;
    if (!converged) scale *= target / result.max_displacement_mm;
  }
  if (!converged) {
    throw NumericalError("random diffeomorphism: could not reach the asked max displacement " +
                         std::to_string(target) + " mm (lower max_displacement_fraction)");
  }
  result.velocity_mm = unit;
  result.velocity_mm.data *= scale;
  result.inverse_displacement_mm = Flow(unit, -scale, result.steps);
  const Image det = JacobianDeterminant(result.displacement_mm);
  result.min_jacobian = det.data.minCoeff();
  result.max_jacobian = det.data.maxCoeff();
  if (!(result.min_jacobian > 0.0)) {
    throw NumericalError(
        "random diffeomorphism: det Dphi <= 0 on the grid (min " +
        std::to_string(result.min_jacobian) +
        "): the field is too rough for the grid; lower max_cycles or max_displacement_fraction");
  }
  return result;
}

WarpedPair MakeRandomlyWarpedPair(const Image& image, const RandomDiffeomorphismOptions& options) {
  WarpedPair pair;
  pair.original = image;
  pair.displacement_mm = MakeRandomDiffeomorphism(image.grid, options).displacement_mm;
  pair.warped = WarpImage(image, PositionFromDisplacement(pair.displacement_mm));
  return pair;
}

Eigen::MatrixXd CircleLandmarks(int n) {
  Eigen::MatrixXd points(n, 2);
  for (int i = 0; i < n; ++i) {
    const double a = 2.0 * M_PI * i / n;
    points.row(i) << std::cos(a), std::sin(a);
  }
  return points;
}

Eigen::MatrixXd SmoothWarpOfPoints(const Eigen::MatrixXd& points, double amplitude) {
  Eigen::MatrixXd out = points;
  for (Eigen::Index i = 0; i < points.rows(); ++i) {
    out(i, 0) += amplitude * std::sin(M_PI * points(i, 1));
    out(i, 1) += amplitude * std::cos(M_PI * points(i, 0));
  }
  return out;
}

}  // namespace diffeoflow::registration
