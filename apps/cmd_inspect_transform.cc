// `diffeoflow inspect --transform`: det(I + ∇u) of DIR/displacement.nii.gz (registration/image_ops.h;
// DIR/jacobian.nii.gz when register wrote it), the share of folded voxels (det ≤ 0), the kinetic
// energy from DIR/metrics.json, and a figure of the deformed grid and the Jacobian map.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "apps/inspect.h"
#include "plot/figure.h"
#include "registration/displacement_file.h"
#include "registration/image_io.h"
#include "registration/image_ops.h"
#include "registration/outputs/summary_figure.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"

namespace diffeoflow::app {

namespace fs = std::filesystem;
using Index = Eigen::Index;

int RunInspectTransform(const InspectFlags& f, const CommonFlags& common) {
  using namespace diffeoflow::registration;
  const fs::path dir(f.transform);
  if (!fs::is_directory(dir)) {
    throw InputError("--transform: " + f.transform + " is not a folder (expected a register output)");
  }
  const std::string displacement_path = (dir / "displacement.nii.gz").string();
  if (!fs::exists(displacement_path)) {
    throw InputError("--transform: " + displacement_path + " is missing (expected a register output)");
  }
  ImageReadOptions read;
  read.argument = "--transform";
  const VectorField u = ReadDisplacementFile(displacement_path, read);
  const Grid& g = u.grid;
  // det Dφ as `register` carried it along the flow (jacobian.nii.gz, registration/traced_map.h);
  // from the displacement's finite differences when the folder has no such file.
  Image jacobian;
  const std::string jacobian_path = (dir / "jacobian.nii.gz").string();
  if (fs::exists(jacobian_path)) {
    jacobian = ReadImage(jacobian_path, read);
    if (!jacobian.grid.SameShape(g)) {
      throw InputError("--transform: " + jacobian_path + " is not on the grid of " +
                       displacement_path);
    }
  } else {
    jacobian = JacobianDeterminant(u);
  }

  double kinetic = std::numeric_limits<double>::quiet_NaN();
  const fs::path metrics = dir / "metrics.json";
  if (fs::exists(metrics)) {
    std::ifstream in(metrics);
    const nlohmann::json m = nlohmann::json::parse(in, nullptr, false);
    if (m.is_discarded() || !m.is_object()) {
      throw InputError("--transform: " + metrics.string() + " is not valid JSON");
    }
    if (m.contains("kinetic_energy") && m["kinetic_energy"].is_number()) {
      kinetic = m["kinetic_energy"].get<double>();
    }
  }
  // The warped image, when the register output has one on the same grid, as the background.
  std::optional<Image> background;
  for (const char* ext : {".nii.gz", ".nii", ".png", ".npy"}) {
    const fs::path p = dir / (std::string("warped") + ext);
    if (!fs::exists(p)) continue;
    ImageReadOptions o;
    o.argument = "--transform";
    Image image = ReadImage(p.string(), o);
    if (image.grid.SameShape(g)) background = std::move(image);
    break;
  }

  const Eigen::VectorXd& det = jacobian.data;
  const Index n = det.size();
  const double folded = static_cast<double>((det.array() <= 0.0).count()) / static_cast<double>(n);

  EnsureOutputDirectory(f.out, "--out");
  const fs::path out(f.out);
  nlohmann::ordered_json j;
  j["jacobian_min"] = det.minCoeff();
  j["jacobian_max"] = det.maxCoeff();
  j["jacobian_mean"] = det.mean();
  j["folded_fraction"] = folded;
  j["kinetic_energy"] = JsonNumber(kinetic);
  j["dimension"] = g.dim;
  j["size"] = {g.size[0], g.size[1], g.size[2]};
  j["spacing_mm"] = {g.spacing_mm[0], g.spacing_mm[1], g.spacing_mm[2]};
  WriteFileAtomically((out / "geometry.json").string(), j.dump(2) + "\n");

  // Figure: deformed grid φ(x) = x + u(x) (mm, y down like the images) and log det Dφ.
  const double width = g.size[0] * g.spacing_mm[0], height = g.size[1] * g.spacing_mm[1];
  const plot::Extent extent{0.0, width, 0.0, height};
  plot::Figure fig(1, 2, 440, 400);
  char title[256];
  std::snprintf(title, sizeof(title), "det(I + grad u) in [%.3f, %.3f], folded %.3g%%%s",
                det.minCoeff(), det.maxCoeff(), 100.0 * folded, g.dim == 3 ? " (mid z-slice)" : "");
  fig.SetTitle(title);
  {
    plot::Axes& ax = fig.At(0, 0);
    ax.SetTitle(background ? "deformed grid over the warped image" : "deformed grid")
        .SetXLabel("x [mm]")
        .SetYLabel("y [mm]")
        .SetEqualAspect();
    if (background) {
      plot::ImageOptions io;
      io.colormap = plot::Colormap::kGray;
      io.origin = plot::Origin::kUpper;
      io.colorbar = false;
      ax.Image(MidSlice(g, background->data.data()), extent, io);
    }
    const Eigen::MatrixXd ux = MidSlice(g, u.component(0).data());
    const Eigen::MatrixXd uy = MidSlice(g, u.component(1).data());
    Eigen::MatrixXd X(ux.rows(), ux.cols()), Y(ux.rows(), ux.cols());
    for (Index r = 0; r < ux.rows(); ++r) {
      for (Index c = 0; c < ux.cols(); ++c) {
        X(r, c) = (c + 0.5) * g.spacing_mm[0] + ux(r, c);
        Y(r, c) = height - ((r + 0.5) * g.spacing_mm[1] + uy(r, c));
      }
    }
    plot::Style style;
    style.color = background ? plot::Color{1.0, 0.75, 0.2, 1.0} : plot::Color::FromHex(0x1f4e9c);
    style.width = 0.8;
    ax.Grid(X, Y, std::max(1, std::max(g.size[0], g.size[1]) / 32), style);
    ax.SetLimits(0, width, 0, height);
  }
  {
    plot::Axes& ax = fig.At(0, 1);
    ax.SetTitle("log det(I + grad u)").SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
    const Eigen::MatrixXd slice = MidSlice(g, det.data());
    const Eigen::MatrixXd log_det = slice.unaryExpr(
        [](double v) { return v > 0.0 ? std::log(v) : std::numeric_limits<double>::quiet_NaN(); });
    double spread = 0.0;
    for (Index i = 0; i < log_det.size(); ++i) {
      if (std::isfinite(log_det(i))) spread = std::max(spread, std::abs(log_det(i)));
    }
    plot::ImageOptions io;
    io.colormap = plot::Colormap::kCoolwarm;
    io.vmin = -std::max(spread, 1e-3);
    io.vmax = std::max(spread, 1e-3);
    io.origin = plot::Origin::kUpper;
    io.colorbar_label = "log det (folds: magenta)";
    ax.Image(log_det, extent, io);
  }
  fig.SavePng((out / "grid.png").string());
  if (!common.quiet) {
    std::printf("det(I + grad u): min %.4g, max %.4g, mean %.4g; folded %.3g%%; kinetic energy %.4g\n",
                det.minCoeff(), det.maxCoeff(), det.mean(), 100.0 * folded, kinetic);
  }
  return 0;
}

}  // namespace diffeoflow::app
