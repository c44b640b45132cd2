#include "registration/shooting.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

// Asks for a loop of a few iterations to be unrolled (Gather's sums stay in registers).
#if defined(__clang__)
#define DIFFEOFLOW_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define DIFFEOFLOW_UNROLL _Pragma("GCC unroll 27")
#else
#define DIFFEOFLOW_UNROLL
#endif

namespace diffeoflow::registration {

namespace {
// Below this many stencil taps (particles × 9 in 2-D, × 27 in 3-D) a range is not worth a thread
// of the pool (ThreadPool). Measured on 2 cores: with threads started on every call, a 64² mesh
// (4096 × 9 taps) ran no faster on two threads than on one (f ~0.25 ms, vjp ~0.46 ms); with the
// pool's persistent workers, shooting on the 64² mesh of a 256² pair ran 1.27× faster on two.
constexpr Eigen::Index kTapsPerThread = 2048 * 9;

// The quadratic B-spline taps of one particle, axis by axis: the flat offsets of the nodes
// base − 1 … base + 1 of each axis and the factors f[a][k][o] of the tensor-product weight: k = 0
// the weight β, 1 its derivative β′, 2 its second derivative β″ (1, −2, 1). A node off the grid
// gets factors 0 and the offset of the nearest node on it, so that the loops over taps have fixed
// bounds (and unroll) and read only grid nodes. In 2-D the third axis is one tap of factor 1
// (β′ = β″ = 0). A tap's weight is Π_a f[a][0][o_a]; its derivative along e replaces factor e
// by f[e][1], and so on, so sums over the taps can be taken one axis at a time (Gather).
template <int D>
struct BSplineTaps {
  static constexpr int kZ = D == 3 ? 3 : 1;  // taps along the third axis
  Eigen::Index offset[3][3];
  double f[3][3][3];

  void Set(const std::array<int, 3>& n, const double* x) {
    Eigen::Index stride = 1;
    for (int a = 0; a < 3; ++a) {
      if (a >= D) {
        offset[a][0] = 0;
        f[a][0][0] = 1.0;
        f[a][1][0] = f[a][2][0] = 0.0;
        continue;
      }
      const double r = std::floor(x[a] + 0.5);
      const double t = x[a] - r;
      const Eigen::Index base = static_cast<Eigen::Index>(r) - 1;
      const double factors[3][3] = {{0.5 * (0.5 - t) * (0.5 - t), 0.75 - t * t,
                                     0.5 * (0.5 + t) * (0.5 + t)},
                                    {t - 0.5, -2.0 * t, 0.5 + t},
                                    {1.0, -2.0, 1.0}};
      for (int o = 0; o < 3; ++o) {
        const Eigen::Index node = base + o;
        const bool inside = node >= 0 && node < n[a];
        offset[a][o] = std::clamp<Eigen::Index>(node, 0, n[a] - 1) * stride;
        for (int k = 0; k < 3; ++k) f[a][k][o] = inside ? factors[k][o] : 0.0;
      }
      stride *= n[a];
    }
  }
};

// Index of the sum with derivative orders (kx, ky, kz) and component d in Gather's output.
template <int D, int Order>
constexpr int SumIndex(int kx, int ky, int kz, int d) {
  return ((kx * (Order + 1) + ky) * (Order + 1) + kz) * D + d;
}
template <int D, int Order>
constexpr int kSums = (Order + 1) * (Order + 1) * (Order + 1) * D;

// g[SumIndex(kx, ky, kz, d)] = Σ_taps f[0][kx] f[1][ky] f[2][kz] · field_d(node) for every
// kx + ky + kz ≤ Order (in 2-D kz = 0; the other entries are 0), contracting x, then y, then z.
// field is component-major (D × n).
template <int D, int Order>
inline void Gather(const BSplineTaps<D>& t, const double* field, Eigen::Index n, double* g) {
  constexpr int K = Order + 1;
  DIFFEOFLOW_UNROLL for (int i = 0; i < kSums<D, Order>; ++i) g[i] = 0.0;
  DIFFEOFLOW_UNROLL for (int oz = 0; oz < BSplineTaps<D>::kZ; ++oz) {
    double y_sums[K][K][D] = {};
    DIFFEOFLOW_UNROLL for (int oy = 0; oy < 3; ++oy) {
      const Eigen::Index row = t.offset[2][oz] + t.offset[1][oy];
      double x_sums[K][D] = {};
      DIFFEOFLOW_UNROLL for (int ox = 0; ox < 3; ++ox) {
        const Eigen::Index node = row + t.offset[0][ox];
        DIFFEOFLOW_UNROLL for (int d = 0; d < D; ++d) {
          const double value = field[d * n + node];
          DIFFEOFLOW_UNROLL for (int kx = 0; kx < K; ++kx) x_sums[kx][d] += t.f[0][kx][ox] * value;
        }
      }
      DIFFEOFLOW_UNROLL for (int kx = 0; kx < K; ++kx) {
        DIFFEOFLOW_UNROLL for (int ky = 0; ky + kx < K; ++ky) {
          DIFFEOFLOW_UNROLL for (int d = 0; d < D; ++d) y_sums[kx][ky][d] += t.f[1][ky][oy] * x_sums[kx][d];
        }
      }
    }
    DIFFEOFLOW_UNROLL for (int kx = 0; kx < K; ++kx) {
      DIFFEOFLOW_UNROLL for (int ky = 0; ky + kx < K; ++ky) {
        DIFFEOFLOW_UNROLL for (int kz = 0; kz <= (D == 3 ? Order - kx - ky : 0); ++kz) {
          DIFFEOFLOW_UNROLL for (int d = 0; d < D; ++d) {
            g[SumIndex<D, Order>(kx, ky, kz, d)] += t.f[2][kz][oz] * y_sums[kx][ky][d];
          }
        }
      }
    }
  }
}

// The orders (kx, ky, kz) of ∂_e (e = 0, 1, 2) and of ∂_e ∂_c.
constexpr int Unit(int e, int axis) { return e == axis ? 1 : 0; }
template <int D, int Order>
constexpr int FirstIndex(int e, int d) {
  return SumIndex<D, Order>(Unit(e, 0), Unit(e, 1), Unit(e, 2), d);
}
template <int D, int Order>
constexpr int SecondIndex(int e, int c, int d) {
  return SumIndex<D, Order>(Unit(e, 0) + Unit(c, 0), Unit(e, 1) + Unit(c, 1),
                            Unit(e, 2) + Unit(c, 2), d);
}
}  // namespace

EpdiffShooting::EpdiffShooting(const Grid& grid, FieldOperator smooth, int threads)
    : grid_(grid),
      dim_(grid.dim),
      voxels_(grid.voxels()),
      smooth_(std::move(smooth)),
      field_(grid.dim * grid.voxels()),
      adjoint_(grid.dim * grid.voxels()) {
  threads_ = RangesFor(threads, voxels_ * (grid.dim == 3 ? 27 : 9), kTapsPerThread);
  range_fields_.resize(threads_ - 1);
  for (Vector& f : range_fields_) f.resize(grid.dim * voxels_);
  pool_ = std::make_unique<ThreadPool>(threads_);  // one thread: no worker, fn runs in place
}

template <class Fn>
void EpdiffShooting::ForRanges(Fn&& fn) const {
  pool_->ForRanges(voxels_, fn);
}

double* EpdiffShooting::RangeBuffer(int range, double* field) {
  if (range == 0) return field;
  Vector& f = range_fields_[range - 1];
  f.setZero();
  return f.data();
}

void EpdiffShooting::SumRanges(double* field, int components) {
  Eigen::Map<Vector> out(field, components * voxels_);
  for (const Vector& f : range_fields_) out += f;
}

template <int D>
void EpdiffShooting::Splat(const double* q, const double* m, double* field) {
  const Eigen::Index n = voxels_;
  std::fill(field, field + D * n, 0.0);
  ForRanges([&](Eigen::Index begin, Eigen::Index end, int range) {
    double* out = RangeBuffer(range, field);
    BSplineTaps<D> t;
    double x[D];
    for (Eigen::Index i = begin; i < end; ++i) {
      for (int k = 0; k < D; ++k) x[k] = q[k * n + i];
      t.Set(grid_.size, x);
      double mi[D];
      for (int d = 0; d < D; ++d) mi[d] = m[d * n + i];
      for (int oz = 0; oz < BSplineTaps<D>::kZ; ++oz) {
        for (int oy = 0; oy < 3; ++oy) {
          const double wyz = t.f[1][0][oy] * t.f[2][0][oz];
          const Eigen::Index row = t.offset[2][oz] + t.offset[1][oy];
          for (int ox = 0; ox < 3; ++ox) {
            const double w = t.f[0][0][ox] * wyz;
            const Eigen::Index p = row + t.offset[0][ox];
            for (int d = 0; d < D; ++d) out[d * n + p] += w * mi[d];
          }
        }
      }
    }
  });
  SumRanges(field, D);
}

template <int D>
void EpdiffShooting::Velocity(const double* x, double* velocity) {
  Splat<D>(x, x + D * voxels_, velocity);
  smooth_(velocity, D);
}

template <int D>
void EpdiffShooting::F(const double* x, double* dxdt, double* velocity) {
  const Eigen::Index n = voxels_;
  const double* q = x;
  const double* m = x + D * n;
  Velocity<D>(x, velocity);
  const double* v = velocity;
  double inv_h[D];
  for (int c = 0; c < D; ++c) inv_h[c] = 1.0 / grid_.spacing_mm[c];
  ForRanges([&](Eigen::Index begin, Eigen::Index end, int) {
    BSplineTaps<D> t;
    double pos[D];
    double g[kSums<D, 1>];
    for (Eigen::Index i = begin; i < end; ++i) {
      for (int k = 0; k < D; ++k) pos[k] = q[k * n + i];
      t.Set(grid_.size, pos);
      Gather<D, 1>(t, v, n, g);
      // q̇_d = v_d(q), ṁ_e = −Σ_d m_d ∂_e v_d(q).
      for (int e = 0; e < D; ++e) {
        double dm = 0.0;
        for (int d = 0; d < D; ++d) dm -= m[d * n + i] * g[FirstIndex<D, 1>(e, d)];
        dxdt[e * n + i] = g[SumIndex<D, 1>(0, 0, 0, e)] * inv_h[e];
        dxdt[(D + e) * n + i] = dm * inv_h[e];
      }
    }
  });
}

template <int D>
void EpdiffShooting::Vjp(const double* x, const double* a, const double* velocity, double* a_x) {
  const Eigen::Index n = voxels_;
  const double* q = x;
  const double* m = x + D * n;
  const double* a_q = a;
  const double* a_m = a + D * n;
  double* out_q = a_x;
  double* out_m = a_x + D * n;

  const double* v = velocity;
  double inv_h[D];
  for (int c = 0; c < D; ++c) inv_h[c] = 1.0 / grid_.spacing_mm[c];

  adjoint_.setZero();
  double* bar_v = adjoint_.data();
  // With â = a_q / h and ã = a_m / h per particle, the terms through v at the particle:
  //   ā_V(node) += w â − m Σ_e ã_e ∂_e w                       (splat, per tap)
  //   a_q,e = Σ_d â_d ∂_e v_d − Σ_c ã_c Σ_d m_d ∂_e ∂_c v_d    (gathered sums of v)
  //   a_m,d = −Σ_e ã_e ∂_e v_d
  ForRanges([&](Eigen::Index begin, Eigen::Index end, int range) {
    double* scatter = RangeBuffer(range, bar_v);
    BSplineTaps<D> t;
    double pos[D];
    double g[kSums<D, 2>];
    for (Eigen::Index i = begin; i < end; ++i) {
      for (int k = 0; k < D; ++k) pos[k] = q[k * n + i];
      t.Set(grid_.size, pos);
      double mi[D], aq[D], am[D];
      for (int d = 0; d < D; ++d) {
        mi[d] = m[d * n + i];
        aq[d] = a_q[d * n + i] * inv_h[d];
        am[d] = a_m[d * n + i] * inv_h[d];
      }
      Gather<D, 2>(t, v, n, g);
      for (int e = 0; e < D; ++e) {
        double gq = 0.0;
        for (int d = 0; d < D; ++d) {
          double second = 0.0;
          for (int c = 0; c < D; ++c) second += am[c] * g[SecondIndex<D, 2>(e, c, d)];
          gq += aq[d] * g[FirstIndex<D, 2>(e, d)] - mi[d] * second;
        }
        double gm = 0.0;
        for (int c = 0; c < D; ++c) gm -= am[c] * g[FirstIndex<D, 2>(c, e)];
        out_q[e * n + i] = gq;
        out_m[e * n + i] = gm;
      }
      for (int oz = 0; oz < BSplineTaps<D>::kZ; ++oz) {
        for (int oy = 0; oy < 3; ++oy) {
          const Eigen::Index row = t.offset[2][oz] + t.offset[1][oy];
          const double wy = t.f[1][0][oy], dwy = t.f[1][1][oy];
          const double wz = t.f[2][0][oz], dwz = t.f[2][1][oz];
          for (int ox = 0; ox < 3; ++ox) {
            const double wx = t.f[0][0][ox], dwx = t.f[0][1][ox];
            const double w = wx * wy * wz;
            double am_dw = am[0] * dwx * wy * wz + am[1] * wx * dwy * wz;  // Σ_e ã_e ∂_e w
            if constexpr (D == 3) am_dw += am[2] * wx * wy * dwz;
            const Eigen::Index p = row + t.offset[0][ox];
            for (int d = 0; d < D; ++d) scatter[d * n + p] += w * aq[d] - mi[d] * am_dw;
          }
        }
      }
    }
  });
  SumRanges(bar_v, D);

  // Through S: with B = K ā_V, a_m,d += B_d(q) and a_q,e += Σ_d m_d ∂_e B_d(q).
  smooth_(bar_v, D);
  const double* b = bar_v;
  ForRanges([&](Eigen::Index begin, Eigen::Index end, int) {
    BSplineTaps<D> t;
    double pos[D];
    double g[kSums<D, 1>];
    for (Eigen::Index i = begin; i < end; ++i) {
      for (int k = 0; k < D; ++k) pos[k] = q[k * n + i];
      t.Set(grid_.size, pos);
      Gather<D, 1>(t, b, n, g);
      for (int e = 0; e < D; ++e) {
        double gq = 0.0;
        for (int d = 0; d < D; ++d) gq += m[d * n + i] * g[FirstIndex<D, 1>(e, d)];
        out_q[e * n + i] += gq;
        out_m[e * n + i] += g[SumIndex<D, 1>(0, 0, 0, e)];
      }
    }
  });
}

void EpdiffShooting::f(double, ConstVectorRef x, ConstVectorRef, VectorRef dxdt) {
  if (dim_ == 2) {
    F<2>(x.data(), dxdt.data(), field_.data());
  } else {
    F<3>(x.data(), dxdt.data(), field_.data());
  }
}

void EpdiffShooting::vjp(double, ConstVectorRef x, ConstVectorRef, ConstVectorRef a,
                         VectorRef a_x, VectorRef) {
  if (dim_ == 2) {
    Velocity<2>(x.data(), field_.data());
    Vjp<2>(x.data(), a.data(), field_.data(), a_x.data());
  } else {
    Velocity<3>(x.data(), field_.data());
    Vjp<3>(x.data(), a.data(), field_.data(), a_x.data());
  }
}

void EpdiffShooting::ReserveSlots(int slots) {
  if (static_cast<int>(slot_velocity_.size()) >= slots) return;
  slot_velocity_.resize(static_cast<std::size_t>(slots));
  for (Vector& v : slot_velocity_) v.resize(dim_ * voxels_);
}

void EpdiffShooting::f_slot(int slot, double, ConstVectorRef x, ConstVectorRef, VectorRef dxdt) {
  double* velocity = slot_velocity_[static_cast<std::size_t>(slot)].data();
  if (dim_ == 2) {
    F<2>(x.data(), dxdt.data(), velocity);
  } else {
    F<3>(x.data(), dxdt.data(), velocity);
  }
}

void EpdiffShooting::vjp_slot(int slot, double, ConstVectorRef x, ConstVectorRef,
                              ConstVectorRef a, VectorRef a_x, VectorRef) {
  const double* velocity = slot_velocity_[static_cast<std::size_t>(slot)].data();
  if (dim_ == 2) {
    Vjp<2>(x.data(), a.data(), velocity, a_x.data());
  } else {
    Vjp<3>(x.data(), a.data(), velocity, a_x.data());
  }
}

void EpdiffShooting::Fields(const Vector& state, Vector* momentum, Vector* velocity) {
  const Eigen::Index block = dim_ * voxels_;
  momentum->resize(block);
  if (dim_ == 2) {
    Splat<2>(state.data(), state.data() + block, momentum->data());
  } else {
    Splat<3>(state.data(), state.data() + block, momentum->data());
  }
  *velocity = *momentum;
  smooth_(velocity->data(), dim_);
}

double EpdiffShooting::VelocityNorm(const Vector& state) {
  Vector momentum, velocity;
  Fields(state, &momentum, &velocity);
  return std::sqrt(std::max(0.0, momentum.dot(velocity)));
}

// ---------------------------------------------------------------------------------------------

ShootingObjective::ShootingObjective(const Image& moving, const Image& fixed, const Grid& mesh,
                                     const MetricPowers& metric,
                                     const FlowProblemOptions& options)
    : FlowObjective(moving, fixed, mesh, metric, options),
      shooting_(mesh, metric.smooth, options.threads) {
  const Eigen::Index block = mesh.dim * mesh.voxels();
  x0_.resize(2 * block);
  x0_.head(block) = IdentityPositions(mesh);
  x0_.tail(block).setZero();
}

Vector ShootingObjective::InitialMomentum(const Vector& w) const {
  Vector m0 = w;
  metric_.inverse_half(m0.data(), mesh_.dim);
  return m0;
}

double ShootingObjective::KineticTerm(const Vector& state, double weight, Vector* gradient) {
  // H = ½⟨S, K S⟩ Δx = ½ Δx Σ_i m_i · v(q_i), and (∂H/∂q, ∂H/∂m) = Δx (−h ⊙ dm/dt, h ⊙ dq/dt):
  // both from one evaluation of the right-hand side.
  const Eigen::Index block = mesh_.dim * mesh_.voxels();
  const Eigen::Index n = mesh_.voxels();
  const double dx = metric_.voxel_volume;
  rhs_.resize(2 * block);
  shooting_.f(0.0, state, Vector(), rhs_);
  double h_value = 0.0;
  for (int d = 0; d < mesh_.dim; ++d) {
    const double h = mesh_.spacing_mm[d];
    h_value += h * state.segment(block + d * n, n).dot(rhs_.segment(d * n, n));
    if (gradient != nullptr) {
      gradient->segment(d * n, n) = -weight * dx * h * rhs_.segment(block + d * n, n);
      gradient->segment(block + d * n, n) = weight * dx * h * rhs_.segment(d * n, n);
    }
  }
  return weight * 0.5 * dx * h_value;
}

double ShootingObjective::Evaluate(const Vector& w, Vector* gradient) {
  ++evaluations_;
  const Eigen::Index block = mesh_.dim * mesh_.voxels();
  x0_.tail(block) = w;
  metric_.inverse_half(x0_.data() + block, mesh_.dim);

  // E = Σ_k τ_k H(q_k, m_k) + D(q_T): the trapezoidal ½∫‖v_t‖²_V dt along the computed path (equal
  // to ½‖v_0‖²_V on an exact geodesic). Measuring the speed along the whole path, not only at
  // t = 0, keeps the optimiser from profiting from the integrator's energy error.
  const std::vector<double> times = OutputTimes();
  const int T = options_.time_steps;
  auto tau = [T](int k) { return (k == 0 || k == T) ? 0.5 / T : 1.0 / T; };
  const int substeps = Substeps(x0_);
  const SolverOptions solver = FlowSolverOptions(options_, substeps);
  const Vector no_parameters;
  double data = 0.0;
  double ssd = 0.0;
  double kinetic = 0.0;
  if (gradient == nullptr) {
    Solution solution = Integrate(shooting_, x0_, no_parameters, times, solver);
    for (int k = 0; k <= T; ++k) kinetic += KineticTerm(solution.states[k], tau(k), nullptr);
    data = data_term_.Evaluate(map_, solution.states.back().head(block), nullptr, &ssd);
  } else {
    auto loss = [&](const std::vector<Vector>& states, std::vector<Vector>& grads) {
      kinetic = 0.0;
      for (int k = 0; k <= T; ++k) {
        grads[k].resize(2 * block);
        kinetic += KineticTerm(states[k], tau(k), &grads[k]);
      }
      Eigen::VectorXd gq;
      data = data_term_.Evaluate(map_, states.back().head(block), &gq, &ssd);
      grads.back().head(block) += gq;
      return kinetic + data;
    };
    GradientOptions gopt;
    gopt.mode = options_.gradient_mode;
    // A checkpoint at every step: T + 1 states of 2·dim × mesh voxels (what the path already
    // costs) instead of replaying segments, which would re-evaluate f about T more times.
    gopt.checkpoint_every = substeps;
    GradientResult result = Gradient(shooting_, x0_, no_parameters, times, loss, solver, gopt);
    Vector g = result.grad_x0.tail(block);
    metric_.inverse_half(g.data(), mesh_.dim);
    *gradient = std::move(g);
  }
  last_ = {kinetic + data, kinetic, data, ssd, substeps};
  return kinetic + data;
}

int ShootingObjective::Substeps(const Vector& state) {
  if (options_.substeps > 0) return options_.substeps;
  Vector momentum, velocity;
  shooting_.Fields(state, &momentum, &velocity);
  return SubstepsFor(VelocityLipschitzBound(mesh_, velocity.data()), options_);
}

std::vector<Vector> ShootingObjective::StepVelocities(const Vector& w, int* substeps) {
  const Eigen::Index block = mesh_.dim * mesh_.voxels();
  x0_.tail(block) = w;
  metric_.inverse_half(x0_.data() + block, mesh_.dim);
  int s = Substeps(x0_);
  std::vector<Vector> velocities;
  while (true) {
    Solution solution = Integrate(shooting_, x0_, Vector(), UniformTimes(options_.time_steps * s),
                                  FlowSolverOptions(options_, s));
    velocities.clear();
    double lipschitz = 0.0;
    for (const Vector& state : solution.states) {
      Vector momentum, velocity;
      shooting_.Fields(state, &momentum, &velocity);
      lipschitz = std::max(lipschitz, VelocityLipschitzBound(mesh_, velocity.data()));
      velocities.push_back(std::move(velocity));
    }
    const double h = 1.0 / (options_.time_steps * s);
    if (options_.substeps > 0 || h * lipschitz <= options_.max_step_lipschitz ||
        s >= options_.max_substeps) {
      break;
    }
    s = std::min(2 * s, options_.max_substeps);
  }
  if (substeps != nullptr) *substeps = s;
  return velocities;
}

std::vector<Vector> ShootingObjective::Path(const Vector& w) {
  const Eigen::Index block = mesh_.dim * mesh_.voxels();
  x0_.tail(block) = w;
  metric_.inverse_half(x0_.data() + block, mesh_.dim);
  Solution solution = Integrate(shooting_, x0_, Vector(), OutputTimes(),
                                FlowSolverOptions(options_, Substeps(x0_)));
  return solution.states;
}

}  // namespace diffeoflow::registration
