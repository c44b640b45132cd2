// The quadratic B-spline stencil of one particle, tap by tap: the weight, gradient and Hessian of
// each of the 3^D nodes around it, formed per tap. It was shooting's particle–mesh kernel
// (registration/shooting.h) before its loops summed the taps one axis at a time (shooting.cc
// BSplineTaps); the tests keep it as the reference that the splat and the gathers must agree
// with. Taps outside the grid have index −1.
#pragma once

#include <array>
#include <cmath>

#include <Eigen/Core>

namespace diffeoflow::registration {

template <int D>
struct QuadraticBSplineStencil {
  static constexpr int kTaps = D == 2 ? 9 : 27;
  Eigen::Index index[kTaps];  // −1 outside the grid
  double weight[kTaps];
  double gradient[kTaps][D];
  double axis_w[D][3], axis_dw[D][3];
  int tap[kTaps][D];  // per-axis offset 0, 1, 2 (node base − 1 + offset)

  void Set(const std::array<int, 3>& n, const double* x) {
    Eigen::Index base[3] = {0, 0, 0};
    bool interior = true;
    for (int k = 0; k < D; ++k) {
      const double r = std::floor(x[k] + 0.5);
      const double t = x[k] - r;
      base[k] = static_cast<Eigen::Index>(r) - 1;
      axis_w[k][0] = 0.5 * (0.5 - t) * (0.5 - t);
      axis_w[k][1] = 0.75 - t * t;
      axis_w[k][2] = 0.5 * (0.5 + t) * (0.5 + t);
      axis_dw[k][0] = t - 0.5;
      axis_dw[k][1] = -2.0 * t;
      axis_dw[k][2] = 0.5 + t;
      interior = interior && base[k] >= 0 && base[k] + 2 < n[k];
    }
    const Eigen::Index sy = n[0], sz = static_cast<Eigen::Index>(n[0]) * n[1];
    const Eigen::Index flat = base[0] + base[1] * sy + base[2] * sz;
    int c = 0;
    for (int oz = 0; oz < (D == 3 ? 3 : 1); ++oz) {
      const double wz = D == 3 ? axis_w[D == 3 ? 2 : 0][oz] : 1.0;
      const double dwz = D == 3 ? axis_dw[D == 3 ? 2 : 0][oz] : 0.0;
      for (int oy = 0; oy < 3; ++oy) {
        const double wy = axis_w[1][oy], dwy = axis_dw[1][oy];
        for (int ox = 0; ox < 3; ++ox, ++c) {
          const double wx = axis_w[0][ox], dwx = axis_dw[0][ox];
          tap[c][0] = ox;
          tap[c][1] = oy;
          if constexpr (D == 3) tap[c][2] = oz;
          index[c] = flat + ox + oy * sy + oz * sz;
          weight[c] = wx * wy * wz;
          gradient[c][0] = dwx * wy * wz;
          gradient[c][1] = wx * dwy * wz;
          if constexpr (D == 3) gradient[c][2] = wx * wy * dwz;
          if (!interior) {
            const Eigen::Index i = base[0] + ox, j = base[1] + oy, k = base[2] + oz;
            if (i < 0 || i >= n[0] || j < 0 || j >= n[1] || (D == 3 && (k < 0 || k >= n[2]))) {
              index[c] = -1;
            }
          }
        }
      }
    }
  }

  // ∂² weight / ∂x_a ∂x_b of tap c (β'' = 1, −2, 1 on the three taps of an axis).
  double Hessian(int c, int a, int b) const {
    static constexpr double kSecond[3] = {1.0, -2.0, 1.0};
    double h = 1.0;
    for (int k = 0; k < D; ++k) {
      const int o = tap[c][k];
      if (k == a && k == b) {
        h *= kSecond[o];
      } else if (k == a || k == b) {
        h *= axis_dw[k][o];
      } else {
        h *= axis_w[k][o];
      }
    }
    return h;
  }
};

}  // namespace diffeoflow::registration
