// Integrates dx/dt = −x to t = 1 with the installed engine and checks x(1) = e^{−1}.
#include <cmath>
#include <cstdio>

#include "solvers/integrate.h"

class Decay : public diffeoflow::Dynamics {
 public:
  Eigen::Index state_dim() const override { return 1; }
  Eigen::Index param_dim() const override { return 0; }
  void f(double, diffeoflow::ConstVectorRef x, diffeoflow::ConstVectorRef,
         diffeoflow::VectorRef dxdt) override {
    dxdt = -x;
  }
  void vjp(double, diffeoflow::ConstVectorRef, diffeoflow::ConstVectorRef,
           diffeoflow::ConstVectorRef a, diffeoflow::VectorRef a_x, diffeoflow::VectorRef) override {
    a_x = -a;
  }
};

int main() {
  Decay decay;
  diffeoflow::SolverOptions options;
  options.method = diffeoflow::Method::kDopri5;
  options.rtol = 1e-10;
  const auto solution = diffeoflow::Integrate(decay, Eigen::VectorXd::Ones(1), Eigen::VectorXd(0),
                                              {1.0}, options);
  const double error = std::abs(solution.states[0][0] - std::exp(-1.0));
  std::printf("x(1) error %.3g\n", error);
  return error < 1e-8 ? 0 : 1;
}
