#include "flows/ode_benchmark.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <random>

#include <nlohmann/json.hpp>

#include "flows/field.h"
#include "flows/kernels.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"

namespace diffeoflow::flows {

void OdeBenchmarkOptions::Validate() const {
  if (dim < 1) throw InputError("--dim must be ≥ 1 (got " + std::to_string(dim) + ")");
  if (hidden < 1) throw InputError("--hidden must be ≥ 1 (got " + std::to_string(hidden) + ")");
  if (batch < 1) throw InputError("--batch must be ≥ 1 (got " + std::to_string(batch) + ")");
  if (repeat < 1) throw InputError("--repeat must be ≥ 1 (got " + std::to_string(repeat) + ")");
  if (threads < 1) throw InputError("--threads must be ≥ 1");
  solver.Validate();
  gradient.Validate();
}

namespace {

std::vector<double> ReadExact(const h5::Reader& file, const std::string& name,
                              const h5::Shape& expected) {
  h5::Shape shape;
  std::vector<double> data = file.ReadDoubles(name, &shape);
  if (shape != expected) {
    auto text = [](const h5::Shape& s) {
      std::string out = "(";
      for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
      return out + ")";
    };
    throw InputError(file.path() + ": dataset '" + name + "' has shape " + text(shape) +
                     ", expected " + text(expected) + " (--weights)");
  }
  return data;
}

}  // namespace

OdeBenchmarkResult RunOdeBenchmark(const OdeBenchmarkOptions& options) {
  options.Validate();
  const Index D = options.dim, H = options.hidden, B = options.batch;
  const Sequential net = MlpField(D, {H}, Activation::kTanh);
  NetworkField field(net, B, options.threads);
  // θ = [W1 (H×(D+1) row-major), b1, W2 (D×H row-major), b2]: the nn.Linear layout.
  const Index w1 = H * (D + 1), b1 = w1, w2 = b1 + H, b2 = w2 + D * H;
  Vector theta(field.param_dim()), x0(field.state_dim());
  if (options.weights.empty()) {
    std::mt19937 rng(options.seed);
    net.Initialize(rng, theta.data());
    std::normal_distribution<double> normal(0.0, 1.0);
    for (Index i = 0; i < x0.size(); ++i) x0[i] = normal(rng);
  } else {
    h5::Reader file(options.weights);
    const auto u = [](Index v) { return static_cast<std::uint64_t>(v); };
    auto put = [&](const std::string& name, const h5::Shape& shape, double* dst) {
      const std::vector<double> data = ReadExact(file, name, shape);
      std::copy(data.begin(), data.end(), dst);
    };
    put("l1/weight", {u(H), u(D + 1)}, theta.data() + 0);
    put("l1/bias", {u(H)}, theta.data() + b1);
    put("l2/weight", {u(D), u(H)}, theta.data() + w2);
    put("l2/bias", {u(D)}, theta.data() + b2);
    put("x0", {u(B), u(D)}, x0.data());
  }

  SolverOptions solver = options.solver;
  solver.t0 = 0.0;
  const std::vector<double> times = {1.0};
  const TrajectoryLoss loss = [](const std::vector<Vector>& xs, std::vector<Vector>& grads) {
    grads[0] = 2.0 * xs[0];
    return xs[0].squaredNorm();
  };

  OdeBenchmarkResult result;
  result.instruction_set = kernels::InstructionSet();
  auto cpu_ms = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return 1e3 * static_cast<double>(ts.tv_sec) + 1e-6 * static_cast<double>(ts.tv_nsec);
  };
  std::vector<double> cpu;
  for (int r = 0; r < options.repeat; ++r) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = cpu_ms();
    result.gradient = Gradient(field, x0, theta, times, loss, solver, options.gradient);
    cpu.push_back(cpu_ms() - cpu_start);
    const auto stop = std::chrono::steady_clock::now();
    result.ms_all.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  };
  result.ms_per_iteration = median(result.ms_all);
  result.cpu_ms_per_iteration = median(cpu);
  result.nfe_forward = result.gradient.summary.nfe_forward;
  result.nfe_backward = result.gradient.summary.nfe_backward;
  result.loss = result.gradient.loss;

  if (!options.out.empty()) {
    const auto u = [](Index v) { return static_cast<std::uint64_t>(v); };
    const GradientResult& g = result.gradient;
    h5::Writer out(options.out);
    out.WriteDoubles("loss", &result.loss, {});
    out.WriteDoubles("x1", g.states.back().data(), {u(B), u(D)});
    out.WriteDoubles("grad/x0", g.grad_x0.data(), {u(B), u(D)});
    out.WriteDoubles("grad/l1/weight", g.grad_theta.data(), {u(H), u(D + 1)});
    out.WriteDoubles("grad/l1/bias", g.grad_theta.data() + b1, {u(H)});
    out.WriteDoubles("grad/l2/weight", g.grad_theta.data() + w2, {u(D), u(H)});
    out.WriteDoubles("grad/l2/bias", g.grad_theta.data() + b2, {u(D)});
    out.SetAttribute("/", "solver", MethodName(solver.method));
    out.SetAttribute("/", "gradient", GradientModeName(options.gradient.mode));
    out.SetAttribute("/", "ms_per_iteration", result.ms_per_iteration);
    out.SetAttribute("/", "nfe_forward", static_cast<std::int64_t>(result.nfe_forward));
    out.SetAttribute("/", "nfe_backward", static_cast<std::int64_t>(result.nfe_backward));
    out.Commit();
  }
  return result;
}

std::string OdeBenchmarkResult::Json() const {
  nlohmann::ordered_json j;
  j["ms_per_iteration"] = ms_per_iteration;
  j["nfe_forward"] = nfe_forward;
  j["nfe_backward"] = nfe_backward;
  j["loss"] = loss;
  j["cpu_ms_per_iteration"] = cpu_ms_per_iteration;
  j["ms_all"] = ms_all;
  j["steps_accepted"] = gradient.summary.steps_accepted;
  j["steps_rejected"] = gradient.summary.steps_rejected;
  j["backward_steps_accepted"] = gradient.summary.backward_steps_accepted;
  j["instruction_set"] = instruction_set;
  return j.dump();
}

}  // namespace diffeoflow::flows
