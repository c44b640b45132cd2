#include "registration/affine.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <memory>
#include <numbers>
#include <optional>
#include <sstream>
#include <string>

#include <ceres/jet.h>
#include <ceres/rotation.h>
#include <Eigen/Eigenvalues>
#include <Eigen/SVD>

#include "registration/image_ops.h"
#include "registration/world_space.h"
#include "solvers/clock.h"
#include "solvers/errors.h"
#include "solvers/optimize.h"
#include "solvers/thread_pool.h"

namespace diffeoflow::registration {
namespace {

// Below this many fixed voxels a range is not worth a thread (as the deformable data term).
constexpr Eigen::Index kVoxelsPerThread = 16384;

using Index = Eigen::Index;
constexpr int kMaxParameters = 12;
using Jet = ceres::Jet<double, kMaxParameters>;

// Parameters of B(p), unscaled: 3-D θ(3) t(3) s(3) h(3); 2-D θ t(2) s(2) h.
int FullParameterCount(int dim) { return dim == 3 ? 12 : 6; }
int ActiveParameterCount(AffineMode mode, int dim) {
  if (mode == AffineMode::kRigid) return dim == 3 ? 6 : 3;
  return FullParameterCount(dim);
}
// True for the entries the optimiser sees multiplied by ρ (rotation, log-scale, shear).
bool IsScaled(int k, int dim) {
  const int rotation = dim == 3 ? 3 : 1;
  return k < rotation || k >= rotation + dim;
}

// Bounds of the log-scales (scales in (½, 2)) and of the shears (|h| < ½), reached smoothly:
// s = b·tanh(u/b), an identity to first order at 0, so that an affine well inside the bounds is
// found as it is, while a descent path that would shrink the moving object to nothing (on shapes
// whose SSD prefers no object at all, e.g. a disc against a thin ring) is cut off.
constexpr double kMaxLogScale = 0.6931471805599453;  // ln 2
constexpr double kMaxShear = 0.5;

// Unscaled parameters p of the optimiser's variables x (ρ: radius of the field of view).
template <typename T>
void ParametersOf(const T* x, int active, int dim, double radius, T* p) {
  using std::tanh;
  const int rotation = dim == 3 ? 3 : 1;
  for (int k = 0; k < active; ++k) {
    p[k] = IsScaled(k, dim) ? x[k] / radius : x[k];
    if (k >= rotation + dim && k < rotation + 2 * dim) {
      p[k] = kMaxLogScale * tanh(p[k] / kMaxLogScale);
    } else if (k >= rotation + 2 * dim) {
      p[k] = kMaxShear * tanh(p[k] / kMaxShear);
    }
  }
}

// M = R(θ)·U(h)·diag(exp(s)) and t of B(p) (3 × 3 and 3, identity and 0 beyond the plane in 2-D).
template <typename T>
void LinearPart(const T* p, int dim, T M[3][3], T t[3]) {
  using std::cos;
  using std::exp;
  using std::sin;
  T R[3][3], U[3][3], S[3];
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      R[r][c] = T(r == c ? 1.0 : 0.0);
      U[r][c] = T(r == c ? 1.0 : 0.0);
    }
    S[r] = T(1.0);
    t[r] = T(0.0);
  }
  if (dim == 3) {
    T rotation[9];
    ceres::AngleAxisToRotationMatrix(p, ceres::RowMajorAdapter3x3(rotation));
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 3; ++c) R[r][c] = rotation[3 * r + c];
    }
    for (int d = 0; d < 3; ++d) {
      t[d] = p[3 + d];
      S[d] = exp(p[6 + d]);
    }
    U[0][1] = p[9];
    U[0][2] = p[10];
    U[1][2] = p[11];
  } else {
    R[0][0] = cos(p[0]);
    R[0][1] = -sin(p[0]);
    R[1][0] = sin(p[0]);
    R[1][1] = cos(p[0]);
    t[0] = p[1];
    t[1] = p[2];
    S[0] = exp(p[3]);
    S[1] = exp(p[4]);
    U[0][1] = p[5];
  }
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      T sum = T(0.0);
      for (int k = 0; k < 3; ++k) sum += R[r][k] * U[k][c];
      M[r][c] = sum * S[c];
    }
  }
}

// B(p) x = M (x − c) + c + t as a 4 × 4 matrix of type T.
template <typename T>
Eigen::Matrix<T, 4, 4> AffineOf(const T* p, const Eigen::Vector3d& centre, int dim) {
  T M[3][3], t[3];
  LinearPart(p, dim, M, t);
  Eigen::Matrix<T, 4, 4> B = Eigen::Matrix<T, 4, 4>::Identity();
  for (int r = 0; r < 3; ++r) {
    T offset = T(centre[r]) + t[r];
    for (int c = 0; c < 3; ++c) {
      B(r, c) = M[r][c];
      offset -= M[r][c] * centre[c];
    }
    B(r, 3) = offset;
  }
  return B;
}

// Voxel → world of a grid as a 4 × 4 matrix.
Eigen::Matrix4d VoxelToWorld(const Grid& g) {
  Eigen::Matrix4d m = Eigen::Matrix4d::Identity();
  m.topLeftCorner<3, 3>() =
      g.direction * Eigen::Vector3d(g.spacing_mm[0], g.spacing_mm[1], g.spacing_mm[2]).asDiagonal();
  m.topRightCorner<3, 1>() = Eigen::Vector3d(g.origin_mm[0], g.origin_mm[1], g.origin_mm[2]);
  return m;
}

// Half the largest extent of the voxel-corner box of `grid` (mm): ρ, the scale of θ, s and h.
double FieldOfViewRadius(const Grid& grid) {
  const WorldBox box = WorldBoundingBox(grid);
  double radius = 1e-6;
  for (int d = 0; d < grid.dim; ++d) radius = std::max(radius, 0.5 * (box.upper[d] - box.lower[d]));
  return radius;
}

// InputError unless the two images have the same dimension.
void RequireSameDimension(const Image& moving, const Image& fixed) {
  if (moving.grid.dim != fixed.grid.dim) {
    throw InputError("affine stage: a " + std::to_string(moving.grid.dim) +
                     "-D moving image and a " + std::to_string(fixed.grid.dim) + "-D fixed image");
  }
}

// The energy of one pyramid level as a function of the optimiser's variables x (active, scaled).
class AffineLevelObjective : public Objective {
 public:
  AffineLevelObjective(const Image& moving, const Image& fixed, const AffineOptions& options,
                       const Eigen::Matrix4d& start, const Eigen::Vector3d& centre, double radius,
                       const Eigen::VectorXd& fixed_parameters)
      : moving_(moving),
        fixed_(fixed),
        options_(options),
        centre_(centre),
        radius_(radius),
        full_(fixed_parameters),
        active_(ActiveParameterCount(options.mode, fixed.grid.dim)),
        background_(BackgroundValue(moving)),
        warped_(fixed.grid.voxels()),
        force_(fixed.grid.voxels()),
        image_gradient_(3 * fixed.grid.voxels()) {
    const Index rows = fixed.grid.voxels() / fixed.grid.size[0];
    row_gradient_.resize(12 * rows);
    pool_ = std::make_unique<ThreadPool>(
        RangesFor(options.threads, fixed.grid.voxels(), kVoxelsPerThread));
    // q = Vm · A_start · B(p) · Vf p, with Vm the world → moving voxel map and Vf the fixed
    // voxel → world map: the left and right constant factors.
    left_ = VoxelToWorld(moving.grid).inverse() * start;
    right_ = VoxelToWorld(fixed.grid);
    if (options.similarity == SimilarityMeasure::kLocalNcc) {
      LocalNccOptions ncc;
      ncc.radius = options.ncc_radius;
      ncc_.emplace(fixed.grid, ncc, pool_.get());
    }
  }

  Index num_parameters() const override { return active_; }

  // Unscaled full parameters for optimiser variables x.
  Eigen::VectorXd Parameters(const Vector& x) const {
    Eigen::VectorXd p = full_;
    ParametersOf(x.data(), active_, fixed_.grid.dim, radius_, p.data());
    return p;
  }

  double Evaluate(const Vector& x, Vector* gradient) override {
    const int dim = fixed_.grid.dim;
    Jet seeded[kMaxParameters], p[kMaxParameters];
    for (int k = 0; k < FullParameterCount(dim); ++k) {
      p[k] = Jet(full_[k]);
      if (k < active_) seeded[k] = Jet(x[k], k);
    }
    ParametersOf(seeded, active_, dim, radius_, p);
    const Eigen::Matrix<Jet, 4, 4> q_of_p =
        left_.cast<Jet>() * AffineOf(p, centre_, dim) * right_.cast<Jet>();
    Eigen::Matrix<double, 3, 4> Q;
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 4; ++c) Q(r, c) = q_of_p(r, c).a;
    }
    const bool need_gradient = gradient != nullptr;
    const Grid& fg = fixed_.grid;
    const Grid& mg = moving_.grid;
    const Index n = fg.voxels();
    const int nz = fg.dim == 3 ? fg.size[2] : 1;
    const double* data = moving_.data.data();
    const int nx = fg.size[0], ny = fg.size[1];
    const Index rows = static_cast<Index>(ny) * nz;
    // Row by row (j, k) on the pool's ranges.
    pool_->ForRanges(rows, [&](Index begin, Index end, int) {
      for (Index r = begin; r < end; ++r) {
        const int j = static_cast<int>(r % ny), k = static_cast<int>(r / ny);
        const Eigen::Vector3d row = Q.col(1) * j + Q.col(2) * k + Q.col(3);
        for (int i = 0; i < nx; ++i) {
          const Index idx = r * nx + i;
          const Eigen::Vector3d q = row + Q.col(0) * i;
          bool inside = true;
          for (int d = 0; d < dim; ++d) inside = inside && q[d] >= -0.5 && q[d] <= mg.size[d] - 0.5;
          double g[3] = {0.0, 0.0, 0.0};
          warped_[idx] =
              inside ? SampleLinearWithGradient(mg, data, q[0], q[1], q[2], g) : background_;
          for (int d = 0; d < 3; ++d) image_gradient_[d * n + idx] = g[d];
        }
      }
    });
    double energy;
    if (ncc_) {
      energy = need_gradient ? ncc_->EnergyAndGradient(warped_, fixed_.data, force_)
                             : ncc_->Energy(warped_, fixed_.data);
    } else {
      energy = need_gradient ? SsdEnergyAndGradient(fg, warped_, fixed_.data, 1.0, force_)
                             : SsdEnergy(fg, warped_, fixed_.data, 1.0);
    }
    if (!need_gradient) return energy;
    // ∂E/∂Q(r, c) = Σ_x f(x) ∇I_r(x) · (i, j, k, 1)_c: a sum per row on the ranges, then the
    // rows in order (the same bits for any thread count).
    pool_->ForRanges(rows, [&](Index begin, Index end, int) {
      for (Index row = begin; row < end; ++row) {
        const int j = static_cast<int>(row % ny), k = static_cast<int>(row / ny);
        double* sums = row_gradient_.data() + 12 * row;
        std::fill(sums, sums + 12, 0.0);
        for (int i = 0; i < nx; ++i) {
          const Index idx = row * nx + i;
          const double f = force_[idx];
          if (f == 0.0) continue;
          for (int r = 0; r < dim; ++r) {
            const double a = f * image_gradient_[r * n + idx];
            sums[4 * r + 0] += a * i;
            sums[4 * r + 1] += a * j;
            sums[4 * r + 2] += a * k;
            sums[4 * r + 3] += a;
          }
        }
      }
    });
    Eigen::Matrix<double, 3, 4> dQ = Eigen::Matrix<double, 3, 4>::Zero();
    for (Index row = 0; row < rows; ++row) {
      for (int r = 0; r < dim; ++r) {
        for (int c = 0; c < 4; ++c) dQ(r, c) += row_gradient_[12 * row + 4 * r + c];
      }
    }
    gradient->setZero(active_);
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 4; ++c) {
        for (int m = 0; m < active_; ++m) (*gradient)[m] += dQ(r, c) * q_of_p(r, c).v[m];
      }
    }
    return energy;
  }

 private:
  const Image& moving_;
  const Image& fixed_;
  AffineOptions options_;
  Eigen::Vector3d centre_;
  double radius_;
  Eigen::VectorXd full_;
  int active_;
  double background_;
  Eigen::Matrix4d left_, right_;
  std::unique_ptr<ThreadPool> pool_;
  std::optional<LocalNcc> ncc_;  // runs on pool_
  Eigen::VectorXd warped_, force_, image_gradient_;
  Eigen::VectorXd row_gradient_;  // ∂E/∂Q summed per row of fixed voxels (12 per row)
};

}  // namespace

std::string AffineModeName(AffineMode mode) {
  switch (mode) {
    case AffineMode::kNone: return "none";
    case AffineMode::kRigid: return "rigid";
    case AffineMode::kAffine: return "affine";
  }
  return "none";
}

AffineMode ParseAffineMode(const std::string& name, const std::string& argument) {
  if (name == "none") return AffineMode::kNone;
  if (name == "rigid") return AffineMode::kRigid;
  if (name == "affine") return AffineMode::kAffine;
  throw InputError(argument + ": unknown mode '" + name + "' (expected none, rigid or affine)");
}

void AffineOptions::Validate() const {
  if (levels < 1) throw InputError("--affine-levels must be >= 1, got " + std::to_string(levels));
  if (iterations < 0) {
    throw InputError("--affine-iterations must be >= 0, got " + std::to_string(iterations));
  }
  if (max_voxels < 1) throw InputError("affine max_voxels must be >= 1");
  if (!(function_tolerance >= 0)) throw InputError("affine function_tolerance must be >= 0");
  if (ncc_radius < 1) throw InputError("--ncc-radius must be >= 1");
}

Eigen::Vector3d FieldOfViewCentre(const Grid& grid) {
  Eigen::Vector3d middle = Eigen::Vector3d::Zero();
  for (int d = 0; d < grid.dim; ++d) middle[d] = 0.5 * (grid.size[d] - 1);
  return grid.VoxelToPhysical(middle);
}

Eigen::Vector3d IntensityCentroid(const Image& image, double background) {
  const Grid& g = image.grid;
  Eigen::Vector3d sum = Eigen::Vector3d::Zero();
  double mass = 0.0;
  const int nz = g.dim == 3 ? g.size[2] : 1;
  Index idx = 0;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < g.size[1]; ++j) {
      for (int i = 0; i < g.size[0]; ++i, ++idx) {
        const double w = image.data[idx] - background;
        if (w <= 0) continue;
        sum += w * Eigen::Vector3d(i, j, k);
        mass += w;
      }
    }
  }
  if (!(mass > 0)) return FieldOfViewCentre(g);
  return g.VoxelToPhysical(sum / mass);
}

Eigen::Matrix4d AffineFromParameters(const Eigen::VectorXd& parameters,
                                     const Eigen::Vector3d& centre, int dim) {
  Eigen::VectorXd p = Eigen::VectorXd::Zero(FullParameterCount(dim));
  if (parameters.size() > p.size()) {
    throw InputError("AffineFromParameters: " + std::to_string(parameters.size()) +
                     " parameters, at most " + std::to_string(p.size()) + " expected");
  }
  p.head(parameters.size()) = parameters;
  return AffineOf(p.data(), centre, dim);
}

AffineDescription DescribeAffine(const Eigen::Matrix4d& affine, int dim) {
  AffineDescription d;
  const Eigen::MatrixXd L = affine.topLeftCorner(dim, dim);
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(L, Eigen::ComputeFullU | Eigen::ComputeFullV);
  Eigen::MatrixXd U = svd.matrixU(), V = svd.matrixV();
  Eigen::VectorXd sigma = svd.singularValues();
  // A reflection (det < 0) goes into S, so that R stays a rotation.
  if ((U * V.transpose()).determinant() < 0) {
    U.col(dim - 1) *= -1.0;
    sigma[dim - 1] *= -1.0;
  }
  const Eigen::MatrixXd R = U * V.transpose();
  const Eigen::MatrixXd S = V * sigma.asDiagonal() * V.transpose();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(S);
  for (int k = 0; k < dim; ++k) d.scales.push_back(eig.eigenvalues()[k]);
  d.determinant = L.determinant();
  if (dim == 2) {
    d.rotation_degrees = std::atan2(R(1, 0), R(0, 0)) * 180.0 / std::numbers::pi;
    d.rotation_axis = Eigen::Vector3d::UnitZ();
    return d;
  }
  const double cosine = std::clamp(0.5 * (R.trace() - 1.0), -1.0, 1.0);
  d.rotation_degrees = std::acos(cosine) * 180.0 / std::numbers::pi;
  const Eigen::Vector3d axis(R(2, 1) - R(1, 2), R(0, 2) - R(2, 0), R(1, 0) - R(0, 1));
  if (axis.norm() > 1e-12) d.rotation_axis = axis.normalized();
  return d;
}

double AffineStageEnergy(const Image& moving, const Image& fixed, const AffineOptions& options,
                         const Eigen::Matrix4d& start, const Eigen::VectorXd& x,
                         Eigen::VectorXd* gradient) {
  options.Validate();
  const int dim = fixed.grid.dim;
  RequireSameDimension(moving, fixed);
  if (options.mode == AffineMode::kNone) {
    throw InputError("affine stage energy: mode none has no parameters to evaluate E at");
  }
  const int active = ActiveParameterCount(options.mode, dim);
  if (x.size() != active) {
    throw InputError("affine stage energy: " + std::to_string(x.size()) + " variables for " +
                     std::to_string(active) + " active parameters (" +
                     AffineModeName(options.mode) + ", " + std::to_string(dim) + "-D)");
  }
  AffineLevelObjective objective(moving, fixed, options, start, FieldOfViewCentre(fixed.grid),
                                 FieldOfViewRadius(fixed.grid),
                                 Eigen::VectorXd::Zero(FullParameterCount(dim)));
  return objective.Evaluate(x, gradient);
}

AffineStageResult RegisterAffine(const Image& moving, const Image& fixed,
                                 const AffineOptions& options, const Eigen::Matrix4d* start) {
  options.Validate();
  const auto clock_start = std::chrono::steady_clock::now();
  const int dim = fixed.grid.dim;
  RequireSameDimension(moving, fixed);
  AffineStageResult result;
  if (start != nullptr) {
    result.start = *start;
  } else {
    const Eigen::Vector3d shift = IntensityCentroid(moving, BackgroundValue(moving)) -
                                  IntensityCentroid(fixed, BackgroundValue(fixed));
    result.start.topRightCorner(dim, 1) = shift.head(dim);
  }
  result.affine = result.start;
  result.parameters = Eigen::VectorXd::Zero(FullParameterCount(dim));
  if (options.mode == AffineMode::kNone) {
    result.wall_seconds = SecondsSince(clock_start);
    return result;
  }

  // Pyramids, finest first while building; levels above max_voxels are dropped afterwards.
  std::vector<Image> fixed_levels{fixed}, moving_levels{moving};
  for (int l = 1; l < options.levels; ++l) {
    const Grid next = HalvedGrid(fixed_levels.back().grid);
    bool too_small = false;
    for (int a = 0; a < dim; ++a) too_small = too_small || next.size[a] < 16;
    if (too_small) break;
    fixed_levels.push_back(Downsample(fixed_levels.back()));
    // The moving image is halved on its own grid (as long as it has voxels to halve).
    const Grid next_moving = HalvedGrid(moving_levels.back().grid);
    bool moving_small = false;
    for (int a = 0; a < dim; ++a) moving_small = moving_small || next_moving.size[a] < 8;
    moving_levels.push_back(moving_small ? moving_levels.back() : Downsample(moving_levels.back()));
  }
  while (fixed_levels.size() > 1 && fixed_levels.front().grid.voxels() > options.max_voxels) {
    fixed_levels.erase(fixed_levels.begin());
    moving_levels.erase(moving_levels.begin());
  }
  std::reverse(fixed_levels.begin(), fixed_levels.end());
  std::reverse(moving_levels.begin(), moving_levels.end());

  const Eigen::Vector3d centre = FieldOfViewCentre(fixed.grid);
  const double radius = FieldOfViewRadius(fixed.grid);
  const int active = ActiveParameterCount(options.mode, dim);
  Vector x = Vector::Zero(active);
  for (std::size_t level = 0; level < fixed_levels.size(); ++level) {
    AffineLevelObjective objective(moving_levels[level], fixed_levels[level], options,
                                   result.start, centre, radius, result.parameters);
    result.level_sizes.push_back(SizeText(fixed_levels[level].grid));
    const bool finest = level + 1 == fixed_levels.size();
    if (finest) result.energy_initial = objective.Evaluate(Vector::Zero(active), nullptr);
    if (options.iterations > 0) {
      OptimizerOptions opt;
      opt.optimizer = Optimizer::kLbfgs;
      opt.max_iterations = options.iterations;
      opt.function_tolerance = options.function_tolerance;
      opt.gradient_tolerance = 1e-14;
      opt.parameter_tolerance = 1e-10;
      const OptimizerSummary summary = Minimize(objective, x, opt);
      result.iterations += summary.iterations;
      result.evaluations += summary.evaluations;
    }
    if (!x.allFinite()) {
      throw NumericalError("affine stage: the parameters became NaN or Inf at level " +
                           std::to_string(level + 1));
    }
    result.parameters = objective.Parameters(x);
    if (finest) result.energy_final = objective.Evaluate(x, nullptr);
  }
  if (options.mode == AffineMode::kAffine) {
    const int rotation = dim == 3 ? 3 : 1;
    const int scales = rotation + dim, shears = rotation + 2 * dim;
    bool at_bounds = false;
    std::ostringstream found;
    found.precision(3);
    for (int k = scales; k < static_cast<int>(result.parameters.size()); ++k) {
      const bool shear = k >= shears;
      const double value = result.parameters[k];
      const double bound = shear ? kMaxShear : kMaxLogScale;
      at_bounds = at_bounds || std::abs(value) >= 0.9 * bound;
      found << (k == scales ? "" : ", ") << (shear ? "shear " : "scale ")
            << (shear ? value : std::exp(value));
    }
    if (at_bounds) {
      result.at_bounds = true;
      result.note = "the affine stage ran into the bounds of its parametrisation (" +
                    found.str() + "; scales are kept in (1/2, 2), shears below 1/2): the " +
                    "similarity prefers to shrink or shear the moving object away, so the " +
                    "deformable stage starts from the " +
                    (start != nullptr ? std::string("initial affine") :
                                        std::string("centres of mass")) +
                    " instead";
      result.parameters.setZero();
      result.energy_final = result.energy_initial;
    }
  }
  result.affine = result.start * AffineFromParameters(result.parameters, centre, dim);
  if (!(std::abs(result.affine.topLeftCorner(dim, dim).determinant()) > 1e-8)) {
    throw NumericalError("affine stage: the affine became singular");
  }
  result.wall_seconds = SecondsSince(clock_start);
  return result;
}

}  // namespace diffeoflow::registration
