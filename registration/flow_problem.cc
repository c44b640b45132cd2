#include "registration/flow_problem.h"

#include <algorithm>
#include <limits>

#include "registration/world_space.h"
#include "solvers/errors.h"

namespace diffeoflow::registration {

namespace {

// `at(flat)` is the value at the flat (x-fastest) voxel index the stencil gives.
template <int D, typename At>
void SampleScalarImpl(const Grid& grid, const At& at, const Eigen::VectorXd& positions,
                      bool clamp, double* samples, double* gradient) {
  const Eigen::Index count = positions.size() / D;
  MultilinearStencil<D> s;
  double x[D];
  for (Eigen::Index i = 0; i < count; ++i) {
    GatherPosition<D>(positions.data(), count, i, x);
    s.Set(grid.size, x, clamp);
    double value = 0.0;
    double g[D] = {};
    for (int c = 0; c < MultilinearStencil<D>::kCorners; ++c) {
      if (s.index[c] < 0) continue;
      const double vc = at(s.index[c]);
      value += s.weight[c] * vc;
      for (int a = 0; a < D; ++a) g[a] += s.gradient[c][a] * vc;
    }
    samples[i] = value;
    if (gradient != nullptr) {
      for (int a = 0; a < D; ++a) gradient[a * count + i] = g[a];
    }
  }
}

template <typename At>
void SampleScalarAt(const Grid& grid, const At& at, const Eigen::VectorXd& positions, bool clamp,
                    double* samples, double* gradient) {
  if (grid.dim == 2) {
    SampleScalarImpl<2>(grid, at, positions, clamp, samples, gradient);
  } else {
    SampleScalarImpl<3>(grid, at, positions, clamp, samples, gradient);
  }
}

}  // namespace

Eigen::VectorXd IdentityPositions(const Grid& grid) {
  const Eigen::Index n = grid.voxels();
  Eigen::VectorXd q(grid.dim * n);
  for (int k = 0; k < grid.size[2]; ++k) {
    for (int j = 0; j < grid.size[1]; ++j) {
      for (int i = 0; i < grid.size[0]; ++i) {
        const Eigen::Index p = grid.index(i, j, k);
        q[p] = i;
        q[n + p] = j;
        if (grid.dim == 3) q[2 * n + p] = k;
      }
    }
  }
  return q;
}

void SampleScalar(const Grid& grid, const double* values, const Eigen::VectorXd& positions,
                  bool clamp, double* samples, double* gradient) {
  SampleScalarAt(grid, [values](Eigen::Index flat) { return values[flat]; }, positions, clamp,
                 samples, gradient);
}

void SampleScalar(const ImageView& image, const Eigen::VectorXd& positions, bool clamp,
                  double* samples) {
  if (image.image_layout()) {
    SampleScalar(image.grid, static_cast<const double*>(image.data), positions, clamp, samples);
    return;
  }
  const Eigen::Index nx = image.grid.size[0], ny = image.grid.size[1];
  VisitValues(image, [&](const auto& values) {
    // The stencil's flat index back to (i, j, k): this path runs once a registration.
    const auto at = [&](Eigen::Index flat) {
      const Eigen::Index row = flat / nx;
      return static_cast<double>(values.Row(row % ny, row / ny)[flat % nx]);
    };
    SampleScalarAt(image.grid, at, positions, clamp, samples, nullptr);
  });
}

double SsdTerm(const Image& moving, const Image& fixed, double sigma, double voxel_volume,
               const Eigen::VectorXd& positions, Eigen::VectorXd* gradient,
               Eigen::VectorXd* warped) {
  const Eigen::Index n = fixed.grid.voxels();
  const int dim = fixed.grid.dim;
  thread_local Eigen::VectorXd samples;
  samples.resize(n);
  if (gradient != nullptr) gradient->resize(dim * n);
  SampleScalar(moving.grid, moving.data.data(), positions, true, samples.data(),
               gradient != nullptr ? gradient->data() : nullptr);
  const double scale = voxel_volume / (sigma * sigma);
  double sum = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double r = samples[i] - fixed.data[i];
    sum += r * r;
    if (gradient != nullptr) {
      for (int c = 0; c < dim; ++c) (*gradient)[c * n + i] *= scale * r;
    }
  }
  if (warped != nullptr) *warped = samples;
  return 0.5 * scale * sum;
}

MetricPowers MakeMetricPowers(const Grid& grid, const MetricOptions& options) {
  if (options.padding_voxels != 0) {
    throw InputError("metric padding: the flows need exact powers of K; use padding_voxels = 0");
  }
  MetricOptions half_options = options;
  half_options.gamma = 0.5 * options.gamma;
  half_options.gaussian_sigma_mm = options.gaussian_sigma_mm / std::sqrt(2.0);
  auto full = std::make_shared<MetricOperator>(grid, options);
  auto half = std::make_shared<MetricOperator>(grid, half_options);
  const Eigen::Index block = full->field_size();
  const Eigen::Index voxels = grid.voxels();
  const int dim = grid.dim;
  auto apply = [block, voxels, dim](const std::shared_ptr<MetricOperator>& op, bool inverse) {
    return [op, inverse, block, voxels, dim](double* field, int components) {
      int c = 0;
      for (; c + dim <= components; c += dim) {
        Eigen::Map<Eigen::VectorXd> f(field + c * voxels, block);
        if (inverse) {
          op->ApplyL(f, f);
        } else {
          op->ApplyK(f, f);
        }
      }
      for (; c < components; ++c) {
        Eigen::Map<Eigen::VectorXd> f(field + c * voxels, voxels);
        if (inverse) {
          op->ApplyLScalar(f, f);
        } else {
          op->ApplyKScalar(f, f);
        }
      }
    };
  };
  MetricPowers powers;
  powers.smooth = apply(full, false);
  powers.half = apply(half, false);
  powers.inverse_half = apply(half, true);
  powers.voxel_volume = grid.spacing_mm[0] * grid.spacing_mm[1] * (dim == 3 ? grid.spacing_mm[2] : 1.0);
  return powers;
}

MeshToImageMap::MeshToImageMap(const Grid& mesh, const Grid& image) : mesh_(mesh), image_(image) {
  identity_ = mesh.SameShape(image);
  if (identity_) return;
  const int dim = image.dim;
  taps_ = 1 << dim;
  const Eigen::Index n = image.voxels();
  index_.resize(taps_ * n);
  weight_.resize(taps_ * n);
  for (int a = 0; a < dim; ++a) ratio_[a] = mesh.spacing_mm[a] / image.spacing_mm[a];
  mesh_identity_ = IdentityPositions(mesh);
  image_identity_ = IdentityPositions(image);
  double x[3];
  for (Eigen::Index i = 0; i < n; ++i) {
    for (int a = 0; a < dim; ++a) {
      x[a] = (image_identity_[a * n + i] + 0.5) / ratio_[a] - 0.5;
    }
    if (dim == 2) {
      MultilinearStencil<2> s;
      s.Set(mesh.size, x, true);
      for (int t = 0; t < 4; ++t) {
        index_[t * n + i] = s.index[t] < 0 ? 0 : s.index[t];
        weight_[t * n + i] = s.index[t] < 0 ? 0.0 : s.weight[t];
      }
    } else {
      MultilinearStencil<3> s;
      s.Set(mesh.size, x, true);
      for (int t = 0; t < 8; ++t) {
        index_[t * n + i] = s.index[t] < 0 ? 0 : s.index[t];
        weight_[t * n + i] = s.index[t] < 0 ? 0.0 : s.weight[t];
      }
    }
  }
}

void MeshToImageMap::Positions(const Eigen::VectorXd& mesh_positions,
                               Eigen::VectorXd* image_positions) const {
  if (identity_) {
    *image_positions = mesh_positions;
    return;
  }
  const Eigen::Index n = image_.voxels(), nm = mesh_.voxels();
  const int dim = image_.dim;
  image_positions->resize(dim * n);
  // Voxel-major: the taps' indices and weights are read once for all components.
  for (Eigen::Index i = 0; i < n; ++i) {
    double u[3] = {0.0, 0.0, 0.0};
    for (int t = 0; t < taps_; ++t) {
      const Eigen::Index p = index_[t * n + i];
      const double w = weight_[t * n + i];
      for (int c = 0; c < dim; ++c) {
        u[c] += w * (mesh_positions[c * nm + p] - mesh_identity_[c * nm + p]);
      }
    }
    for (int c = 0; c < dim; ++c) {
      (*image_positions)[c * n + i] = image_identity_[c * n + i] + ratio_[c] * u[c];
    }
  }
}

void MeshToImageMap::PullBack(const Eigen::VectorXd& image_gradient,
                              Eigen::VectorXd* mesh_gradient) const {
  if (identity_) {
    *mesh_gradient = image_gradient;
    return;
  }
  const Eigen::Index n = image_.voxels(), nm = mesh_.voxels();
  const int dim = image_.dim;
  mesh_gradient->setZero(dim * nm);
  double* g = mesh_gradient->data();
  for (Eigen::Index i = 0; i < n; ++i) {
    double value[3];
    for (int c = 0; c < dim; ++c) value[c] = ratio_[c] * image_gradient[c * n + i];
    for (int t = 0; t < taps_; ++t) {
      const Eigen::Index p = index_[t * n + i];
      const double w = weight_[t * n + i];
      for (int c = 0; c < dim; ++c) g[c * nm + p] += w * value[c];
    }
  }
}

Eigen::VectorXd MeshToImageMap::Interpolate(const Eigen::VectorXd& mesh_field) const {
  if (identity_) return mesh_field;
  const Eigen::Index n = image_.voxels(), nm = mesh_.voxels();
  Eigen::VectorXd out(image_.dim * n);
  for (int c = 0; c < image_.dim; ++c) {
    for (Eigen::Index i = 0; i < n; ++i) {
      double value = 0.0;
      for (int t = 0; t < taps_; ++t) {
        value += weight_[t * n + i] * mesh_field[c * nm + index_[t * n + i]];
      }
      out[c * n + i] = value;
    }
  }
  return out;
}

double MeshSsdTerm(const Image& moving, const Image& fixed, double sigma,
                   const MeshToImageMap& map, const Eigen::VectorXd& mesh_positions,
                   Eigen::VectorXd* mesh_gradient, double* ssd) {
  thread_local Eigen::VectorXd positions, gradient, warped;
  map.Positions(mesh_positions, &positions);
  const double dx = fixed.grid.spacing_mm[0] * fixed.grid.spacing_mm[1] *
                    (fixed.grid.dim == 3 ? fixed.grid.spacing_mm[2] : 1.0);
  const double value = SsdTerm(moving, fixed, sigma, dx, positions,
                               mesh_gradient != nullptr ? &gradient : nullptr, &warped);
  if (ssd != nullptr) *ssd = (warped - fixed.data).squaredNorm();
  if (mesh_gradient != nullptr) map.PullBack(gradient, mesh_gradient);
  return value;
}

DataTerm::DataTerm(const Image& moving, const Image& fixed, const FlowProblemOptions& options)
    : moving_(moving), fixed_(fixed), sigma_(options.sigma), similarity_(options.similarity) {
  if (!(sigma_ > 0.0) || !std::isfinite(sigma_)) {
    throw InputError("--sigma must be a finite number > 0, got " + std::to_string(sigma_));
  }
  if (similarity_ == SimilarityMeasure::kLocalNcc) {
    if (options.ncc_radius < 1) {
      throw InputError("--ncc-radius must be >= 1, got " + std::to_string(options.ncc_radius));
    }
    LocalNccOptions ncc;
    ncc.radius = options.ncc_radius;
    ncc.weight = kNccWeightFactor * 0.5 / (sigma_ * sigma_);
    const double window = std::pow(2.0 * options.ncc_radius + 1.0, fixed.grid.dim);
    auto variance = [](const Eigen::VectorXd& f) {
      return f.size() > 0 ? (f.array() - f.mean()).square().mean() : 0.0;
    };
    // A constant image has no structure to match: any positive floor gives cc = 0.
    auto variance_floor = [&](const Image& image) {
      const double v = kNccVarianceFloor * window * variance(image.data);
      return v > 0.0 ? v : 1.0;
    };
    ncc.epsilon = std::numeric_limits<double>::min();  // the floors keep the denominator > 0
    // The offset: I_f against itself (floors from I_f), so D does not depend on the moving
    // image's intensity scale.
    ncc.moving_variance_floor = variance_floor(fixed);
    ncc.fixed_variance_floor = variance_floor(fixed);
    ncc_offset_ = -LocalNcc(fixed.grid, ncc).Energy(fixed.data, fixed.data);
    ncc.moving_variance_floor = variance_floor(moving);
    ncc_ = std::make_unique<LocalNcc>(fixed.grid, ncc);
  }
  if (!options.moving_world_affine.isIdentity(0.0) || !SameWorldGrid(moving.grid, fixed.grid)) {
    if (moving.grid.dim != fixed.grid.dim) {
      throw InputError("DataTerm: a " + std::to_string(moving.grid.dim) +
                       "-D moving image and a " + std::to_string(fixed.grid.dim) +
                       "-D fixed image");
    }
    through_world_ = VoxelToVoxel(fixed.grid, moving.grid, options.moving_world_affine);
    outside_value_ = BackgroundValue(ImageView(moving));
  } else if (moving.data.size() != fixed.data.size()) {
    throw InputError("DataTerm: the moving image has " + std::to_string(moving.data.size()) +
                     " values, the fixed grid " + std::to_string(fixed.data.size()));
  }
}

void DataTerm::Sample(bool gradient) {
  const Grid& grid = fixed_.grid;
  const Eigen::Index n = grid.voxels();
  const int dim = grid.dim;
  warped_.resize(n);
  if (gradient) sample_gradient_.resize(dim * n);
  if (!through_world_) {
    SampleScalar(moving_.grid, moving_.data.data(), positions_, true, warped_.data(),
                 gradient ? sample_gradient_.data() : nullptr);
    return;
  }
  const Eigen::Matrix3d& a = through_world_->A;
  const Eigen::Vector3d& b = through_world_->b;
  // φ(x) in moving voxel coordinates, in place (no second dim × voxels buffer).
  for (Eigen::Index i = 0; i < n; ++i) {
    Eigen::Vector3d p = Eigen::Vector3d::Zero();
    for (int c = 0; c < dim; ++c) p[c] = positions_[c * n + i];
    const Eigen::Vector3d q = a * p + b;
    for (int c = 0; c < dim; ++c) positions_[c * n + i] = q[c];
  }
  // ∂I_m/∂q first, into sample_gradient_; then by the chain rule ∂/∂p = Aᵀ ∂/∂q, in place.
  SampleScalar(moving_.grid, moving_.data.data(), positions_, true, warped_.data(),
               gradient ? sample_gradient_.data() : nullptr);
  for (Eigen::Index i = 0; i < n; ++i) {
    Eigen::Vector3d q = Eigen::Vector3d::Zero();
    for (int c = 0; c < dim; ++c) q[c] = positions_[c * n + i];
    const bool inside = InsideFieldOfView(moving_.grid, q);
    if (!inside) warped_[i] = outside_value_;
    if (!gradient) continue;
    Eigen::Vector3d dq = Eigen::Vector3d::Zero();
    if (inside) {
      for (int c = 0; c < dim; ++c) dq[c] = sample_gradient_[c * n + i];
    }
    const Eigen::Vector3d dp = a.transpose() * dq;
    for (int c = 0; c < dim; ++c) sample_gradient_[c * n + i] = dp[c];
  }
}

double DataTerm::Evaluate(const MeshToImageMap& map, const Eigen::VectorXd& mesh_positions,
                          Eigen::VectorXd* mesh_gradient, double* ssd) {
  if (similarity_ == SimilarityMeasure::kSsd && !through_world_) {
    return MeshSsdTerm(moving_, fixed_, sigma_, map, mesh_positions, mesh_gradient, ssd);
  }
  const Grid& grid = fixed_.grid;
  const Eigen::Index n = grid.voxels();
  const int dim = grid.dim;
  map.Positions(mesh_positions, &positions_);
  const bool want_gradient = mesh_gradient != nullptr;
  Sample(want_gradient);
  if (ssd != nullptr) *ssd = (warped_ - fixed_.data).squaredNorm();
  double value = 0.0;
  if (similarity_ == SimilarityMeasure::kSsd) {
    // As SsdTerm: 1/(2σ²) Σ r² Δx, force r Δx / σ².
    const double scale = grid.voxel_volume_mm() / (sigma_ * sigma_);
    image_force_ = scale * (warped_ - fixed_.data);
    value = 0.5 * scale * (warped_ - fixed_.data).squaredNorm();
    if (!want_gradient) return value;
  } else {
    if (!want_gradient) return ncc_offset_ + ncc_->Energy(warped_, fixed_.data);
    image_force_.resize(n);
    value = ncc_offset_ + ncc_->EnergyAndGradient(warped_, fixed_.data, image_force_);
  }
  // ∂D/∂q_c(x) = ∂D/∂I(x) · ∂(I_m∘φ)(x)/∂q_c.
  for (int c = 0; c < dim; ++c) {
    sample_gradient_.segment(c * n, n).array() *= image_force_.array();
  }
  map.PullBack(sample_gradient_, mesh_gradient);
  return value;
}



SolverOptions FlowSolverOptions(const FlowProblemOptions& options, int substeps) {
  SolverOptions solver;
  solver.method = options.solver;
  solver.t0 = 0.0;
  solver.steps = options.time_steps * std::max(substeps, 1);
  solver.check_finite = true;
  return solver;
}

double VelocityLipschitzBound(const Grid& grid, const double* field) {
  const Eigen::Index n = grid.voxels();
  const int dim = grid.dim;
  double bound = 0.0;
  for (int c = 0; c < dim; ++c) {
    const double* v = field + c * n;
    double row = 0.0;
    for (int a = 0; a < dim; ++a) {
      const Eigen::Index stride = a == 0 ? 1 : a == 1 ? grid.size[0]
                                                      : static_cast<Eigen::Index>(grid.size[0]) * grid.size[1];
      double largest = 0.0;
      for (int k = 0; k < grid.size[2]; ++k) {
        for (int j = 0; j < grid.size[1]; ++j) {
          for (int i = 0; i < grid.size[0]; ++i) {
            const int idx[3] = {i, j, k};
            if (idx[a] + 1 >= grid.size[a]) continue;
            const Eigen::Index p = grid.index(i, j, k);
            largest = std::max(largest, std::abs(v[p + stride] - v[p]));
          }
        }
      }
      row += largest;
    }
    bound = std::max(bound, row / grid.spacing_mm[c]);
  }
  return bound;
}

int SubstepsFor(double lipschitz, const FlowProblemOptions& options) {
  if (options.substeps > 0) return options.substeps;
  if (!std::isfinite(lipschitz)) return options.max_substeps;
  const double needed = lipschitz / (options.time_steps * options.max_step_lipschitz);
  return static_cast<int>(std::clamp(std::ceil(needed), 1.0,
                                     static_cast<double>(options.max_substeps)));
}

FlowObjective::FlowObjective(const Image& moving, const Image& fixed, const Grid& mesh,
                             const MetricPowers& metric, const FlowProblemOptions& options)
    : metric_(metric),
      options_(options),
      mesh_(mesh),
      map_(mesh, fixed.grid),
      data_term_(moving, fixed, options) {}

std::vector<double> FlowObjective::OutputTimes() const {
  return UniformTimes(options_.time_steps);
}

}  // namespace diffeoflow::registration
