// `diffeoflow compare`: gradient descent on v_t (LDDMM, Beg 2005) against geodesic shooting on m0
// (Vialard 2012) with the same metric, similarity and time steps (CLI.md). Both methods always
// run: one that fails numerically is reported in comparison.json and comparison.md, the other's
// results are written all the same, and the exit status is 3 (docs/registration.md).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>

#include "apps/command.h"
#include "apps/registration_flags.h"
#include "plot/figure.h"
#include "registration/image_io.h"
#include "registration/outputs/comparison.h"
#include "registration/outputs/register_outputs.h"
#include "registration/outputs/summary_figure.h"
#include "registration/register.h"
#include "registration/world_space.h"
#include "solvers/atomic_file.h"
#include "solvers/interrupt.h"

namespace diffeoflow::app {
namespace {

using registration::MethodOutcome;
using registration::RegistrationMethod;
using registration::RegistrationResult;

// Draws both methods; the panels of a method that failed say so instead (needs one result).
void ComparisonFigure(const std::string& path, const MethodOutcome& gd_outcome,
                      const MethodOutcome& shoot_outcome, const registration::Image& moving,
                      const registration::Image& fixed) {
  const RegistrationResult* gd = gd_outcome.ok() ? &*gd_outcome.result : nullptr;
  const RegistrationResult* shoot = shoot_outcome.ok() ? &*shoot_outcome.result : nullptr;
  const registration::Grid& g = fixed.grid;
  plot::Figure fig(2, 4, 360, 330);
  fig.SetTitle("Gradient descent on v_t (LDDMM) vs geodesic shooting" +
               std::string(g.dim == 3 ? " (mid z-slice)" : ""));
  const plot::Extent extent{0.0, g.size[0] * g.spacing_mm[0], 0.0, g.size[1] * g.spacing_mm[1]};
  const double vmin = std::min(moving.data.minCoeff(), fixed.data.minCoeff());
  const double vmax = std::max(moving.data.maxCoeff(), fixed.data.maxCoeff());
  auto image = [&](plot::Axes& ax, const Eigen::VectorXd& values, const std::string& title) {
    registration::ImagePanel(ax, g, values, title, vmin, vmax);
  };
  // The panel of a method without a result: its title and "failed" in the middle.
  auto failed = [&](plot::Axes& ax, const std::string& title) {
    ax.SetTitle(title + ": failed").SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
    ax.SetLimits(extent.xmin, extent.xmax, extent.ymin, extent.ymax);
    ax.Text(0.5 * (extent.xmin + extent.xmax), 0.5 * (extent.ymin + extent.ymax),
            "failed: see comparison.md", {.size = 13, .anchor = plot::Anchor::kCenter});
  };
  image(fig.At(0, 0), moving.data, "moving");
  image(fig.At(0, 1), fixed.data, "fixed");
  char title[128];
  if (gd) {
    std::snprintf(title, sizeof(title), "LDDMM warped (SSD -%.1f%%)", 100 * gd->ssd_reduction());
    image(fig.At(0, 2), gd->warped.data, title);
  } else {
    failed(fig.At(0, 2), "LDDMM warped");
  }
  if (shoot) {
    std::snprintf(title, sizeof(title), "shooting warped (SSD -%.1f%%)",
                  100 * shoot->ssd_reduction());
    image(fig.At(0, 3), shoot->warped.data, title);
  } else {
    failed(fig.At(0, 3), "shooting warped");
  }

  auto grid = [&](plot::Axes& ax, const RegistrationResult* r, const std::string& name,
                  int color) {
    if (r == nullptr) {
      failed(ax, name + " grid");
      return;
    }
    std::snprintf(title, sizeof(title), "%s grid, det Dphi >= %.3f", name.c_str(),
                  r->min_jacobian);
    plot::Style style;
    style.color = plot::CategoricalColor(color);
    style.width = 0.8;
    registration::DeformedGridPanel(ax, g, fixed.data, r->phi, title, vmin, vmax, style);
  };
  grid(fig.At(1, 0), gd, "LDDMM", 0);
  grid(fig.At(1, 1), shoot, "shooting", 1);

  // The line plots hold the methods that gave a result.
  const std::string gd_label = "LDDMM (GD on v_t)", shoot_label = "geodesic shooting";
  {
    plot::Axes& ax = fig.At(1, 2);
    ax.SetTitle("speed |v_t|_V along the path").SetXLabel("t").SetYLabel("|v_t|_V");
    double hi = 0.0;
    for (const auto& [r, label, color] :
         {std::tuple{gd, gd_label, 0}, std::tuple{shoot, shoot_label, 1}}) {
      if (r == nullptr) continue;
      plot::Style style;
      style.label = label;
      style.color = plot::CategoricalColor(color);
      style.marker = true;
      ax.Line(r->times, r->velocity_norms, style);
      for (double v : r->velocity_norms) hi = std::max(hi, v);
    }
    ax.SetYLimits(0.0, 1.15 * hi + 1e-12).SetXLimits(0.0, 1.0).SetGridLines();
    ax.Legend(plot::LegendPosition::kLowerRight);
  }
  {
    plot::Axes& ax = fig.At(1, 3);
    ax.SetTitle("energy E against iteration").SetXLabel("iteration (all levels)")
        .SetYLabel("E").SetLogY().SetGridLines();
    for (const auto& [r, label, color] :
         {std::tuple{gd, gd_label, 0}, std::tuple{shoot, shoot_label, 1}}) {
      if (r == nullptr) continue;
      std::vector<double> xs(r->loss_history.size());
      for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<double>(i);
      plot::Style style;
      style.label = label;
      style.color = plot::CategoricalColor(color);
      ax.Line(xs, r->loss_history, style);
    }
    ax.Legend(plot::LegendPosition::kUpperRight);
  }
  fig.SavePng(path);
}

// Runs one method. A numerical failure (NaN/Inf, a folded map) becomes the outcome's error;
// anything else (bad input: exit 2) propagates. An interrupted run keeps its checkpoint.
MethodOutcome RunMethod(RegistrationMethod method, registration::RegistrationOptions options,
                        const std::string& checkpoint, const registration::Image& moving,
                        const registration::Image& fixed, const CommonFlags& common) {
  MethodOutcome outcome;
  outcome.method = method;
  options.method = method;
  options.checkpoint = checkpoint;
  if (!common.quiet) std::cerr << registration::MethodTitle(method) << "\n";
  try {
    // Tests only (docs/registration.md): DIFFEOFLOW_TEST_FAIL_METHOD=lddmm|shooting fails that
    // method here as a numerical failure would.
    const char* fail = std::getenv("DIFFEOFLOW_TEST_FAIL_METHOD");
    if (fail && outcome.name() == fail) {
      throw NumericalError("failure requested by DIFFEOFLOW_TEST_FAIL_METHOD (a test hook)");
    }
    RegistrationResult result = registration::Register(moving, fixed, options);
    EndProgressLine(common);
    outcome.interrupted = result.interrupted;
    if (!result.interrupted) outcome.result = std::move(result);
  } catch (const NumericalError& e) {
    EndProgressLine(common);
    outcome.error = e.what();
  }
  return outcome;
}

CommandRegistration registration{
    "compare", "Gradient descent on v_t against geodesic shooting on one pair",
    [](CLI::App& sub, const CommonFlags& common) -> std::function<int()> {
      auto flags = std::make_shared<RegistrationFlags>();
      flags->Add(sub, false);
      return [flags, &common]() {
        registration::RegistrationOptions options = flags->Resolve(common);
        const RegistrationFlags::Inputs inputs = flags->ReadInputsAndPrepareOutput();
        const auto& [fixed, moving, fixed_format, initial_affine] = inputs;
        flags->UseInitialAffine(inputs, options);
        const std::filesystem::path out(flags->out);
        // One checkpoint per method: a resumed comparison skips what is already done.
        const std::string lddmm_checkpoint = (out / "checkpoint-lddmm.h5").string();
        const std::string shooting_checkpoint = (out / "checkpoint-shooting.h5").string();
        InstallInterruptHandler();
        // Both methods always run: one that fails numerically is reported, the other kept.
        const MethodOutcome gd = RunMethod(RegistrationMethod::kLddmm, options, lddmm_checkpoint,
                                           moving, fixed, common);
        if (gd.interrupted) return ReportInterrupted(lddmm_checkpoint);
        const MethodOutcome shoot = RunMethod(RegistrationMethod::kShooting, options,
                                              shooting_checkpoint, moving, fixed, common);
        if (shoot.interrupted) return ReportInterrupted(shooting_checkpoint);
        for (const MethodOutcome* o : {&gd, &shoot}) {
          if (o->ok()) {
            PrintRegistrationNotes(common, *o->result);
            break;
          }
        }

        // The figures show the moving image as the registrations saw it: on the fixed grid.
        const registration::MovingInFixedSpace shown(moving, fixed);
        std::string written;
        for (const MethodOutcome* o : {&gd, &shoot}) {
          if (!o->ok()) continue;
          registration::WriteRegistrationOutputs((out / o->name()).string(), *o->result,
                                                 shown.image(), fixed, fixed_format);
          written += ", " + o->name() + "/";
        }
        nlohmann::json comparison;
        comparison["lddmm"] = ComparisonEntry(gd);
        comparison["shooting"] = ComparisonEntry(shoot);
        WriteFileAtomically((out / "comparison.json").string(), comparison.dump(2) + "\n");
        const bool figure = gd.ok() || shoot.ok();
        const std::string table =
            ComparisonTable(gd, shoot, options.ResolvedFor(fixed.grid), figure);
        WriteFileAtomically((out / "comparison.md").string(), table);
        if (figure) {
          ComparisonFigure((out / "comparison.png").string(), gd, shoot, shown.image(), fixed);
        } else {
          std::error_code ignored;  // a figure left by an earlier run would contradict the table
          std::filesystem::remove(out / "comparison.png", ignored);
        }
        RemoveCheckpoint(lddmm_checkpoint);
        RemoveCheckpoint(shooting_checkpoint);
        if (!common.quiet) {
          std::cout << table << "\n";
          for (const MethodOutcome* o : {&gd, &shoot}) {
            if (o->ok()) std::cout << o->result->BriefReport() << "\n";
          }
          std::cout << "wrote " << flags->out << "/ (" << (figure ? "comparison.png, " : "")
                    << "comparison.md, comparison.json" << written << ")\n";
        }
        int status = 0;
        for (const MethodOutcome* o : {&gd, &shoot}) {
          if (o->ok()) continue;
          std::cerr << "diffeoflow: numerical failure: " << o->name() << ": " << o->error << "\n";
          status = 3;
        }
        return status;
      };
    }};

}  // namespace
}  // namespace diffeoflow::app
