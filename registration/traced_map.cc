#include "registration/traced_map.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "solvers/errors.h"
#include "solvers/integrate.h"

namespace diffeoflow::registration {

namespace {

// One axis of a kernel at coordinate x: W taps starting at node `base`, their weights and first
// and second derivatives.
template <int W>
struct AxisTaps {
  long base = 0;
  double w[W], dw[W], d2w[W];
  void Set(double x) {
    if constexpr (W == 2) {  // multilinear
      const double fl = std::floor(x);
      const double f = x - fl;
      base = static_cast<long>(fl);
      w[0] = 1.0 - f;
      w[1] = f;
      dw[0] = -1.0;
      dw[1] = 1.0;
      d2w[0] = d2w[1] = 0.0;
    } else {  // quadratic B-spline
      const double r = std::floor(x + 0.5);
      const double t = x - r;
      base = static_cast<long>(r) - 1;
      w[0] = 0.5 * (0.5 - t) * (0.5 - t);
      w[1] = 0.75 - t * t;
      w[2] = 0.5 * (0.5 + t) * (0.5 + t);
      dw[0] = t - 0.5;
      dw[1] = -2.0 * t;
      dw[2] = 0.5 + t;
      d2w[0] = 1.0;
      d2w[1] = -2.0;
      d2w[2] = 1.0;
    }
  }
};

// Tap `tap` of the W^D tensor-product stencil: its per-axis offsets `o` and the flat index of its
// mesh node; false when the node lies outside the mesh (v = 0 there).
template <int D, int W>
bool TapNode(const AxisTaps<W>* axis, int tap, const long* size, const long* stride, int* o,
             long* flat) {
  o[0] = tap % W;
  o[1] = (tap / W) % W;
  o[2] = D == 3 ? tap / (W * W) : 0;
  *flat = 0;
  for (int a = 0; a < D; ++a) {
    const long node = axis[a].base + o[a];
    if (node < 0 || node >= size[a]) return false;
    *flat += node * stride[a];
  }
  return true;
}

// Below this many tracers a second thread costs more than it saves.
constexpr Eigen::Index kTracersPerThread = 16384;

}  // namespace

TracedMapFlow::TracedMapFlow(const Grid& mesh, int fields, Eigen::Index tracers,
                             MeshKernel kernel, int threads)
    : mesh_(mesh),
      dim_(mesh.dim),
      fields_(fields),
      block_(mesh.dim * mesh.voxels()),
      tracers_(tracers),
      kernel_(kernel) {
  for (int a = 0; a < 3; ++a) {
    size_[a] = mesh.size[a];
    inv_h_[a] = 1.0 / mesh.spacing_mm[a];
  }
  stride_[0] = 1;
  stride_[1] = size_[0];
  stride_[2] = size_[0] * size_[1];
  if (fields < 2) throw InputError("TracedMapFlow: at least two velocity fields (K >= 1)");
  pool_ = std::make_unique<ThreadPool>(RangesFor(threads, tracers, kTracersPerThread));
  field_.resize(block_);
}

void TracedMapFlow::TimeSlot(double t, int* k, double* lambda) const {
  const int intervals = fields_ - 1;
  const double s = std::clamp(t, 0.0, 1.0) * intervals;
  int slot = static_cast<int>(std::floor(s));
  if (slot >= intervals) slot = intervals - 1;
  *k = slot;
  *lambda = s - slot;
}

template <int D, int W>
void TracedMapFlow::Rates(Eigen::Index begin, Eigen::Index end, const double* field,
                          const double* x, double* dxdt) const {
  const Eigen::Index n = tracers_, nm = mesh_.voxels();
  const long* size = size_;
  const long* stride = stride_;
  const double* inv_h = inv_h_;
  AxisTaps<W> axis;
  // Per axis: each tap's flat offset and weights, zero for a node outside the mesh (v = 0 there),
  // so that the tensor-product sums below need no test.
  long off[3][W] = {};
  double w[3][W], dw[3][W];
  for (int o = 0; o < W; ++o) {
    w[2][o] = o == 0 ? 1.0 : 0.0;  // 2-D: one "z" tap of weight 1
    dw[2][o] = 0.0;
  }
  constexpr int kZ = D == 3 ? W : 1;
  for (Eigen::Index i = begin; i < end; ++i) {
    for (int a = 0; a < D; ++a) {
      axis.Set(x[a * n + i]);
      for (int o = 0; o < W; ++o) {
        const long node = axis.base + o;
        const bool inside = node >= 0 && node < size[a];
        off[a][o] = inside ? node * stride[a] : 0;
        w[a][o] = inside ? axis.w[o] : 0.0;
        dw[a][o] = inside ? axis.dw[o] : 0.0;
      }
    }
    // Separably, x then y then z: v_c = Σ w_x w_y w_z V_c, and ∂_c v_c with w_c → dw_c.
    double v[D] = {};
    double div[3] = {0.0, 0.0, 0.0};
    for (int oz = 0; oz < kZ; ++oz) {
      double sy[D] = {};
      double dx_y = 0.0, dy = 0.0;
      for (int oy = 0; oy < W; ++oy) {
        const long row = off[2][oz] + off[1][oy];
        double sx[D] = {};
        double dx = 0.0;
        for (int ox = 0; ox < W; ++ox) {
          const long flat = row + off[0][ox];
          for (int c = 0; c < D; ++c) sx[c] += w[0][ox] * field[c * nm + flat];
          dx += dw[0][ox] * field[flat];
        }
        for (int c = 0; c < D; ++c) sy[c] += w[1][oy] * sx[c];
        dx_y += w[1][oy] * dx;
        dy += dw[1][oy] * sx[1];
      }
      for (int c = 0; c < D; ++c) v[c] += w[2][oz] * sy[c];
      div[0] += w[2][oz] * dx_y;
      div[1] += w[2][oz] * dy;
      if constexpr (D == 3) div[2] += dw[2][oz] * sy[2];
    }
    double divergence = 0.0;
    for (int c = 0; c < D; ++c) {
      dxdt[c * n + i] = v[c] * inv_h[c];
      divergence += div[c] * inv_h[c];
    }
    dxdt[D * n + i] = divergence;
  }
}

template <int D, int W>
void TracedMapFlow::Adjoint(Eigen::Index begin, Eigen::Index end, int k, double lambda,
                            const double* x, const double* theta, const double* a, double* a_x,
                            double* a_theta) const {
  const Eigen::Index n = tracers_, nm = mesh_.voxels();
  const double* v0 = theta + k * block_;
  const double* v1 = v0 + block_;
  double* g0 = a_theta + k * block_;
  double* g1 = g0 + block_;
  const long* size = size_;
  const long* stride = stride_;
  const double* inv_h = inv_h_;
  AxisTaps<W> axis[D];
  constexpr int kTaps = D == 2 ? W * W : W * W * W;
  for (Eigen::Index i = begin; i < end; ++i) {
    for (int e = 0; e < D; ++e) axis[e].Set(x[e * n + i]);
    double ap[D];
    for (int c = 0; c < D; ++c) ap[c] = a[c * n + i] * inv_h[c];
    const double aj = a[D * n + i];
    double out[D] = {};
    for (int tap = 0; tap < kTaps; ++tap) {
      int o[3];
      long flat;
      if (!TapNode<D, W>(axis, tap, size, stride, o, &flat)) continue;
      // Weight, gradient and Hessian of this tap's tensor-product weight.
      double weight = 1.0;
      for (int e = 0; e < D; ++e) weight *= axis[e].w[o[e]];
      double grad[D], hess[D][D];
      for (int e = 0; e < D; ++e) {
        for (int f = 0; f < D; ++f) {
          double h = 1.0;
          for (int b = 0; b < D; ++b) {
            if (b == e && b == f) {
              h *= axis[b].d2w[o[b]];
            } else if (b == e || b == f) {
              h *= axis[b].dw[o[b]];
            } else {
              h *= axis[b].w[o[b]];
            }
          }
          hess[e][f] = h;
        }
        double g = 1.0;
        for (int b = 0; b < D; ++b) g *= b == e ? axis[b].dw[o[b]] : axis[b].w[o[b]];
        grad[e] = g;
      }
      for (int c = 0; c < D; ++c) {
        const double value = (1.0 - lambda) * v0[c * nm + flat] + lambda * v1[c * nm + flat];
        for (int e = 0; e < D; ++e) {
          out[e] += (ap[c] * grad[e] + aj * hess[e][c] * inv_h[c]) * value;
        }
        const double splat = ap[c] * weight + aj * grad[c] * inv_h[c];
        g0[c * nm + flat] += (1.0 - lambda) * splat;
        g1[c * nm + flat] += lambda * splat;
      }
    }
    for (int e = 0; e < D; ++e) a_x[e * n + i] = out[e];
    a_x[D * n + i] = 0.0;  // the rates do not depend on log det Dφ
  }
}

void TracedMapFlow::f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) {
  int k;
  double lambda;
  TimeSlot(t, &k, &lambda);
  // v_t on the mesh, once for all tracers.
  field_ = (1.0 - lambda) * theta.segment(k * block_, block_) +
           lambda * theta.segment((k + 1) * block_, block_);
  const double* field = field_.data();
  pool_->ForRanges(tracers_, [&](Eigen::Index begin, Eigen::Index end, int) {
    if (dim_ == 2) {
      if (kernel_ == MeshKernel::kMultilinear) {
        Rates<2, 2>(begin, end, field, x.data(), dxdt.data());
      } else {
        Rates<2, 3>(begin, end, field, x.data(), dxdt.data());
      }
    } else if (kernel_ == MeshKernel::kMultilinear) {
      Rates<3, 2>(begin, end, field, x.data(), dxdt.data());
    } else {
      Rates<3, 3>(begin, end, field, x.data(), dxdt.data());
    }
  });
}

void TracedMapFlow::vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                        VectorRef a_x, VectorRef a_theta) {
  int k;
  double lambda;
  TimeSlot(t, &k, &lambda);
  a_theta.setZero();
  // The splat into θ is a sum over tracers: one thread, so that it stays deterministic and free
  // of races (the vjp serves tests and gradient checks, not the hot path).
  if (dim_ == 2) {
    if (kernel_ == MeshKernel::kMultilinear) {
      Adjoint<2, 2>(0, tracers_, k, lambda, x.data(), theta.data(), a.data(), a_x.data(),
                    a_theta.data());
    } else {
      Adjoint<2, 3>(0, tracers_, k, lambda, x.data(), theta.data(), a.data(), a_x.data(),
                    a_theta.data());
    }
  } else if (kernel_ == MeshKernel::kMultilinear) {
    Adjoint<3, 2>(0, tracers_, k, lambda, x.data(), theta.data(), a.data(), a_x.data(),
                  a_theta.data());
  } else {
    Adjoint<3, 3>(0, tracers_, k, lambda, x.data(), theta.data(), a.data(), a_x.data(),
                  a_theta.data());
  }
}

TracedMap TraceMap(const Grid& image, const Grid& mesh, const std::vector<Eigen::VectorXd>& fields,
                   MeshKernel kernel, int steps, Method method, int threads) {
  return TracePoints(image, mesh, fields, kernel, steps, IdentityPositions(image), method,
                     threads);
}

TracedMap TracePoints(const Grid& image, const Grid& mesh,
                      const std::vector<Eigen::VectorXd>& fields, MeshKernel kernel, int steps,
                      const Eigen::VectorXd& start, Method method, int threads) {
  const int intervals = static_cast<int>(fields.size()) - 1;
  if (intervals < 1 || steps < intervals || steps % intervals != 0) {
    throw InputError("TraceMap: steps must be a positive multiple of the field intervals");
  }
  const int dim = image.dim;
  if (start.size() % dim != 0) throw InputError("TracePoints: start is not dim × points");
  const Eigen::Index block = mesh.dim * mesh.voxels();
  Eigen::VectorXd theta(block * static_cast<Eigen::Index>(fields.size()));
  for (std::size_t j = 0; j < fields.size(); ++j) {
    if (fields[j].size() != block) throw InputError("TraceMap: a velocity field of the wrong size");
    theta.segment(static_cast<Eigen::Index>(j) * block, block) = fields[j];
  }
  const Eigen::Index n = start.size() / dim;
  double ratio[3] = {1.0, 1.0, 1.0};
  for (int a = 0; a < dim; ++a) ratio[a] = mesh.spacing_mm[a] / image.spacing_mm[a];
  // Image voxel coordinates x ↦ mesh coordinates (x + ½) / ratio − ½ (same extent, cell-centred).
  Eigen::VectorXd x0 = Eigen::VectorXd::Zero((dim + 1) * n);
  for (int a = 0; a < dim; ++a) {
    x0.segment(a * n, n) = ((start.segment(a * n, n).array() + 0.5) / ratio[a] - 0.5).matrix();
  }
  TracedMapFlow flow(mesh, static_cast<int>(fields.size()), n, kernel, threads);
  SolverOptions solver;
  solver.method = method;
  solver.steps = steps;
  solver.check_finite = true;
  Solution solution = Integrate(flow, x0, theta, {1.0}, solver);
  const Eigen::VectorXd& end = solution.states.back();
  TracedMap map;
  map.positions.resize(dim * n);
  for (int a = 0; a < dim; ++a) {
    map.positions.segment(a * n, n) = ((end.segment(a * n, n).array() + 0.5) * ratio[a] - 0.5).matrix();
  }
  map.jacobian = end.segment(dim * n, n).array().exp().matrix();
  map.steps = steps;
  return map;
}

std::vector<Eigen::VectorXd> BackwardFields(const std::vector<Eigen::VectorXd>& fields) {
  std::vector<Eigen::VectorXd> backward;
  backward.reserve(fields.size());
  for (auto it = fields.rbegin(); it != fields.rend(); ++it) backward.push_back(-*it);
  return backward;
}

}  // namespace diffeoflow::registration
