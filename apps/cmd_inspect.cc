// `diffeoflow inspect`: the geometry of a trained classifier or of a registration, as
// ../shared/CLI.md specifies.
//
// Model: the pull-back g = JᵀJ of the Euclidean metric of the feature space (before the read-out)
// on an N × N grid of the input plane, its volume element √det g, the class probabilities, the
// action of the hidden flow and the Fisher–Rao norm (flows/geometry.h). The grid covers the
// bounding box of the model's data — --data/--labels, else the split train made, rebuilt from the
// data record in model.h5 (flows/own_data.h; for an older file without one, the generator named
// by its dataset attribute with train's default settings and --seed) — widened by --margin on
// each side; sample (i, j) sits at
// grid_min + (i, j) ∘ (grid_max − grid_min) / (N − 1), and row j of the .npy arrays is y index j.
//
// Transform: det(I + ∇u) of DIR/displacement.nii.gz (registration/image_ops.h), the share of
// folded voxels (det ≤ 0), the kinetic energy from DIR/metrics.json, and a figure of the deformed
// grid and the Jacobian map.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Eigenvalues>
#include <nlohmann/json.hpp>

#include "apps/command.h"
#include "flows/classifier.h"
#include "flows/datasets.h"
#include "flows/geometry.h"
#include "flows/model_io.h"
#include "flows/own_data.h"
#include "flows/train.h"
#include "plot/figure.h"
#include "registration/displacement_file.h"
#include "registration/image_io.h"
#include "registration/image_ops.h"
#include "registration/outputs/summary_figure.h"
#include "registration/register.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/geometry.h"
#include "solvers/npy.h"

namespace {

using namespace diffeoflow;
namespace fs = std::filesystem;
using Index = Eigen::Index;

struct InspectFlags {
  std::string model, transform, out, data, labels;
  int resolution = 128;
  double margin = 0.1;
};

// Train's generator settings for the 2-D data sets (apps/cmd_train.cc defaults).
constexpr int kTrainSamples = 2000;
constexpr double kTrainNoise = 0.02;
constexpr double kTrainTestFraction = 0.2;
constexpr double kNearBoundary = 0.7, kFar = 0.95;
constexpr int kEllipses = 40;

double Median(std::vector<double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const std::size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<long>(mid), values.end());
  double m = values[mid];
  if (values.size() % 2 == 0) {
    m = 0.5 * (m + *std::max_element(values.begin(), values.begin() + static_cast<long>(mid)));
  }
  return m;
}

// NaN (undefined) is written as null.
nlohmann::ordered_json Number(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

// ---------------------------------------------------------------------------------------------
// Model

struct ModelGeometry {
  Eigen::Vector2d grid_min, grid_max;
  int resolution = 0;
  Eigen::MatrixXd volume;                 // resolution × resolution, row = y index
  std::vector<Eigen::MatrixXd> probabilities;  // per class, row = y index
  std::vector<Eigen::Matrix2d> ellipse_metrics;
  std::vector<Eigen::Vector2d> ellipse_centres;
  double near = 0, far = 0, uncertain_quintile = 0, confident_quintile = 0, kinetic_energy = 0;
  flows::FisherSummary fisher;
  std::string dataset, fisher_data;
  double accuracy = std::numeric_limits<double>::quiet_NaN();  // on the labelled data, when known
  Matrix test_points;           // 2 × M (empty when the data set is unknown)
  Eigen::VectorXi test_labels;
};

// The data the model is looked at on: --data/--labels when given (standardised as train did),
// else the split train made, rebuilt from the model's data record; a model file without a record
// (older than it) gets the generator named by its dataset attribute with train's default settings
// and --seed. Returns false when no labelled data are known.
bool DataOfModel(const InspectFlags& f, const flows::ModelFile& file, unsigned seed, bool quiet,
                 flows::Dataset* train, flows::Dataset* test, std::string* description) {
  if (!f.data.empty()) {
    if (f.labels.empty()) throw InputError("--data needs --labels y.npy");
    flows::OwnData own = flows::ReadOwnData(f.data, "--data", f.labels, "--labels", "inspect");
    flows::CheckSampleShape(own.data.sample_shape, file.spec.input_shape, "--data", f.data);
    flows::CheckLabelRange(own.data.labels, file.spec.classes, "--labels", f.labels);
    file.data.standardization.Apply(&own.data);
    *test = own.data;
    *train = own.data;
    *description = f.data;
    return true;
  }
  if (!f.labels.empty()) throw InputError("--labels needs --data X.npy");
  flows::DataRecord record = file.data;
  if (record.source.empty()) {
    const auto it = file.attributes.find("dataset");
    const std::string name = it != file.attributes.end() ? it->second : "";
    if (name != "spirals" && name != "circles" && name != "moons") return false;
    record.source = "generator";
    record.dataset = name;
    record.samples = kTrainSamples;
    record.noise = kTrainNoise;
    record.test_fraction = kTrainTestFraction;
    record.seed = seed;
    if (!quiet) {
      std::fprintf(stderr,
                   "diffeoflow: %s has no data record (written before model files kept one): "
                   "regenerating %s with train's defaults (%d samples, noise %g, seed %u from "
                   "--seed)\n",
                   f.model.c_str(), name.c_str(), kTrainSamples, kTrainNoise, seed);
    }
  }
  if (record.source == "fashion-mnist") return false;
  try {
    flows::RebuildSplit(record, train, test);
  } catch (const InputError& e) {
    throw InputError(std::string(e.what()) + " (look at other data with --data X.npy --labels y.npy)");
  }
  *description = record.source == "generator"
                     ? "test split of " + record.dataset + " (" + std::to_string(record.samples) +
                           " samples, noise " + Number(record.noise).dump() + ", seed " +
                           std::to_string(record.seed) + ")"
                     : "test split of the recorded files";
  return true;
}

Matrix GridPoints(const Eigen::Vector2d& lo, const Eigen::Vector2d& hi, int n) {
  Matrix x(2, static_cast<Index>(n) * n);
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < n; ++i) {
      x(0, i + static_cast<Index>(n) * j) = lo[0] + (hi[0] - lo[0]) * i / (n - 1);
      x(1, i + static_cast<Index>(n) * j) = lo[1] + (hi[1] - lo[1]) * j / (n - 1);
    }
  }
  return x;
}

ModelGeometry InspectModel(const InspectFlags& f, const flows::ModelFile& file, unsigned seed,
                           bool quiet, int threads) {
  ModelGeometry r;
  r.resolution = f.resolution;
  flows::Classifier model(file.spec, threads);
  const Vector& theta = file.theta;
  const auto it = file.attributes.find("dataset");
  r.dataset = it != file.attributes.end() ? it->second : file.data.dataset;
  flows::Dataset train, test;
  std::string description;
  const bool known = DataOfModel(f, file, seed, quiet, &train, &test, &description);
  if (known) {
    r.grid_min = train.features.rowwise().minCoeff().cwiseMin(test.features.rowwise().minCoeff());
    r.grid_max = train.features.rowwise().maxCoeff().cwiseMax(test.features.rowwise().maxCoeff());
  } else {
    r.grid_min.setConstant(-1.5);  // the generators' range (flows/datasets.h)
    r.grid_max.setConstant(1.5);
  }
  const Eigen::Vector2d size = r.grid_max - r.grid_min;
  r.grid_min -= f.margin * size;
  r.grid_max += f.margin * size;

  const int n = f.resolution;
  const Matrix x = GridPoints(r.grid_min, r.grid_max, n);
  const Vector volume = flows::VolumeElements(model, theta, x);
  r.volume = Eigen::Map<const Eigen::MatrixXd>(volume.data(), n, n).transpose();
  const Matrix logits = model.Logits(theta, x);
  const int classes = file.spec.classes;
  Matrix p(classes, x.cols());
  for (Index c = 0; c < x.cols(); ++c) {
    const Vector z = logits.col(c);
    const Vector e = (z.array() - z.maxCoeff()).exp();
    p.col(c) = e / e.sum();
  }
  for (int k = 0; k < classes; ++k) {
    const Vector row = p.row(k).transpose();
    r.probabilities.push_back(Eigen::Map<const Eigen::MatrixXd>(row.data(), n, n).transpose());
  }
  std::vector<double> near, far;
  for (Index c = 0; c < x.cols(); ++c) {
    const double top = p.col(c).maxCoeff();
    if (top < kNearBoundary) near.push_back(volume[c]);
    if (top > kFar) far.push_back(volume[c]);
  }
  r.near = Median(near);
  r.far = Median(far);
  // Thresholds on the probability leave one side empty when the model is unsure everywhere (at
  // initialisation); quintiles of the grid ranked by max probability are always defined.
  {
    std::vector<std::pair<double, double>> ranked;  // (max probability, volume element)
    for (Index c = 0; c < x.cols(); ++c) ranked.emplace_back(p.col(c).maxCoeff(), volume[c]);
    std::sort(ranked.begin(), ranked.end());
    const std::size_t fifth = std::max<std::size_t>(1, ranked.size() / 5);
    std::vector<double> low, high;
    for (std::size_t k = 0; k < fifth; ++k) {
      low.push_back(ranked[k].second);
      high.push_back(ranked[ranked.size() - 1 - k].second);
    }
    r.uncertain_quintile = Median(low);
    r.confident_quintile = Median(high);
  }

  // Action and Fisher–Rao norm on the test split, or on the grid labelled by the model.
  Matrix data;
  std::vector<int> labels;
  if (known) {
    data = test.features;
    labels = test.labels;
    r.fisher_data = description;
    r.accuracy = flows::Accuracy(model, theta, test).second;
    r.test_points = test.features;
    r.test_labels = Eigen::Map<const Eigen::VectorXi>(test.labels.data(), static_cast<Index>(test.labels.size()));
  } else {
    data = x;
    for (Index c = 0; c < x.cols(); ++c) {
      Index k = 0;
      p.col(c).maxCoeff(&k);
      labels.push_back(static_cast<int>(k));
    }
    r.fisher_data = "grid, labelled by the model";
  }
  r.kinetic_energy = flows::FlowAction(model, theta, data);
  r.fisher = flows::Fisher(model, theta, data, labels.data(), 512);

  // Metric ellipses on a lattice of about kEllipses points inside the grid.
  const int ex = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(kEllipses))));
  const int ey = (kEllipses + ex - 1) / ex;
  Matrix centres(2, ex * ey);
  for (int j = 0; j < ey; ++j) {
    for (int i = 0; i < ex; ++i) {
      centres(0, i + ex * j) = r.grid_min[0] + (i + 0.5) * (r.grid_max[0] - r.grid_min[0]) / ex;
      centres(1, i + ex * j) = r.grid_min[1] + (j + 0.5) * (r.grid_max[1] - r.grid_min[1]) / ey;
    }
  }
  const std::vector<Matrix> jacobians = flows::FeatureJacobians(model, theta, centres);
  for (Index c = 0; c < centres.cols(); ++c) {
    r.ellipse_centres.push_back(centres.col(c));
    r.ellipse_metrics.push_back(PullbackMetric(jacobians[static_cast<std::size_t>(c)]));
  }
  return r;
}

void DrawModelFigure(const std::string& path, const ModelGeometry& r, const std::string& title) {
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
  const int ex = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(kEllipses))));
  const int ey = (kEllipses + ex - 1) / ex;
  const double cell = std::min((r.grid_max[0] - r.grid_min[0]) / ex,
                               (r.grid_max[1] - r.grid_min[1]) / ey);
  std::vector<double> root_min;
  std::vector<Eigen::Vector2d> eigenvalues;
  for (int c = 0; c < count; ++c) {
    Eigen::SelfAdjointEigenSolver<Eigen::Matrix2d> eig(r.ellipse_metrics[static_cast<std::size_t>(c)]);
    eigenvalues.push_back(eig.eigenvalues());
    root_min.push_back(std::sqrt(std::max(eig.eigenvalues()[0], 0.0)));
  }
  const double scale = cell / 3.0 * Median(root_min);
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

int RunModel(const InspectFlags& f, const app::CommonFlags& common) {
  if (f.resolution < 8 || f.resolution > 2048) {
    throw InputError("--resolution must be in [8, 2048] (got " + std::to_string(f.resolution) + ")");
  }
  if (!(f.margin >= 0.0 && f.margin <= 10.0)) {
    throw InputError("--margin must be in [0, 10] (a fraction of the data's extent)");
  }
  flows::ModelFile file;
  try {
    file = flows::ReadModel(f.model);
  } catch (const InputError& e) {
    throw InputError(std::string("--model: ") + e.what());
  }
  if (file.spec.input_size() != 2 || file.spec.convolutional()) {
    throw InputError("--model: " + f.model + ": inspect needs a classifier on 2-D input, this one takes " +
                     std::to_string(file.spec.input_size()) + " features");
  }
  const int threads = common.threads > 0 ? common.threads : 1;
  const ModelGeometry r = InspectModel(f, file, common.seed, common.quiet, threads);

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
  nlohmann::ordered_json j;
  j["model"] = flows::ModelKindName(file.spec.kind);
  j["dataset"] = r.dataset.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.dataset);
  j["grid_min"] = {r.grid_min[0], r.grid_min[1]};
  j["grid_max"] = {r.grid_max[0], r.grid_max[1]};
  j["resolution"] = n;
  j["volume_element_near_boundary"] = Number(r.near);
  j["volume_element_far"] = Number(r.far);
  j["volume_element_ratio"] = Number(r.near / r.far);
  j["volume_element_uncertain_quintile"] = Number(r.uncertain_quintile);
  j["volume_element_confident_quintile"] = Number(r.confident_quintile);
  j["volume_element_quintile_ratio"] = Number(r.uncertain_quintile / r.confident_quintile);
  j["volume_element_median"] = Number(Median(std::vector<double>(r.volume.data(), r.volume.data() + r.volume.size())));
  j["kinetic_energy"] = Number(r.kinetic_energy);
  j["fisher_rao_norm"] = Number(r.fisher.fisher_rao_norm);
  j["fisher_trace"] = Number(r.fisher.fisher_trace);
  j["fisher_samples"] = r.fisher.samples;
  j["fisher_data"] = r.fisher_data;
  j["accuracy"] = Number(r.accuracy);
  j["near_boundary_threshold"] = kNearBoundary;
  j["far_threshold"] = kFar;
  WriteFileAtomically((out / "geometry.json").string(), j.dump(2) + "\n");

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
                r.near, kNearBoundary, r.far, kFar, r.near / r.far, r.kinetic_energy,
                r.fisher.fisher_rao_norm, r.fisher.fisher_trace);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Transform

int RunTransform(const InspectFlags& f, const app::CommonFlags& common) {
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
  j["kinetic_energy"] = Number(kinetic);
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

int Run(const InspectFlags& f, const app::CommonFlags& common) {
  if (f.model.empty() == f.transform.empty()) {
    throw InputError("inspect: give exactly one of --model FILE and --transform DIR");
  }
  return f.model.empty() ? RunTransform(f, common) : RunModel(f, common);
}

app::CommandRegistration registration{
    "inspect", "Geometry of a trained classifier (volume element, Fisher-Rao norm) or a registration",
    [](CLI::App& sub, const app::CommonFlags& common) -> std::function<int()> {
      auto f = std::make_shared<InspectFlags>();
      sub.add_option("--model", f->model, "A classifier on 2-D data: DIR/model.h5 from train");
      sub.add_option("--transform", f->transform, "A register output folder");
      sub.add_option("--data", f->data,
                     "Model: .npy features to look at (default: the data the model was trained on)");
      sub.add_option("--labels", f->labels, "Model: .npy integer labels of --data");
      sub.add_option("--out", f->out, "Output folder")->required();
      sub.add_option("--resolution", f->resolution, "Grid points per axis (model)")
          ->capture_default_str();
      sub.add_option("--margin", f->margin,
                     "Grid beyond the data's bounding box, as a fraction of its size (model)")
          ->capture_default_str();
      return [f, &common]() { return Run(*f, common); };
    }};

}  // namespace
