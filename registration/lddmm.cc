#include "registration/lddmm.h"

#include <algorithm>
#include <limits>

#include "solvers/errors.h"

namespace diffeoflow::registration {

// ---------------------------------------------------------------------------------------------

namespace {
// Below this many stencil corners (particles × 4 in 2-D, × 8 in 3-D) a range is not worth a
// thread of the pool. Measured on 2 cores: on the 64² mesh of a 256² pair (two ranges of 2048
// particles) LDDMM ran 1.24× faster on two threads than on one.
constexpr Eigen::Index kCornersPerThread = 2048 * 4;
}  // namespace

VelocityFieldFlow::VelocityFieldFlow(const Grid& grid, int time_steps, int threads)
    : grid_(grid), dim_(grid.dim), voxels_(grid.voxels()), time_steps_(time_steps) {
  if (time_steps < 1) throw InputError("--steps: expected at least 1 time step");
  const int ranges = RangesFor(threads, voxels_ * (Eigen::Index{1} << dim_), kCornersPerThread);
  pool_ = std::make_unique<ThreadPool>(ranges);  // one range: no worker, fn runs in place
  range_theta_.assign(ranges - 1, Vector(2 * dim_ * voxels_));
}

void VelocityFieldFlow::TimeSlot(double t, int* k, double* lambda) const {
  const double s = std::clamp(t, 0.0, 1.0) * time_steps_;
  int slot = static_cast<int>(std::floor(s));
  if (slot >= time_steps_) slot = time_steps_ - 1;
  *k = slot;
  *lambda = s - slot;
}

template <int D>
void VelocityFieldFlow::F(double t, const double* x, const double* theta, double* dxdt) const {
  int k;
  double lambda;
  TimeSlot(t, &k, &lambda);
  const Eigen::Index n = voxels_;
  const double* v0 = theta + static_cast<Eigen::Index>(k) * D * n;
  const double* v1 = v0 + D * n;
  double inv_h[D];
  for (int c = 0; c < D; ++c) inv_h[c] = 1.0 / grid_.spacing_mm[c];
  ForRanges([&](Eigen::Index begin, Eigen::Index end, int) {
    MultilinearStencil<D> s;
    double q[D];
    for (Eigen::Index i = begin; i < end; ++i) {
      GatherPosition<D>(x, n, i, q);
      s.Set(grid_.size, q, false);
      double out[D] = {};
      for (int c = 0; c < MultilinearStencil<D>::kCorners; ++c) {
        const Eigen::Index p = s.index[c];
        if (p < 0) continue;
        for (int d = 0; d < D; ++d) {
          out[d] += s.weight[c] * ((1.0 - lambda) * v0[d * n + p] + lambda * v1[d * n + p]);
        }
      }
      for (int d = 0; d < D; ++d) dxdt[d * n + i] = out[d] * inv_h[d];
    }
  });
}

template <int D>
void VelocityFieldFlow::Vjp(double t, const double* x, const double* theta, const double* a,
                            double* a_x, double* a_theta) {
  int k;
  double lambda;
  TimeSlot(t, &k, &lambda);
  const Eigen::Index n = voxels_;
  const double* v0 = theta + static_cast<Eigen::Index>(k) * D * n;
  const double* v1 = v0 + D * n;
  // Slots k and k + 1 are adjacent: range 0 splats into a_θ itself, the others into their own
  // buffers, added in range order below.
  double* slots = a_theta + static_cast<Eigen::Index>(k) * D * n;
  double inv_h[D];
  for (int c = 0; c < D; ++c) inv_h[c] = 1.0 / grid_.spacing_mm[c];
  ForRanges([&](Eigen::Index begin, Eigen::Index end, int range) {
    double* g0 = slots;
    if (range > 0) {
      Vector& own = range_theta_[static_cast<std::size_t>(range - 1)];
      own.setZero();
      g0 = own.data();
    }
    double* g1 = g0 + D * n;
    MultilinearStencil<D> s;
    double q[D];
    for (Eigen::Index i = begin; i < end; ++i) {
      GatherPosition<D>(x, n, i, q);
      s.Set(grid_.size, q, false);
      double ad[D];
      for (int d = 0; d < D; ++d) ad[d] = a[d * n + i] * inv_h[d];
      double ax[D] = {};
      for (int c = 0; c < MultilinearStencil<D>::kCorners; ++c) {
        const Eigen::Index p = s.index[c];
        if (p < 0) continue;
        double av = 0.0;  // Σ_d a_d v_d at this corner
        for (int d = 0; d < D; ++d) {
          av += ad[d] * ((1.0 - lambda) * v0[d * n + p] + lambda * v1[d * n + p]);
          const double splat = s.weight[c] * ad[d];
          g0[d * n + p] += (1.0 - lambda) * splat;
          g1[d * n + p] += lambda * splat;
        }
        for (int e = 0; e < D; ++e) ax[e] += s.gradient[c][e] * av;
      }
      for (int e = 0; e < D; ++e) a_x[e * n + i] = ax[e];
    }
  });
  Eigen::Map<Vector> sum(slots, 2 * D * n);
  for (const Vector& own : range_theta_) sum += own;
}

template <class Fn>
void VelocityFieldFlow::ForRanges(Fn&& fn) const {
  pool_->ForRanges(voxels_, fn);
}

void VelocityFieldFlow::f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) {
  if (dim_ == 2) {
    F<2>(t, x.data(), theta.data(), dxdt.data());
  } else {
    F<3>(t, x.data(), theta.data(), dxdt.data());
  }
}

void VelocityFieldFlow::vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                            VectorRef a_x, VectorRef a_theta) {
  a_theta.setZero();
  if (dim_ == 2) {
    Vjp<2>(t, x.data(), theta.data(), a.data(), a_x.data(), a_theta.data());
  } else {
    Vjp<3>(t, x.data(), theta.data(), a.data(), a_x.data(), a_theta.data());
  }
}

VelocityFieldObjective::VelocityFieldObjective(const Image& moving, const Image& fixed,
                                               const Grid& mesh, const MetricPowers& metric,
                                               const FlowProblemOptions& options)
    : FlowObjective(moving, fixed, mesh, metric, options),
      flow_(mesh, options.time_steps, options.threads),
      identity_(IdentityPositions(mesh)) {}

int VelocityFieldObjective::Substeps(const Vector& v) const {
  if (options_.substeps > 0) return options_.substeps;
  const Eigen::Index block = mesh_.dim * mesh_.voxels();
  double lipschitz = 0.0;
  for (int k = 0; k <= options_.time_steps; ++k) {
    lipschitz = std::max(lipschitz, VelocityLipschitzBound(mesh_, v.data() + k * block));
  }
  return SubstepsFor(lipschitz, options_);
}

Vector VelocityFieldObjective::Velocities(const Vector& w) const {
  Vector v = w;
  metric_.half(v.data(), (options_.time_steps + 1) * mesh_.dim);
  return v;
}

double VelocityFieldObjective::Evaluate(const Vector& w, Vector* gradient) {
  ++evaluations_;
  const int T = options_.time_steps;
  const Eigen::Index block = mesh_.dim * mesh_.voxels();
  const double dx = metric_.voxel_volume;
  v_ = w;
  metric_.half(v_.data(), (T + 1) * mesh_.dim);

  double kinetic = 0.0;
  for (int k = 0; k <= T; ++k) {
    const double tau = (k == 0 || k == T) ? 0.5 / T : 1.0 / T;
    kinetic += 0.5 * tau * w.segment(k * block, block).squaredNorm() * dx;
  }

  const int substeps = Substeps(v_);
  const SolverOptions solver = FlowSolverOptions(options_, substeps);
  double data = 0.0;
  double ssd = 0.0;
  auto loss = [&](const std::vector<Vector>& states, std::vector<Vector>& grads) {
    data = data_term_.Evaluate(map_, states.back(), &grads.back(), &ssd);
    return data;
  };
  if (gradient == nullptr) {
    Solution solution = Integrate(flow_, identity_, v_, {1.0}, solver);
    data = data_term_.Evaluate(map_, solution.states.back(), nullptr, &ssd);
  } else {
    GradientOptions gopt;
    gopt.mode = options_.gradient_mode;
    GradientResult result = Gradient(flow_, identity_, v_, {1.0}, loss, solver, gopt);
    Vector& g = result.grad_theta;
    metric_.half(g.data(), (T + 1) * mesh_.dim);
    for (int k = 0; k <= T; ++k) {
      const double tau = (k == 0 || k == T) ? 0.5 / T : 1.0 / T;
      g.segment(k * block, block) += tau * dx * w.segment(k * block, block);
    }
    *gradient = std::move(g);
  }
  last_ = {kinetic + data, kinetic, data, ssd, substeps};
  return kinetic + data;
}

std::vector<Vector> VelocityFieldObjective::Path(const Vector& w) {
  const Vector v = Velocities(w);
  Solution solution = Integrate(flow_, identity_, v, OutputTimes(),
                                FlowSolverOptions(options_, Substeps(v)));
  return solution.states;
}

std::vector<double> VelocityFieldObjective::VelocityNorms(const Vector& w) const {
  const Eigen::Index block = mesh_.dim * mesh_.voxels();
  std::vector<double> norms(options_.time_steps + 1);
  for (int k = 0; k <= options_.time_steps; ++k) {
    norms[k] = std::sqrt(w.segment(k * block, block).squaredNorm() * metric_.voxel_volume);
  }
  return norms;
}

}  // namespace diffeoflow::registration
