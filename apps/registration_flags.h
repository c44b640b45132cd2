// Flags shared by `register`, `compare` and `atlas` (CLI.md), the progress line they draw, and their
// handling of Ctrl-C (a checkpoint in --out, exit status 128 + signal, resumed with --resume).
//
// For tests, DIFFEOFLOW_TEST_SIGNAL_AFTER=k[:signal] raises the signal (default SIGINT) through
// the installed handler after the k-th optimiser iteration report: a deterministic Ctrl-C.
#pragma once

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "apps/command.h"
#include "registration/register.h"
#include "registration/transform_io.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/interrupt.h"

namespace diffeoflow::app {

// The progress line of register and compare: "level 1/3  iteration  12  energy 0.41  1.2 s".
inline std::string ProgressLine(const registration::RegistrationProgress& p) {
  char line[128];
  std::snprintf(line, sizeof(line), "level %d/%d  iteration %3d  energy %.6g  %.1f s",
                p.level + 1, p.levels, p.iteration, p.energy, p.elapsed_seconds);
  return line;
}

struct RegistrationFlags {
  std::string fixed, moving, out;
  std::string method = "shooting";
  std::string optimizer = "lbfgs";
  std::string solver = "rk4";
  std::string boundary = "periodic";
  std::string similarity = "auto";
  std::string shooting_start = "velocity-field";
  std::string affine = "affine";
  std::string initial_affine;
  registration::RegistrationOptions options;
  bool no_normalize = false;
  bool resume = false;
  CLI::App* app_ = nullptr;  // the subcommand Add() registered the flags on

  // pairwise: --fixed, --moving and --resume, and the per-level iteration limit as --iterations;
  // without (a population command: atlas), no image flags and the limit as
  // --registration-iterations (--iterations is then the command's own).
  void Add(CLI::App& sub, bool with_method, bool pairwise = true) {
    app_ = &sub;
    if (pairwise) {
      sub.add_option("--fixed", fixed, "Fixed (target) image: .nii, .nii.gz, .png or .npy")
          ->required();
      sub.add_option("--moving", moving,
                     "Moving (template) image; on another grid it is resampled into --fixed's "
                     "world space")
          ->required();
    }
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
    sub.add_option("--similarity", similarity,
                   "ssd: sum of squared differences | ncc: local normalised cross-correlation "
                   "(invariant to affine intensity changes) | auto: ssd in 2-D; in 3-D ncc for "
                   "the deformable stage, ssd for the affine stage")
        ->capture_default_str();
    sub.add_option("--ncc-radius", options.ncc_radius,
                   "Local NCC window radius R [voxels]: windows of (2R + 1)^dim voxels")
        ->capture_default_str();
    sub.add_option("--sigma", options.sigma,
                   "Similarity weight 1/sigma^2 (SSD: normalised intensities in [0, 1]; NCC: "
                   "dimensionless). Default: 0.002 in 2-D, 0.005 in 3-D");
    sub.add_option("--steps", options.time_steps,
                   "Time steps T (T + 1 velocity grids / time points). Default: 8 in 2-D, 5 in 3-D");
    sub.add_option("--levels", options.levels,
                   "Multi-resolution levels (coarse to fine). Default: 3 in 2-D, 2 in 3-D");
    sub.add_option(pairwise ? "--iterations" : "--registration-iterations", options.iterations,
                   "Maximum iterations per level")
        ->capture_default_str();
    sub.add_option("--band-limit", options.band_limit,
                   "FLASH-style band limit B: keep Fourier modes |k| <= B (0: off)")
        ->capture_default_str();
    sub.add_option("--shooting-start", shooting_start,
                   "Shooting's start on the coarsest level: velocity-field (the initial velocity "
                   "of LDDMM solved there) | zero")
        ->capture_default_str();
    sub.add_option("--optimizer", optimizer, "lbfgs (Ceres) | gd (gradient descent, as Beg 2005)")
        ->capture_default_str();
    sub.add_option("--solver", solver, "Time integrator: euler | midpoint | rk4")
        ->capture_default_str();
    sub.add_option("--boundary", boundary, "Metric boundary: periodic | reflective")
        ->capture_default_str();
    sub.add_option("--tolerance", options.relative_decrease,
                   "Stop a level when the relative decrease of the energy per iteration is below "
                   "this (in 2-D averaged over the last 10 iterations)")
        ->capture_default_str();
    sub.add_option("--time-limit", options.max_seconds, "Total time limit in seconds (0: none)")
        ->capture_default_str();
    sub.add_option("--mesh-fraction", options.mesh_spacing_fraction,
                   "Flow mesh spacing at most this fraction of sqrt(alpha) (0: image grid). "
                   "Default: 0.5 in 2-D, 1.2 in 3-D");
    sub.add_flag("--no-normalize", no_normalize, "Keep intensities (default: min/max to [0, 1])");
    sub.add_option("--max-folded-fraction", options.max_folded_fraction,
                   "Fail (exit 3) when more than this share of voxels has det Dphi <= 0")
        ->capture_default_str();
    sub.add_option("--affine", affine,
                   "Affine stage before the deformable one: none | rigid | affine (default, as "
                   "antsRegistrationSyN for two subjects; see docs/affine.md)")
        ->capture_default_str();
    sub.add_option("--initial-affine", initial_affine,
                   "Start the affine stage from this transform (fixed -> moving): an ITK text "
                   "transform (#Insight Transform File, LPS) or dipy's 4x4 affine.txt (RAS); with "
                   "--affine none it is used as it is");
    if (pairwise) {
      sub.add_flag("--resume", resume,
                   "Continue an interrupted run from its checkpoint in --out (same arguments)");
    }
  }

  // Fills `options` from the parsed strings; throws InputError naming the flag.
  registration::RegistrationOptions Resolve(const CommonFlags& common) {
    registration::RegistrationOptions o = options;
    // kAuto (−1) means "chosen from the images" to the library; typed on the command line it is
    // a bad value like any other negative number.
    using Options = registration::RegistrationOptions;
    if (app_ != nullptr && app_->count("--sigma") > 0 && o.sigma == Options::kAuto) {
      throw InputError("--sigma must be a finite number > 0, got -1");
    }
    if (app_ != nullptr && app_->count("--steps") > 0 && o.time_steps == Options::kAuto) {
      throw InputError("--steps must be >= 1, got -1");
    }
    if (app_ != nullptr && app_->count("--levels") > 0 && o.levels == Options::kAuto) {
      throw InputError("--levels must be >= 1, got -1");
    }
    if (app_ != nullptr && app_->count("--mesh-fraction") > 0 &&
        o.mesh_spacing_fraction == Options::kAuto) {
      throw InputError("--mesh-fraction must be >= 0");
    }
    o.method = registration::ParseRegistrationMethod(method, "--method");
    o.optimizer = ParseOptimizer(optimizer, "--optimizer");
    o.solver = ParseMethod(solver, "--solver");
    o.similarity = registration::ParseSimilarityOrAuto(similarity, "--similarity");
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
    if (shooting_start == "velocity-field") {
      o.shooting_start = registration::ShootingStart::kVelocityField;
    } else if (shooting_start == "zero") {
      o.shooting_start = registration::ShootingStart::kZero;
    } else {
      throw InputError("--shooting-start: expected velocity-field or zero, got '" +
                       shooting_start + "'");
    }
    o.affine.mode = registration::ParseAffineMode(affine, "--affine");
    o.normalize_intensity = !no_normalize;
    o.resume = resume;
    o.checkpoint = (std::filesystem::path(out) / "checkpoint.h5").string();
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    o.metric.threads = common.threads > 0 ? common.threads : static_cast<int>(cores);
    if (common.ShowProgress()) {
      o.progress = [](const registration::RegistrationProgress& p) {
        std::fprintf(stderr, "\r  %s   ", ProgressLine(p).c_str());
        std::fflush(stderr);
      };
    }
    o.progress = WithTestSignal(std::move(o.progress));
    o.Validate();
    return o;
  }

  // The two images, read and checked against each other, and --out prepared: everything that can
  // reject the input happens before the first file is written.
  struct Inputs {
    registration::Image fixed, moving;
    registration::ImageFormat fixed_format;
    std::optional<Eigen::Matrix4d> initial_affine;  // --initial-affine, RAS fixed → moving
  };
  Inputs ReadInputsAndPrepareOutput() const {
    Inputs in;
    in.fixed_format = registration::FormatFromPath(fixed, "--fixed");
    registration::FormatFromPath(moving, "--moving");
    in.fixed = registration::ReadImage(fixed, {true, "--fixed"});
    in.moving = registration::ReadImage(moving, {true, "--moving"});
    // The same check Register makes, with the file names in the message.
    registration::CheckWorldOverlap(in.moving.grid, in.fixed.grid, "--moving " + moving,
                                    "--fixed " + fixed);
    registration::CheckRegistrationInputs(in.moving, in.fixed);
    if (!initial_affine.empty()) {
      const registration::AffineFile file =
          registration::ReadAffineFile(initial_affine, "--initial-affine");
      if (file.dim != in.fixed.grid.dim) {
        throw InputError("--initial-affine " + initial_affine + ": a " +
                         std::to_string(file.dim) + "-D transform for " +
                         std::to_string(in.fixed.grid.dim) + "-D images");
      }
      in.initial_affine = file.affine;
    }
    EnsureOutputDirectory(out, "--out");
    return in;
  }

  // Puts the initial affine read by ReadInputsAndPrepareOutput into `options`.
  void UseInitialAffine(const Inputs& in, registration::RegistrationOptions& options) const {
    options.initial_affine = in.initial_affine;
    if (in.initial_affine) options.initial_affine_source = initial_affine;
  }
};

// After an interrupted run: one line saying where the checkpoint is and how to resume; the exit
// status (128 + signal number, 130 for SIGINT).
inline int ReportInterrupted(const std::string& checkpoint) {
  std::cerr << "diffeoflow: interrupted; no results written, progress kept in " << checkpoint
            << " (rerun the same command with --resume to continue)\n";
  const int signal = InterruptSignal();
  return 128 + (signal > 0 ? signal : SIGINT);
}

// Removes a checkpoint once the results it led to are written.
inline void RemoveCheckpoint(const std::string& checkpoint) {
  std::error_code ignored;
  std::filesystem::remove(checkpoint, ignored);
}

inline void EndProgressLine(const CommonFlags& common) {
  if (common.ShowProgress()) std::fprintf(stderr, "\n");
}

// One stderr line for each thing Register decided that the user did not ask for: the moving image
// resampled into the fixed image's world (RegistrationResult::world_space_note), an affine stage
// dropped at its bounds (AffineStageResult::note); nothing with --quiet.
inline void PrintRegistrationNotes(const CommonFlags& common,
                                   const registration::RegistrationResult& result) {
  if (common.quiet) return;
  for (const std::string* note : {&result.world_space_note, &result.affine_stage.note}) {
    if (!note->empty()) std::cerr << "diffeoflow: note: " << *note << "\n";
  }
}

}  // namespace diffeoflow::app
