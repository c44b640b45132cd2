// `diffeoflow match-landmarks`: landmark LDDMM as ../shared/CLI.md specifies
// (registration/landmark_matching.h).
#include <cstdio>
#include <iostream>
#include <memory>

#include "apps/command.h"
#include "registration/landmark_matching.h"
#include "registration/landmark_outputs.h"
#include "registration/outputs/summary_figure.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"

namespace {

struct MatchLandmarksFlags {
  std::string source, target, out;
  std::string method = "shooting";
  std::string solver = "rk4";
  std::string optimizer = "lbfgs";
  std::string jacobian = "adjoint";
  std::string shooting_solver = "lm";
  std::string interpolation = "linear";
  diffeoflow::registration::LandmarkMatchingOptions options;
};

diffeoflow::app::CommandRegistration registration{
    "match-landmarks", "Landmark LDDMM: geodesic shooting or gradient descent on momenta",
    [](CLI::App& sub, const diffeoflow::app::CommonFlags& common) -> std::function<int()> {
      auto flags = std::make_shared<MatchLandmarksFlags>();
      auto& o = flags->options;
      sub.add_option("--source", flags->source, "CSV of source landmarks (2 or 3 columns)")
          ->required();
      sub.add_option("--target", flags->target, "CSV of target landmarks, same count and columns")
          ->required();
      sub.add_option("--out", flags->out, "Output folder (created if missing)")->required();
      sub.add_option("--method", flags->method,
                     "shooting (geodesic shooting on p0) | lddmm (gradient descent on p(t))")
          ->capture_default_str();
      sub.add_option("--kernel-width", o.kernel_width,
                     "Gaussian kernel width W, k = exp(-|x-y|^2/(2W^2)); 0: source diameter / 8")
          ->capture_default_str();
      sub.add_option("--sigma", o.sigma,
                     "Data term |q(1)-y|^2/(2 sigma^2); 0: exact matching")
          ->capture_default_str();
      sub.add_option("--steps", o.steps, "Time steps T on [0, 1]")->capture_default_str();
      sub.add_option("--solver", flags->solver, "Fixed-step integrator: euler|midpoint|rk4")
          ->capture_default_str();
      sub.add_option("--tolerance", o.residual_tolerance,
                     "Exact matching stops at this residual rms")
          ->capture_default_str();
      sub.add_option("--iterations", o.max_iterations, "Shooting: solver iterations")
          ->capture_default_str();
      sub.add_option("--inner-iterations", o.max_inner_iterations,
                     "lddmm: iterations per augmented-Lagrangian round")
          ->capture_default_str();
      sub.add_option("--outer-iterations", o.max_outer_iterations,
                     "lddmm: augmented-Lagrangian rounds")
          ->capture_default_str();
      sub.add_option("--time-limit", o.max_seconds, "Seconds (0: none)")->capture_default_str();
      sub.add_option("--shooting-solver", flags->shooting_solver,
                     "lm (Levenberg-Marquardt on end points) | lbfgs (on the energy)")
          ->capture_default_str();
      sub.add_option("--jacobian", flags->jacobian,
                     "Shooting Jacobian: adjoint (one gradient a residual) | forward (sensitivity)")
          ->capture_default_str();
      sub.add_option("--time-points", o.time_points, "lddmm: nodes of p(t) (0: steps + 1)")
          ->capture_default_str();
      sub.add_option("--interpolation", flags->interpolation,
                     "lddmm: p(t) between nodes, linear|piecewise-constant")
          ->capture_default_str();
      sub.add_option("--optimizer", flags->optimizer, "lddmm: lbfgs|gd|adam")
          ->capture_default_str();
      sub.add_option("--penalty", o.penalty, "lddmm, exact matching: initial penalty mu")
          ->capture_default_str();
      sub.add_option("--lr", o.learning_rate, "lddmm with gd/adam: step size")
          ->capture_default_str();
      return [flags, &common]() -> int {
        using namespace diffeoflow;
        using namespace diffeoflow::registration;
        auto& options = flags->options;
        options.method = ParseLandmarkMethod(flags->method, "--method");
        options.solver = ParseMethod(flags->solver, "--solver");
        options.optimizer = ParseOptimizer(flags->optimizer, "--optimizer");
        if (flags->jacobian == "adjoint") {
          options.jacobian = ShootingJacobian::kAdjoint;
        } else if (flags->jacobian == "forward") {
          options.jacobian = ShootingJacobian::kForwardSensitivity;
        } else {
          throw InputError("--jacobian: expected adjoint or forward, got '" + flags->jacobian + "'");
        }
        if (flags->shooting_solver == "lm") {
          options.shooting_solver = ShootingSolver::kLevenbergMarquardt;
        } else if (flags->shooting_solver == "lbfgs") {
          options.shooting_solver = ShootingSolver::kLbfgs;
        } else {
          throw InputError("--shooting-solver: expected lm or lbfgs, got '" +
                           flags->shooting_solver + "'");
        }
        if (flags->interpolation == "linear") {
          options.interpolation = MomentumInterpolation::kLinear;
        } else if (flags->interpolation == "piecewise-constant") {
          options.interpolation = MomentumInterpolation::kPiecewiseConstant;
        } else {
          throw InputError("--interpolation: expected linear or piecewise-constant, got '" +
                           flags->interpolation + "'");
        }
        options.Validate();
        const Matrix source = ReadLandmarksCsv(flags->source);
        const Matrix target = ReadLandmarksCsv(flags->target);
        if (source.rows() != target.rows() || source.cols() != target.cols()) {
          throw InputError("--target " + flags->target + ": expected " +
                           std::to_string(source.rows()) + " landmarks of " +
                           std::to_string(source.cols()) + " coordinates like --source " +
                           flags->source + ", got " + std::to_string(target.rows()) + " of " +
                           std::to_string(target.cols()));
        }
        EnsureOutputDirectory(flags->out, "--out");
        if (common.ShowProgress()) {
          options.progress = [](const LandmarkProgress& p) {
            std::fprintf(stderr, "\riteration %4d  energy %.6g  residual rms %.3g  %.1f s   ",
                         p.iteration, p.energy, p.residual_rms, p.elapsed_seconds);
            std::fflush(stderr);
          };
        }
        const LandmarkMatchingResult result = MatchLandmarks(source, target, options);
        if (common.ShowProgress()) std::fprintf(stderr, "\n");
        const std::string dir = flags->out + "/";
        WriteLandmarkTrajectory(dir + "trajectory.h5", result);
        if (result.dim == 2) WriteLandmarkSummaryFigure(dir + "summary.png", result);
        WriteFileAtomically(dir + "metrics.json", LandmarkMetricsJson(result).dump(2) + "\n");
        if (!common.quiet) std::cout << result.BriefReport() << std::endl;
        return 0;
      };
    }};

}  // namespace
