// `diffeoflow bench ode`: the solver benchmark of ../shared/CLI.md (flows/ode_benchmark.h).
#include <iostream>
#include <thread>

#include "apps/command.h"
#include "flows/ode_benchmark.h"
#include "solvers/errors.h"

namespace {

struct BenchOdeFlags {
  diffeoflow::flows::OdeBenchmarkOptions options;
  std::string solver = "dopri5";
  std::string gradient = "backsolve";
  double adjoint_rtol = 0.0, adjoint_atol = 0.0;
  bool full_norm = false;
};

diffeoflow::app::CommandRegistration registration{
    "bench", "Benchmarks that print one JSON object",
    [](CLI::App& sub, const diffeoflow::app::CommonFlags& common) -> std::function<int()> {
      sub.require_subcommand(1);
      auto flags = std::make_shared<BenchOdeFlags>();
      CLI::App* ode = sub.add_subcommand(
          "ode", "Forward + gradient of dx/dt = W2 tanh(W1 [x; t] + b1) + b2 on [0, 1], L = Σ x(1)²");
      ode->fallthrough();
      auto& o = flags->options;
      ode->add_option("--dim", o.dim, "State dimension D")->check(CLI::PositiveNumber)->capture_default_str();
      ode->add_option("--hidden", o.hidden, "Hidden units H")->check(CLI::PositiveNumber)->capture_default_str();
      ode->add_option("--batch", o.batch, "Batch size B")->check(CLI::PositiveNumber)->capture_default_str();
      ode->add_option("--solver", flags->solver, "euler|midpoint|rk4|dopri5")
          ->capture_default_str();
      ode->add_option("--steps", o.solver.steps, "Steps of a fixed-step solver")
          ->check(CLI::PositiveNumber)->capture_default_str();
      ode->add_option("--rtol", o.solver.rtol, "Relative tolerance (adaptive solvers)")
          ->capture_default_str();
      ode->add_option("--atol", o.solver.atol, "Absolute tolerance (adaptive solvers)")
          ->capture_default_str();
      ode->add_option("--gradient", flags->gradient, "discrete|backsolve|checkpointed")
          ->capture_default_str();
      ode->add_option("--adjoint-rtol", flags->adjoint_rtol,
                      "Relative tolerance of the backward solve (default: --rtol)");
      ode->add_option("--adjoint-atol", flags->adjoint_atol,
                      "Absolute tolerance of the backward solve (default: --atol)");
      ode->add_flag("--full-norm", flags->full_norm,
                    "Backward error norm over [x, λ, θ̄] (torchdiffeq's default) instead of the "
                    "seminorm over [x, λ]");
      ode->add_option("--repeat", o.repeat, "Timed repeats (median reported)")
          ->check(CLI::PositiveNumber)->capture_default_str();
      ode->add_option("--weights", o.weights, "HDF5 file: l1/weight, l1/bias, l2/weight, l2/bias, x0");
      ode->add_option("--out", o.out, "HDF5 result: loss, x1, grad/...");
      return [flags, &common, ode]() -> int {
        if (!ode->parsed()) throw diffeoflow::InputError("bench: expected a benchmark name (ode)");
        auto& opts = flags->options;
        opts.solver.method = diffeoflow::ParseMethod(flags->solver, "--solver");
        opts.gradient.mode = diffeoflow::ParseGradientMode(flags->gradient, "--gradient");
        opts.gradient.adjoint_rtol = flags->adjoint_rtol;
        opts.gradient.adjoint_atol = flags->adjoint_atol;
        opts.gradient.seminorm = !flags->full_norm;
        opts.seed = common.seed;
        const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
        // Without --threads: split the batch only when one evaluation is large enough to pay for
        // the hand-off (measured: D=2,H=64,B=512 is 5.2 ms on one thread and 7.1 ms on two;
        // D=64,H=256,B=256 is 50 ms on one and 41 ms on two).
        const double work = static_cast<double>(opts.batch) *
                            static_cast<double>(opts.hidden) * (2.0 * opts.dim + 2.0);
        opts.threads = common.threads > 0 ? common.threads
                       : work >= 1048576.0 ? static_cast<int>(cores)
                                           : 1;
        const diffeoflow::flows::OdeBenchmarkResult result = diffeoflow::flows::RunOdeBenchmark(opts);
        std::cout << result.Json() << std::endl;
        return 0;
      };
    }};

}  // namespace
