// Butcher tableaus of the explicit Runge–Kutta methods diffeoflow integrates with, used by the
// discrete adjoint to replay and differentiate the accepted steps:
//   y_i = x + h Σ_{j<i} a_ij k_j,   k_i = f(t + c_i h, y_i),   x⁺ = x + h Σ_i b_i k_i.
// The coefficients of RK4, Cash–Karp 5(4) and Fehlberg 7(8) are read from Boost.Odeint's own
// coefficient tables, so the replay is the method odeint stepped with; Dopri5 (hard-coded inside
// odeint's stepper) is written out from Dormand & Prince (1980), Hairer–Nørsett–Wanner I, Table 5.2.
#pragma once

#include <vector>

#include "solvers/integrate.h"

namespace diffeoflow {

struct ButcherTableau {
  int stages = 0;
  std::vector<double> c;               // nodes, size stages
  std::vector<std::vector<double>> a;  // a[i][j], j < i (a[i] has size stages)
  std::vector<double> b;               // weights of the propagated solution
};

const ButcherTableau& TableauFor(Method method);

}  // namespace diffeoflow
