// `diffeoflow compare`: gradient descent on v_t (LDDMM, Beg 2005) against geodesic shooting on m0
// (Vialard 2012) with the same metric, similarity and time steps (CLI.md).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "apps/command.h"
#include "apps/registration_flags.h"
#include "plot/figure.h"
#include "registration/image_io.h"
#include "registration/register.h"
#include "registration/world_space.h"
#include "solvers/atomic_file.h"
#include "solvers/interrupt.h"

namespace diffeoflow::app {
namespace {

using registration::RegistrationResult;

std::string ComparisonTable(const RegistrationResult& gd, const RegistrationResult& shoot) {
  std::ostringstream s;
  char line[512];
  s << "# Gradient descent on v_t (LDDMM) against geodesic shooting\n\n";
  s << "Same pair, metric L = (I - " << gd.options.metric.alpha_mm2 << " mm^2 Laplacian)^"
    << gd.options.metric.gamma << ", ";
  if (gd.options.similarity == registration::SimilarityMeasure::kLocalNcc) {
    s << "local NCC (window radius " << gd.options.ncc_radius << " voxels) with weight "
      << "(1/25)/sigma^2 on 1/2 sum (cc_ff - cc)";
  } else {
    s << "SSD weight 1/sigma^2";
  }
  s << " with sigma = " << gd.options.sigma << ", T = " << gd.options.time_steps
    << " time steps, " << gd.level_starts.size() << " resolution levels.";
  if (gd.options.similarity != registration::SimilarityMeasure::kSsd) {
    s << " The SSD rows measure the sum of squared differences all the same.";
  }
  s << "\n\n";
  s << "| | LDDMM (GD on v_t) | geodesic shooting |\n|---|---:|---:|\n";
  auto row = [&](const char* name, const char* fmt, double a, double b) {
    char fa[64], fb[64];
    std::snprintf(fa, sizeof(fa), fmt, a);
    std::snprintf(fb, sizeof(fb), fmt, b);
    std::snprintf(line, sizeof(line), "| %s | %s | %s |\n", name, fa, fb);
    s << line;
  };
  row("initial SSD", "%.5g", gd.ssd_initial, shoot.ssd_initial);
  row("final SSD", "%.5g", gd.ssd_final, shoot.ssd_final);
  row("SSD reduction [%]", "%.2f", 100 * gd.ssd_reduction(), 100 * shoot.ssd_reduction());
  row("kinetic energy 1/2 int |v_t|_V^2 dt", "%.5g", gd.kinetic_energy, shoot.kinetic_energy);
  row("spread of |v_t|_V [%]", "%.3f", 100 * gd.velocity_norm_spread(),
      100 * shoot.velocity_norm_spread());
  row("free parameters", "%.0f", static_cast<double>(gd.parameters),
      static_cast<double>(shoot.parameters));
  row("iterations (all levels)", "%.0f", gd.iterations, shoot.iterations);
  row("wall time [s]", "%.2f", gd.wall_seconds, shoot.wall_seconds);
  row("min det Dphi", "%.4f", gd.min_jacobian, shoot.min_jacobian);
  row("max det Dphi", "%.4f", gd.max_jacobian, shoot.max_jacobian);
  return s.str();
}

void ComparisonFigure(const std::string& path, const RegistrationResult& gd,
                      const RegistrationResult& shoot, const registration::Image& moving,
                      const registration::Image& fixed) {
  const registration::Grid& g = fixed.grid;
  plot::Figure fig(2, 4, 360, 330);
  fig.SetTitle("Gradient descent on v_t (LDDMM) vs geodesic shooting" +
               std::string(g.dim == 3 ? " (mid z-slice)" : ""));
  const plot::Extent extent{0.0, g.size[0] * g.spacing_mm[0], 0.0, g.size[1] * g.spacing_mm[1]};
  const double vmin = std::min(moving.data.minCoeff(), fixed.data.minCoeff());
  const double vmax = std::max(moving.data.maxCoeff(), fixed.data.maxCoeff());
  auto image = [&](plot::Axes& ax, const Eigen::VectorXd& values, const std::string& title) {
    ax.SetTitle(title).SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
    plot::ImageOptions io;
    io.colormap = plot::Colormap::kGray;
    io.vmin = vmin;
    io.vmax = vmax;
    io.origin = plot::Origin::kUpper;
    io.colorbar_label = "intensity";
    ax.Image(registration::MidSlice(g, values.data()), extent, io);
  };
  image(fig.At(0, 0), moving.data, "moving");
  image(fig.At(0, 1), fixed.data, "fixed");
  char title[128];
  std::snprintf(title, sizeof(title), "LDDMM warped (SSD -%.1f%%)", 100 * gd.ssd_reduction());
  image(fig.At(0, 2), gd.warped.data, title);
  std::snprintf(title, sizeof(title), "shooting warped (SSD -%.1f%%)",
                100 * shoot.ssd_reduction());
  image(fig.At(0, 3), shoot.warped.data, title);

  auto grid = [&](plot::Axes& ax, const RegistrationResult& r, const std::string& name,
                  int color) {
    std::snprintf(title, sizeof(title), "%s grid, det Dphi >= %.3f", name.c_str(),
                  r.min_jacobian);
    ax.SetTitle(title).SetXLabel("x [mm]").SetYLabel("y [mm]");
    plot::ImageOptions io;
    io.colormap = plot::Colormap::kGray;
    io.origin = plot::Origin::kUpper;
    io.colorbar = false;
    io.vmin = vmin - 2.0 * (vmax - vmin);
    io.vmax = vmax;
    ax.Image(registration::MidSlice(g, fixed.data.data()), extent, io);
    const Eigen::Index n = g.voxels();
    const Eigen::MatrixXd px = registration::MidSlice(g, r.phi.data());
    const Eigen::MatrixXd py = registration::MidSlice(g, r.phi.data() + n);
    const double height = g.size[1] * g.spacing_mm[1];
    Eigen::MatrixXd X = (px.array() + 0.5) * g.spacing_mm[0];
    Eigen::MatrixXd Y = height - (py.array() + 0.5) * g.spacing_mm[1];
    plot::Style style;
    style.color = plot::CategoricalColor(color);
    style.width = 0.8;
    ax.Grid(X, Y, std::max(1, std::max(g.size[0], g.size[1]) / 32), style);
    ax.SetLimits(extent.xmin, extent.xmax, extent.ymin, extent.ymax).SetEqualAspect();
  };
  grid(fig.At(1, 0), gd, "LDDMM", 0);
  grid(fig.At(1, 1), shoot, "shooting", 1);

  {
    plot::Axes& ax = fig.At(1, 2);
    ax.SetTitle("speed |v_t|_V along the path").SetXLabel("t").SetYLabel("|v_t|_V");
    plot::Style a;
    a.label = "LDDMM (GD on v_t)";
    a.color = plot::CategoricalColor(0);
    a.marker = true;
    ax.Line(gd.times, gd.velocity_norms, a);
    plot::Style b;
    b.label = "geodesic shooting";
    b.color = plot::CategoricalColor(1);
    b.marker = true;
    ax.Line(shoot.times, shoot.velocity_norms, b);
    double hi = 0.0;
    for (double v : gd.velocity_norms) hi = std::max(hi, v);
    for (double v : shoot.velocity_norms) hi = std::max(hi, v);
    ax.SetYLimits(0.0, 1.15 * hi + 1e-12).SetXLimits(0.0, 1.0).SetGridLines();
    ax.Legend(plot::LegendPosition::kLowerRight);
  }
  {
    plot::Axes& ax = fig.At(1, 3);
    ax.SetTitle("energy E against iteration").SetXLabel("iteration (all levels)")
        .SetYLabel("E").SetLogY().SetGridLines();
    auto series = [&](const RegistrationResult& r, const std::string& label, int color) {
      std::vector<double> xs(r.loss_history.size());
      for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<double>(i);
      plot::Style s;
      s.label = label;
      s.color = plot::CategoricalColor(color);
      ax.Line(xs, r.loss_history, s);
    };
    series(gd, "LDDMM (GD on v_t)", 0);
    series(shoot, "geodesic shooting", 1);
    ax.Legend(plot::LegendPosition::kUpperRight);
  }
  fig.SavePng(path);
}

CommandRegistration registration{
    "compare", "Gradient descent on v_t against geodesic shooting on one pair",
    [](CLI::App& sub, const CommonFlags& common) -> std::function<int()> {
      auto flags = std::make_shared<RegistrationFlags>();
      flags->Add(sub, false);
      return [flags, &common]() {
        registration::RegistrationOptions options = flags->Resolve(common);
        const auto [fixed, moving, fixed_format] = flags->ReadInputsAndPrepareOutput();
        const std::filesystem::path out(flags->out);
        // One checkpoint per method: a resumed comparison skips what is already done.
        const std::string lddmm_checkpoint = (out / "checkpoint-lddmm.h5").string();
        const std::string shooting_checkpoint = (out / "checkpoint-shooting.h5").string();
        InstallInterruptHandler();
        options.method = registration::RegistrationMethod::kLddmm;
        options.checkpoint = lddmm_checkpoint;
        if (!common.quiet) std::cerr << "LDDMM (gradient descent on v_t)\n";
        const RegistrationResult gd = registration::Register(moving, fixed, options);
        EndProgressLine(common);
        if (gd.interrupted) return ReportInterrupted(lddmm_checkpoint);
        PrintWorldSpaceNote(common, gd.world_space_note);
        options.method = registration::RegistrationMethod::kShooting;
        options.checkpoint = shooting_checkpoint;
        if (!common.quiet) std::cerr << "geodesic shooting\n";
        const RegistrationResult shoot = registration::Register(moving, fixed, options);
        EndProgressLine(common);
        if (shoot.interrupted) return ReportInterrupted(shooting_checkpoint);

        // The figures show the moving image as the registrations saw it: on the fixed grid.
        const registration::MovingInFixedSpace shown(moving, fixed);
        registration::WriteRegistrationOutputs((out / "lddmm").string(), gd, shown.image(), fixed,
                                               fixed_format);
        registration::WriteRegistrationOutputs((out / "shooting").string(), shoot, shown.image(),
                                               fixed, fixed_format);
        nlohmann::json comparison;
        comparison["lddmm"] = registration::MetricsJson(gd);
        comparison["shooting"] = registration::MetricsJson(shoot);
        WriteFileAtomically((out / "comparison.json").string(), comparison.dump(2) + "\n");
        const std::string table = ComparisonTable(gd, shoot);
        WriteFileAtomically((out / "comparison.md").string(), table);
        ComparisonFigure((out / "comparison.png").string(), gd, shoot, shown.image(), fixed);
        RemoveCheckpoint(lddmm_checkpoint);
        RemoveCheckpoint(shooting_checkpoint);
        if (!common.quiet) {
          std::cout << table << "\n" << gd.BriefReport() << "\n" << shoot.BriefReport() << "\n"
                    << "wrote " << flags->out << "/ (comparison.png, comparison.md, "
                    << "comparison.json, lddmm/, shooting/)\n";
        }
        return 0;
      };
    }};

}  // namespace
}  // namespace diffeoflow::app
