// The cost of the discrete adjoint per step (solvers/integrate.h): f and vjp calls per accepted
// step and the wall time of one gradient, for the three Dynamics whose backward sweep the replay
// contract (solvers/dynamics.h) is about:
//   mlp       the MLP field of `bench ode` (D2 H64 B512, tanh), RK4 with 10 steps and Dopri5;
//   odenet    the convolutional ODE-Net field of `train --model odenet --channels 32` on a batch
//             of 32 Fashion-MNIST-sized states, RK4 with 4 steps;
//   shooting  EPDiff geodesic shooting on the 64² disc-to-C pair (RK4, T = 5 × substeps), both
//             the bare gradient and the whole objective (kinetic term + data term) with gradient.
// L = Σ x(1)² for the bare gradients. Prints one JSON object; times are medians of --repeat runs.
// Each run takes the next of three initial states (or momenta) in turn, as training sees new
// batches: a recent input again would let a Dynamics that remembers its evaluations across solves
// skip them (the state-keyed caches this bench was written to retire held up to 48 evaluations).
//
//   bench_replay [--repeat N] [--only mlp|odenet|shooting]
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flows/classifier.h"
#include "flows/field.h"
#include "registration/image_ops.h"
#include "registration/lddmm.h"
#include "registration/shapes.h"
#include "registration/shooting.h"
#include "solvers/integrate.h"

namespace {

using namespace diffeoflow;
using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// fn(r) for r = 0 … repeat (0: warm-up: workspaces, FFTW plans, slots).
template <class Fn>
double MedianMs(int repeat, Fn&& fn) {
  std::vector<double> ms;
  fn(0);
  for (int r = 1; r <= repeat; ++r) {
    const auto start = Clock::now();
    fn(r);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  return Median(ms);
}

// One discrete-adjoint gradient of Σ x(1)² and its counts per accepted step.
nlohmann::ordered_json Case(Dynamics& dynamics, const Vector (&x0)[3], const Vector& theta,
                            const SolverOptions& solver, int repeat) {
  const TrajectoryLoss loss = [](const std::vector<Vector>& xs, std::vector<Vector>& grads) {
    grads.back() = 2.0 * xs.back();
    return xs.back().squaredNorm();
  };
  GradientOptions gopts;
  gopts.mode = GradientMode::kDiscrete;
  GradientResult result;
  const double ms = MedianMs(repeat, [&](int r) {
    result = Gradient(dynamics, x0[r % 3], theta, {1.0}, loss, solver, gopts);
  });
  const SolveSummary& s = result.summary;
  const double steps = static_cast<double>(s.steps_accepted);
  nlohmann::ordered_json out;
  out["method"] = MethodName(solver.method);
  out["steps"] = s.steps_accepted;
  out["f_per_step"] = static_cast<double>(s.nfe_forward + s.nfe_backward) / steps;
  out["f_forward_per_step"] = static_cast<double>(s.nfe_forward) / steps;
  out["f_backward_per_step"] = static_cast<double>(s.nfe_backward) / steps;
  out["vjp_per_step"] = static_cast<double>(s.vjp_backward) / steps;
  out["states_held_peak"] = s.states_held_peak;
  out["ms_gradient"] = ms;
  return out;
}

Vector Normal(Eigen::Index n, std::mt19937& rng, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  Vector v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = normal(rng);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace diffeoflow::flows;
  using namespace diffeoflow::registration;
  int repeat = 7;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--repeat") {
      repeat = std::max(1, std::atoi(argv[i + 1]));
    } else if (flag == "--only") {
      only = argv[i + 1];
    } else {
      std::cerr << "bench_replay: unknown flag " << flag << "\n";
      return 2;
    }
  }
  nlohmann::ordered_json out;
  out["repeat"] = repeat;
  std::mt19937 rng(7);

  auto run = [&](const char* name) { return only.empty() || only == name; };
  if (run("mlp")) {  // MLP field of bench ode
    const Sequential net = MlpField(2, {64}, Activation::kTanh);
    NetworkField field(net, 512);
    Vector theta(field.param_dim());
    net.Initialize(rng, theta.data());
    const Vector x0[3] = {Normal(field.state_dim(), rng, 1.0), Normal(field.state_dim(), rng, 1.0),
                          Normal(field.state_dim(), rng, 1.0)};
    SolverOptions rk4;
    rk4.method = Method::kRk4;
    rk4.steps = 10;
    out["mlp_rk4"] = Case(field, x0, theta, rk4, repeat);
    SolverOptions dopri5;
    dopri5.method = Method::kDopri5;
    dopri5.rtol = 1e-6;
    dopri5.atol = 1e-8;
    out["mlp_dopri5"] = Case(field, x0, theta, dopri5, repeat);
  }
  if (run("odenet")) {  // the convolutional ODE-Net's field
    ModelSpec spec;
    spec.kind = ModelKind::kOdeNet;
    spec.input_shape = {1, 28, 28};
    spec.classes = 10;
    spec.width = 32;
    spec.precision = Precision::kDouble;
    spec.solver.method = Method::kRk4;
    spec.solver.steps = 4;
    Classifier classifier(spec);
    const Vector all = classifier.Initialize(3);
    NetworkField field(classifier.flow_field(), 32);
    const Vector theta = all.segment(classifier.flow_offset(), field.param_dim());
    const Vector x0[3] = {Normal(field.state_dim(), rng, 1.0), Normal(field.state_dim(), rng, 1.0),
                          Normal(field.state_dim(), rng, 1.0)};
    out["odenet_rk4"] = Case(field, x0, theta, spec.solver, std::max(1, repeat / 2));
  }
  if (run("shooting")) {  // geodesic shooting
    ShapeOptions shape;
    shape.size = 64;
    shape.edge_width_px = 2.0;
    const ShapePair pair = DiscToCPair(shape);
    MetricOptions metric_options;
    metric_options.alpha_mm2 = 16.0;
    metric_options.gamma = 2.0;
    const Grid& mesh = pair.fixed.grid;
    const MetricPowers metric = MakeMetricPowers(mesh, metric_options);
    FlowProblemOptions options;
    options.sigma = 0.1;
    options.time_steps = 5;
    ShootingObjective objective(pair.moving, pair.fixed, mesh, metric, options);
    const Vector w[3] = {Normal(objective.num_parameters(), rng, 0.3),
                         Normal(objective.num_parameters(), rng, 0.3),
                         Normal(objective.num_parameters(), rng, 0.3)};
    Vector x0[3];
    for (int k = 0; k < 3; ++k) {
      x0[k].resize(2 * objective.num_parameters());
      x0[k] << IdentityPositions(mesh), objective.InitialMomentum(w[k]);
    }
    const int substeps = std::max(
        {objective.Substeps(x0[0]), objective.Substeps(x0[1]), objective.Substeps(x0[2])});
    const SolverOptions solver = FlowSolverOptions(options, substeps);
    out["shooting_rk4"] = Case(objective.dynamics(), x0, Vector(), solver, repeat);
    Vector gradient;
    out["shooting_rk4"]["ms_objective_with_gradient"] =
        MedianMs(repeat, [&](int r) { objective.Evaluate(w[r % 3], &gradient); });
  }
  std::cout << out.dump(2) << std::endl;
  return 0;
}
