// `diffeoflow inspect --model`: the geometry of a trained classifier on 2-D input (flows/inspect.h
// computes it) written as ../shared/CLI.md specifies: volume_element.npy and probabilities.npy on
// the grid (row j is y index j), geometry.json, and volume_element.png (log10 √det g, the decision
// boundary, metric ellipses and the test points).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <Eigen/Eigenvalues>
#include <nlohmann/json.hpp>

#include "apps/inspect.h"
#include "flows/inspect.h"
#include "flows/model_io.h"
#include "plot/figure.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/npy.h"

namespace diffeoflow::app {
namespace {

namespace fs = std::filesystem;
using Index = Eigen::Index;

void DrawModelFigure(const std::string& path, const flows::ModelGeometry& r, const std::string& title) {
  const int n = r.resolution;
  const double hx = (r.grid_max[0] - r.grid_min[0]) / (n - 1);
  const double hy = (r.grid_max[1] - r.grid_min[1]) / (n - 1);
  const plot::Extent extent{r.grid_min[0] - hx / 2, r.grid_max[0] + hx / 2, r.grid_min[1] - hy / 2,
                            r.grid_max[1] + hy / 2};
  plot::Figure fig(1, 1, 780, 640);
  fig.SetTitle(title);
  plot::Axes& ax = fig.At(0, 0);
  char panel_title[160];
  std::snprintf(panel_title, sizeof(panel_title),
                "log10 sqrt(det g), decision boundary, metric ellipses; least / most sure 20%%: %.3g",
                r.uncertain_quintile / r.confident_quintile);
  ax.SetTitle(panel_title)
      .SetXLabel("x1")
      .SetYLabel("x2")
      .SetEqualAspect();
  const Eigen::MatrixXd log_volume = r.volume.array().max(1e-300).log10();
  plot::ImageOptions io;
  io.colormap = plot::Colormap::kViridis;
  io.colorbar_label = "log10 sqrt(det g)";
  io.smooth = true;
  ax.Image(log_volume, extent, io);
  if (r.test_points.cols() > 0) {
    plot::Style dots;
    dots.radius = 1.6;
    dots.alpha = 0.45;
    ax.ScatterClasses(r.test_points.row(0).transpose(), r.test_points.row(1).transpose(),
                      r.test_labels, dots);
  }

  // Decision boundary: where class k stops being the arg-max (p_k − max_{l≠k} p_l = 0).
  const int classes = static_cast<int>(r.probabilities.size());
  plot::Style boundary;
  boundary.color = plot::Color::FromHex(0xe8202a);
  boundary.width = 2.2;
  for (int k = 0; k < (classes == 2 ? 1 : classes); ++k) {
    Eigen::MatrixXd others = Eigen::MatrixXd::Constant(n, n, -1.0);
    for (int l = 0; l < classes; ++l) {
      if (l != k) others = others.cwiseMax(r.probabilities[static_cast<std::size_t>(l)]);
    }
    ax.Contour(r.probabilities[static_cast<std::size_t>(k)] - others, extent, 0.0, boundary);
  }

  // Ellipses {v : vᵀ g v = s²} with one s for all (sizes comparable across the plane), chosen so
  // that the median ellipse's major semi-axis is a third of the lattice cell; an ellipse whose
  // major axis would leave its cell is shrunk to fit (drawn dashed).
  const int count = static_cast<int>(r.ellipse_centres.size());
  const int ex = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(flows::kEllipses))));
  const int ey = (flows::kEllipses + ex - 1) / ex;
  const double cell = std::min((r.grid_max[0] - r.grid_min[0]) / ex,
                               (r.grid_max[1] - r.grid_min[1]) / ey);
  std::vector<double> root_min;
  std::vector<Eigen::Vector2d> eigenvalues;
  for (int c = 0; c < count; ++c) {
    Eigen::SelfAdjointEigenSolver<Eigen::Matrix2d> eig(r.ellipse_metrics[static_cast<std::size_t>(c)]);
    eigenvalues.push_back(eig.eigenvalues());
    root_min.push_back(std::sqrt(std::max(eig.eigenvalues()[0], 0.0)));
  }
  const double scale = cell / 3.0 * flows::Median(root_min);
  plot::Style ellipse;
  ellipse.color = plot::Color{1.0, 1.0, 1.0, 0.95};
  ellipse.width = 1.3;
  plot::Style capped = ellipse;
  capped.dash = {3.0, 2.0};
  for (int c = 0; c < count; ++c) {
    const Eigen::Vector2d lambda = eigenvalues[static_cast<std::size_t>(c)];
    if (!(lambda[1] > 0.0) || !(scale > 0.0)) continue;
    // Keep g positive definite for drawing (a rank-deficient g is an infinitely long ellipse).
    Eigen::Matrix2d g = r.ellipse_metrics[static_cast<std::size_t>(c)];
    g += std::max(0.0, 1e-8 * lambda[1] - lambda[0]) * Eigen::Matrix2d::Identity();
    const double major = scale / std::sqrt(std::max(lambda[0], 1e-8 * lambda[1]));
    const double limit = 0.48 * cell;
    if (major > limit) {
      ax.Ellipse(r.ellipse_centres[static_cast<std::size_t>(c)], g, scale * limit / major, capped);
    } else {
      ax.Ellipse(r.ellipse_centres[static_cast<std::size_t>(c)], g, scale, ellipse);
    }
  }
  ax.SetLimits(extent.xmin, extent.xmax, extent.ymin, extent.ymax);
  fig.SavePng(path);
}

}  // namespace

nlohmann::ordered_json GeometryJson(const flows::ModelFile& file, const flows::ModelGeometry& r) {
  const int n = r.resolution;
  nlohmann::ordered_json j;
  j["model"] = flows::ModelKindName(file.spec.kind);
  j["dataset"] = r.dataset.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.dataset);
  j["grid_min"] = {r.grid_min[0], r.grid_min[1]};
  j["grid_max"] = {r.grid_max[0], r.grid_max[1]};
  j["resolution"] = n;
  j["volume_element_near_boundary"] = JsonNumber(r.near);
  j["volume_element_far"] = JsonNumber(r.far);
  j["volume_element_ratio"] = JsonNumber(r.near / r.far);
  j["volume_element_uncertain_quintile"] = JsonNumber(r.uncertain_quintile);
  j["volume_element_confident_quintile"] = JsonNumber(r.confident_quintile);
  j["volume_element_quintile_ratio"] = JsonNumber(r.uncertain_quintile / r.confident_quintile);
  j["volume_element_median"] = JsonNumber(flows::Median(std::vector<double>(r.volume.data(), r.volume.data() + r.volume.size())));
  j["kinetic_energy"] = JsonNumber(r.kinetic_energy);
  j["fisher_rao_norm"] = JsonNumber(r.fisher.fisher_rao_norm);
  j["fisher_trace"] = JsonNumber(r.fisher.fisher_trace);
  j["fisher_samples"] = r.fisher.samples;
  j["fisher_data"] = r.fisher_data;
  j["accuracy"] = JsonNumber(r.accuracy);
  j["near_boundary_threshold"] = flows::kNearBoundary;
  j["far_threshold"] = flows::kFar;
  return j;
}

void CheckInspectModelFlags(const InspectFlags& f) {
  if (f.resolution < 8 || f.resolution > 2048) {
    throw InputError("--resolution must be in [8, 2048] (got " + std::to_string(f.resolution) + ")");
  }
  if (!(f.margin >= 0.0 && f.margin <= 10.0)) {
    throw InputError("--margin must be in [0, 10] (a fraction of the data's extent)");
  }
}

flows::ModelGeometry InspectClassifier(const flows::ModelFile& file, const InspectFlags& f,
                                       const CommonFlags& common) {
  CheckInspectModelFlags(f);
  if (file.spec.input_size() != 2 || file.spec.convolutional()) {
    throw InputError("--model: " + f.model + ": inspect needs a classifier on 2-D input, this one takes " +
                     std::to_string(file.spec.input_size()) + " features");
  }
  flows::InspectOptions options;
  options.data = f.data;
  options.labels = f.labels;
  options.model_path = f.model;
  options.resolution = f.resolution;
  options.margin = f.margin;
  options.seed = common.seed;
  options.quiet = common.quiet;
  options.threads = common.threads > 0 ? common.threads : 1;
  return flows::InspectModel(file, options);
}

int RunInspectModel(const InspectFlags& f, const CommonFlags& common) {
  CheckInspectModelFlags(f);
  flows::ModelFile file;
  try {
    file = flows::ReadModel(f.model);
  } catch (const InputError& e) {
    throw InputError(std::string("--model: ") + e.what());
  }
  const flows::ModelGeometry r = InspectClassifier(file, f, common);

  EnsureOutputDirectory(f.out, "--out");
  const fs::path out(f.out);
  const int n = r.resolution;
  {
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> v = r.volume;
    WriteNpy((out / "volume_element.npy").string(), {std::uint64_t(n), std::uint64_t(n)},
             Eigen::Map<const Eigen::VectorXd>(v.data(), v.size()), ElementType::kFloat64);
  }
  {
    const int classes = static_cast<int>(r.probabilities.size());
    std::vector<double> p(static_cast<std::size_t>(n) * n * classes);
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < n; ++i) {
        for (int k = 0; k < classes; ++k) {
          p[(static_cast<std::size_t>(j) * n + i) * classes + k] =
              r.probabilities[static_cast<std::size_t>(k)](j, i);
        }
      }
    }
    WriteNpy((out / "probabilities.npy").string(),
             {std::uint64_t(n), std::uint64_t(n), std::uint64_t(classes)},
             Eigen::Map<const Eigen::VectorXd>(p.data(), static_cast<Index>(p.size())),
             ElementType::kFloat64);
  }
  WriteFileAtomically((out / "geometry.json").string(), GeometryJson(file, r).dump(2) + "\n");

  char title[256];
  const double ratio = r.near / r.far;
  const std::string near_far =
      std::isfinite(ratio) ? std::to_string(ratio).substr(0, 5) : std::string("n/a (no p > 0.95)");
  std::snprintf(title, sizeof(title), "%s on %s: volume element near boundary / far = %s",
                flows::ModelKindName(file.spec.kind).c_str(),
                r.dataset.empty() ? "?" : r.dataset.c_str(), near_far.c_str());
  DrawModelFigure((out / "volume_element.png").string(), r, title);
  if (!common.quiet) {
    std::printf("volume element: median %.4g near the boundary (max p < %.2f), %.4g far (> %.2f), "
                "ratio %.3g; action %.4g; Fisher-Rao norm %.4g, Fisher trace %.4g\n",
                r.near, flows::kNearBoundary, r.far, flows::kFar, r.near / r.far, r.kinetic_energy,
                r.fisher.fisher_rao_norm, r.fisher.fisher_trace);
  }
  return 0;
}

}  // namespace diffeoflow::app
