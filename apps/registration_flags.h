// Flags shared by `register` and `compare` (CLI.md), and the progress line they draw.
#pragma once

#include <cstdio>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "apps/command.h"
#include "registration/register.h"
#include "solvers/errors.h"

namespace diffeoflow::app {

struct RegistrationFlags {
  std::string fixed, moving, out;
  std::string method = "shooting";
  std::string optimizer = "lbfgs";
  std::string solver = "rk4";
  std::string boundary = "periodic";
  registration::RegistrationOptions options;
  bool no_normalize = false;

  void Add(CLI::App& sub, bool with_method) {
    sub.add_option("--fixed", fixed, "Fixed (target) image: .nii, .nii.gz, .png or .npy")
        ->required();
    sub.add_option("--moving", moving, "Moving (template) image, same size as --fixed")
        ->required();
    sub.add_option("--out", out, "Output folder (created if missing)")->required();
    if (with_method) {
      sub.add_option("--method", method,
                     "shooting: geodesic shooting on m0 | lddmm: gradient descent on v_t")
          ->capture_default_str();
    }
    sub.add_option("--alpha", options.metric.alpha_mm2, "alpha in L = (I - alpha Laplacian)^gamma [mm^2]")
        ->capture_default_str();
    sub.add_option("--gamma", options.metric.gamma, "gamma in L = (I - alpha Laplacian)^gamma")
        ->capture_default_str();
    sub.add_option("--sigma", options.sigma,
                   "SSD weight 1/sigma^2 (normalised intensities in [0, 1])")
        ->capture_default_str();
    sub.add_option("--steps", options.time_steps, "Time steps T (T + 1 velocity grids / time points)")
        ->capture_default_str();
    sub.add_option("--levels", options.levels, "Multi-resolution levels (coarse to fine)")
        ->capture_default_str();
    sub.add_option("--iterations", options.iterations, "Maximum iterations per level")
        ->capture_default_str();
    sub.add_option("--band-limit", options.band_limit,
                   "FLASH-style band limit B: keep Fourier modes |k| <= B (0: off)")
        ->capture_default_str();
    sub.add_option("--optimizer", optimizer, "lbfgs (Ceres) | gd (gradient descent, as Beg 2005)")
        ->capture_default_str();
    sub.add_option("--solver", solver, "Time integrator: euler | midpoint | rk4")
        ->capture_default_str();
    sub.add_option("--boundary", boundary, "Metric boundary: periodic | reflective")
        ->capture_default_str();
    sub.add_option("--tolerance", options.relative_decrease,
                   "Stop a level when the relative decrease of the energy per iteration is below this")
        ->capture_default_str();
    sub.add_option("--time-limit", options.max_seconds, "Total time limit in seconds (0: none)")
        ->capture_default_str();
    sub.add_option("--mesh-fraction", options.mesh_spacing_fraction,
                   "Flow mesh spacing at most this fraction of sqrt(alpha) (0: image grid)")
        ->capture_default_str();
    sub.add_flag("--no-normalize", no_normalize, "Keep intensities (default: min/max to [0, 1])");
  }

  // Fills `options` from the parsed strings; throws InputError naming the flag.
  registration::RegistrationOptions Resolve(const CommonFlags& common) {
    registration::RegistrationOptions o = options;
    o.method = registration::ParseRegistrationMethod(method, "--method");
    o.optimizer = ParseOptimizer(optimizer, "--optimizer");
    o.solver = ParseMethod(solver, "--solver");
    if (IsAdaptive(o.solver)) {
      throw InputError("--solver: registration needs a fixed-step scheme (euler, midpoint, rk4)");
    }
    if (boundary == "periodic") {
      o.metric.boundary = registration::MetricBoundary::kPeriodic;
    } else if (boundary == "reflective") {
      o.metric.boundary = registration::MetricBoundary::kReflective;
    } else {
      throw InputError("--boundary: expected periodic or reflective, got '" + boundary + "'");
    }
    o.normalize_intensity = !no_normalize;
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    o.metric.threads = common.threads > 0 ? common.threads : static_cast<int>(cores);
    if (common.ShowProgress()) {
      o.progress = [](const registration::RegistrationProgress& p) {
        std::fprintf(stderr, "\r  level %d/%d  iteration %3d  energy %.6g  %.1f s   ", p.level + 1,
                     p.levels, p.iteration, p.energy, p.elapsed_seconds);
        std::fflush(stderr);
      };
    }
    o.Validate();
    return o;
  }
};

inline void EndProgressLine(const CommonFlags& common) {
  if (common.ShowProgress()) std::fprintf(stderr, "\n");
}

}  // namespace diffeoflow::app
