// The three solver-benchmark configurations of the neural-ODE issue, forward + gradient of
// dx/dt = W2 tanh(W1 [x; t] + b1) + b2 on [0, 1] with L = Σ x(1)² (flows/ode_benchmark.h).
// Prints one JSON object: {"<configuration>": {ms_per_iteration, nfe_forward, ...}, ...}.
// `diffeoflow bench ode` runs one configuration with every option exposed.
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "flows/ode_benchmark.h"

int main(int argc, char** argv) {
  using diffeoflow::flows::OdeBenchmarkOptions;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (argc > 1) threads = std::max(1, std::atoi(argv[1]));
  struct Config {
    const char* name;
    int dim, hidden, batch;
    diffeoflow::Method method;
  };
  const Config configs[] = {
      {"D2_H64_B512_dopri5_backsolve", 2, 64, 512, diffeoflow::Method::kDopri5},
      {"D2_H64_B512_rk4_20_backsolve", 2, 64, 512, diffeoflow::Method::kRk4},
      {"D64_H256_B256_dopri5_backsolve", 64, 256, 256, diffeoflow::Method::kDopri5},
  };
  nlohmann::ordered_json out;
  out["threads"] = threads;
  for (const Config& c : configs) {
    OdeBenchmarkOptions o;
    o.dim = c.dim;
    o.hidden = c.hidden;
    o.batch = c.batch;
    o.solver.method = c.method;
    o.solver.steps = 20;
    o.solver.rtol = 1e-6;
    o.solver.atol = 1e-8;
    o.gradient.mode = diffeoflow::GradientMode::kBacksolve;
    o.repeat = 7;
    o.threads = threads;
    out[c.name] = nlohmann::json::parse(diffeoflow::flows::RunOdeBenchmark(o).Json());
  }
  std::cout << out.dump() << std::endl;
  return 0;
}
