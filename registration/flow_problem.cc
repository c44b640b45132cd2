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
                      bool clamp, double* samples, double* gradient, Eigen::Index begin,
                      Eigen::Index end) {
  const Eigen::Index count = positions.size() / D;
  MultilinearStencil<D> s;
  double x[D];
  for (Eigen::Index i = begin; i < end; ++i) {
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

// Over the pool's ranges of the positions when `pool` is non-null (each sample is independent).
template <typename At>
void SampleScalarAt(const Grid& grid, const At& at, const Eigen::VectorXd& positions, bool clamp,
                    double* samples, double* gradient, ThreadPool* pool = nullptr) {
  auto range = [&](Eigen::Index begin, Eigen::Index end, int) {
    if (grid.dim == 2) {
      SampleScalarImpl<2>(grid, at, positions, clamp, samples, gradient, begin, end);
    } else {
      SampleScalarImpl<3>(grid, at, positions, clamp, samples, gradient, begin, end);
    }
  };
  ForRanges(pool, positions.size() / grid.dim, range);
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
                  bool clamp, double* samples, double* gradient, ThreadPool* pool) {
  SampleScalarAt(grid, [values](Eigen::Index flat) { return values[flat]; }, positions, clamp,
                 samples, gradient, pool);
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

namespace {

MeshToImageMap::Axis AxisTable(Eigen::Index mesh_length, Eigen::Index image_length,
                               double ratio) {
  MeshToImageMap::Axis t;
  t.lo.resize(image_length);
  t.hi.resize(image_length);
  t.w_lo.resize(image_length);
  t.w_hi.resize(image_length);
  const double last = static_cast<double>(mesh_length - 1);
  for (Eigen::Index i = 0; i < image_length; ++i) {
    // As MultilinearStencil with clamp: the voxel centre in mesh coordinates, moved into the mesh.
    double x = (static_cast<double>(i) + 0.5) / ratio - 0.5;
    if (!(x > 0.0)) {
      x = 0.0;
    } else if (x >= last) {
      x = last;
    }
    const double base = std::floor(x);
    t.lo[i] = static_cast<Eigen::Index>(base);
    t.hi[i] = std::min<Eigen::Index>(t.lo[i] + 1, mesh_length - 1);
    t.w_lo[i] = 1.0 - (x - base);
    t.w_hi[i] = x - base;
  }
  return t;
}

// One pass along an axis of a field laid out x-fastest and seen as outer × length × stride:
//   forward    out[o, i, q] = w_lo[i] in[o, lo[i], q] + w_hi[i] in[o, hi[i], q]   (i: image)
//   transpose  out[o, p, q] = Σ_i ([lo[i] = p] w_lo[i] + [hi[i] = p] w_hi[i]) in[o, i, q]
// The outer × stride lines are split over the pool's ranges (ForLines); each output value is
// written by the range that holds its line, summing over i in increasing order.
void AxisPass(const double* in, double* out, Eigen::Index outer, Eigen::Index stride,
              Eigen::Index mesh_length, const MeshToImageMap::Axis& axis, bool transpose,
              ThreadPool* pool) {
  const Eigen::Index image_length = static_cast<Eigen::Index>(axis.lo.size());
  const Eigen::Index in_length = transpose ? image_length : mesh_length;
  const Eigen::Index out_length = transpose ? mesh_length : image_length;
  ForLines(pool, outer, stride, [&](Eigen::Index o, Eigen::Index q0, Eigen::Index q1) {
    const double* src = in + o * in_length * stride;
    double* dst = out + o * out_length * stride;
    if (!transpose) {
      for (Eigen::Index i = 0; i < image_length; ++i) {
        const double* a = src + axis.lo[i] * stride;
        const double* b = src + axis.hi[i] * stride;
        double* d = dst + i * stride;
        const double wl = axis.w_lo[i], wh = axis.w_hi[i];
        for (Eigen::Index q = q0; q < q1; ++q) d[q] = wl * a[q] + wh * b[q];
      }
    } else {
      for (Eigen::Index p = 0; p < mesh_length; ++p) {
        std::fill(dst + p * stride + q0, dst + p * stride + q1, 0.0);
      }
      for (Eigen::Index i = 0; i < image_length; ++i) {
        const double* s = src + i * stride;
        double* a = dst + axis.lo[i] * stride;
        double* b = dst + axis.hi[i] * stride;
        const double wl = axis.w_lo[i], wh = axis.w_hi[i];
        for (Eigen::Index q = q0; q < q1; ++q) {
          a[q] += wl * s[q];
          b[q] += wh * s[q];
        }
      }
    }
  });
}

}  // namespace

MeshToImageMap::MeshToImageMap(const Grid& mesh, const Grid& image) : mesh_(mesh), image_(image) {
  identity_ = mesh.SameShape(image);
  if (identity_) return;
  for (int a = 0; a < image.dim; ++a) {
    ratio_[a] = mesh.spacing_mm[a] / image.spacing_mm[a];
    axes_[a] = AxisTable(mesh.size[a], image.size[a], ratio_[a]);
  }
  const Eigen::Index m0 = mesh.size[0], m1 = mesh.size[1], n1 = image.size[1];
  const Eigen::Index n2 = image.dim == 3 ? image.size[2] : 1;
  displacement_.resize(mesh.voxels());
  stage_[0].resize(m0 * m1 * n2);  // z interpolated (3-D), or y pulled back
  stage_[1].resize(m0 * n1 * n2);  // z and y interpolated, or x pulled back
}

void MeshToImageMap::InterpolateComponent(const double* mesh_values, double* image_values,
                                          int coordinate, double scale, ThreadPool* pool) const {
  const Eigen::Index m0 = mesh_.size[0], m1 = mesh_.size[1], n0 = image_.size[0];
  const Eigen::Index n1 = image_.size[1];
  const Eigen::Index n2 = image_.dim == 3 ? image_.size[2] : 1;
  const double* rows = mesh_values;
  if (image_.dim == 3) {
    AxisPass(rows, stage_[0].data(), 1, m0 * m1, mesh_.size[2], axes_[2], false, pool);
    rows = stage_[0].data();
  }
  AxisPass(rows, stage_[1].data(), n2, m0, m1, axes_[1], false, pool);
  // Along x, into the image: out = offset + scale · value, row by row.
  const Axis& x = axes_[0];
  const double* in = stage_[1].data();
  auto pass = [&](Eigen::Index begin, Eigen::Index end, int) {
    for (Eigen::Index r = begin; r < end; ++r) {
      const double* src = in + r * m0;
      double* dst = image_values + r * n0;
      const double offset = coordinate == 1 ? static_cast<double>(r % n1)
                            : coordinate == 2 ? static_cast<double>(r / n1)
                                              : 0.0;
      for (Eigen::Index i = 0; i < n0; ++i) {
        const double value = x.w_lo[i] * src[x.lo[i]] + x.w_hi[i] * src[x.hi[i]];
        dst[i] = (coordinate == 0 ? static_cast<double>(i) : offset) + scale * value;
      }
    }
  };
  ForRanges(pool, n1 * n2, pass);
}

void MeshToImageMap::PullBackComponent(const double* image_values, double* mesh_values,
                                       double scale, ThreadPool* pool) const {
  const Eigen::Index m0 = mesh_.size[0], m1 = mesh_.size[1], n0 = image_.size[0];
  const Eigen::Index n1 = image_.size[1];
  const Eigen::Index n2 = image_.dim == 3 ? image_.size[2] : 1;
  // Along x, row by row.
  const Axis& x = axes_[0];
  double* rows_out = stage_[1].data();
  auto pass = [&](Eigen::Index begin, Eigen::Index end, int) {
    for (Eigen::Index r = begin; r < end; ++r) {
      const double* src = image_values + r * n0;
      double* dst = rows_out + r * m0;
      std::fill(dst, dst + m0, 0.0);
      for (Eigen::Index i = 0; i < n0; ++i) {
        dst[x.lo[i]] += x.w_lo[i] * src[i];
        dst[x.hi[i]] += x.w_hi[i] * src[i];
      }
    }
  };
  ForRanges(pool, n1 * n2, pass);
  if (image_.dim == 3) {
    AxisPass(stage_[1].data(), stage_[0].data(), n2, m0, m1, axes_[1], true, pool);
    AxisPass(stage_[0].data(), mesh_values, 1, m0 * m1, mesh_.size[2], axes_[2], true, pool);
  } else {
    AxisPass(stage_[1].data(), mesh_values, 1, m0, m1, axes_[1], true, pool);
  }
  const Eigen::Index nm = mesh_.voxels();
  for (Eigen::Index p = 0; p < nm; ++p) mesh_values[p] *= scale;
}

void MeshToImageMap::Positions(const Eigen::VectorXd& mesh_positions,
                               Eigen::VectorXd* image_positions, ThreadPool* pool) const {
  if (identity_) {
    *image_positions = mesh_positions;
    return;
  }
  const Eigen::Index n = image_.voxels(), nm = mesh_.voxels();
  const Eigen::Index m0 = mesh_.size[0], m1 = mesh_.size[1];
  image_positions->resize(image_.dim * n);
  for (int c = 0; c < image_.dim; ++c) {
    // The displacement q − x_mesh of component c (the mesh voxel's own coordinate).
    const double* q = mesh_positions.data() + c * nm;
    for (Eigen::Index p = 0; p < nm; ++p) {
      const Eigen::Index coordinate = c == 0 ? p % m0 : c == 1 ? (p / m0) % m1 : p / (m0 * m1);
      displacement_[p] = q[p] - static_cast<double>(coordinate);
    }
    InterpolateComponent(displacement_.data(), image_positions->data() + c * n, c, ratio_[c],
                         pool);
  }
}

void MeshToImageMap::PullBack(const Eigen::VectorXd& image_gradient,
                              Eigen::VectorXd* mesh_gradient, ThreadPool* pool) const {
  if (identity_) {
    *mesh_gradient = image_gradient;
    return;
  }
  const Eigen::Index n = image_.voxels(), nm = mesh_.voxels();
  mesh_gradient->resize(image_.dim * nm);
  for (int c = 0; c < image_.dim; ++c) {
    PullBackComponent(image_gradient.data() + c * n, mesh_gradient->data() + c * nm, ratio_[c],
                      pool);
  }
}

Eigen::VectorXd MeshToImageMap::Interpolate(const Eigen::VectorXd& mesh_field) const {
  if (identity_) return mesh_field;
  const Eigen::Index n = image_.voxels(), nm = mesh_.voxels();
  Eigen::VectorXd out(image_.dim * n);
  for (int c = 0; c < image_.dim; ++c) {
    InterpolateComponent(mesh_field.data() + c * nm, out.data() + c * n, -1, 1.0, nullptr);
  }
  return out;
}

namespace {
// Below this many image voxels a range is not worth a thread of the data term's pool.
constexpr Eigen::Index kVoxelsPerThread = 16384;
}  // namespace

DataTerm::DataTerm(const Image& moving, const Image& fixed, const FlowProblemOptions& options)
    : moving_(moving), fixed_(fixed), sigma_(options.sigma), similarity_(options.similarity) {
  if (!(sigma_ > 0.0) || !std::isfinite(sigma_)) {
    throw InputError("--sigma must be a finite number > 0, got " + std::to_string(sigma_));
  }
  pool_ = std::make_unique<ThreadPool>(
      RangesFor(options.threads, fixed.grid.voxels(), kVoxelsPerThread));
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
    ncc_offset_ = -LocalNcc(fixed.grid, ncc, pool_.get()).Energy(fixed.data, fixed.data);
    ncc.moving_variance_floor = variance_floor(moving);
    ncc_ = std::make_unique<LocalNcc>(fixed.grid, ncc, pool_.get());
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
  ThreadPool* pool = pool_.get();
  if (!through_world_) {
    SampleScalar(moving_.grid, moving_.data.data(), positions_, true, warped_.data(),
                 gradient ? sample_gradient_.data() : nullptr, pool);
    return;
  }
  const Eigen::Matrix3d& a = through_world_->A;
  const Eigen::Vector3d& b = through_world_->b;
  // φ(x) in moving voxel coordinates, in place (no second dim × voxels buffer).
  pool->ForRanges(n, [&](Eigen::Index begin, Eigen::Index end, int) {
    for (Eigen::Index i = begin; i < end; ++i) {
      Eigen::Vector3d p = Eigen::Vector3d::Zero();
      for (int c = 0; c < dim; ++c) p[c] = positions_[c * n + i];
      const Eigen::Vector3d q = a * p + b;
      for (int c = 0; c < dim; ++c) positions_[c * n + i] = q[c];
    }
  });
  // ∂I_m/∂q first, into sample_gradient_; then by the chain rule ∂/∂p = Aᵀ ∂/∂q, in place.
  SampleScalar(moving_.grid, moving_.data.data(), positions_, true, warped_.data(),
               gradient ? sample_gradient_.data() : nullptr, pool);
  pool->ForRanges(n, [&](Eigen::Index begin, Eigen::Index end, int) {
    for (Eigen::Index i = begin; i < end; ++i) {
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
  });
}

double DataTerm::Evaluate(const MeshToImageMap& map, const Eigen::VectorXd& mesh_positions,
                          Eigen::VectorXd* mesh_gradient, double* ssd) {
  const Grid& grid = fixed_.grid;
  const Eigen::Index n = grid.voxels();
  const int dim = grid.dim;
  ThreadPool* pool = pool_.get();
  map.Positions(mesh_positions, &positions_, pool);
  const bool want_gradient = mesh_gradient != nullptr;
  Sample(want_gradient);
  const bool by_ssd = similarity_ == SimilarityMeasure::kSsd;
  const double squared = by_ssd || ssd != nullptr ? (warped_ - fixed_.data).squaredNorm() : 0.0;
  if (ssd != nullptr) *ssd = squared;
  // SSD: 1/(2σ²) Σ r² Δx, force r Δx / σ².
  const double scale = grid.voxel_volume_mm() / (sigma_ * sigma_);
  double value = 0.0;
  if (by_ssd) {
    value = 0.5 * scale * squared;
    if (!want_gradient) return value;
  } else {
    if (!want_gradient) return ncc_offset_ + ncc_->Energy(warped_, fixed_.data);
    image_force_.resize(n);
    value = ncc_offset_ + ncc_->EnergyAndGradient(warped_, fixed_.data, image_force_);
  }
  // ∂D/∂q_c(x) = ∂D/∂I(x) · ∂(I_m∘φ)(x)/∂q_c.
  pool->ForRanges(n, [&](Eigen::Index begin, Eigen::Index end, int) {
    for (Eigen::Index i = begin; i < end; ++i) {
      const double force = by_ssd ? scale * (warped_[i] - fixed_.data[i]) : image_force_[i];
      for (int c = 0; c < dim; ++c) sample_gradient_[c * n + i] *= force;
    }
  });
  map.PullBack(sample_gradient_, mesh_gradient, pool);
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
