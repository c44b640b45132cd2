#include "flows/inspect.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "flows/geometry.h"
#include "flows/own_data.h"
#include "flows/train.h"
#include "solvers/errors.h"
#include "solvers/geometry.h"

namespace diffeoflow::flows {
namespace {

// Train's generator settings for the 2-D data sets (apps/cmd_train.cc defaults).
constexpr int kTrainSamples = 2000;
constexpr double kTrainNoise = 0.02;
constexpr double kTrainTestFraction = 0.2;

// The data the model is looked at on: --data/--labels when given (standardised as train did),
// else the split train made, rebuilt from the model's data record; a model file without a record
// (older than it) gets the generator named by its dataset attribute with train's default settings
// and --seed. Returns false when no labelled data are known.
bool DataOfModel(const InspectOptions& f, const ModelFile& file, Dataset* train, Dataset* test,
                 std::string* description) {
  if (!f.data.empty()) {
    if (f.labels.empty()) throw InputError("--data needs --labels y.npy");
    OwnData own = ReadOwnData(f.data, "--data", f.labels, "--labels", "inspect");
    CheckSampleShape(own.data.sample_shape, file.spec.input_shape, "--data", f.data);
    CheckLabelRange(own.data.labels, file.spec.classes, "--labels", f.labels);
    file.data.standardization.Apply(&own.data);
    *test = own.data;
    *train = own.data;
    *description = f.data;
    return true;
  }
  if (!f.labels.empty()) throw InputError("--labels needs --data X.npy");
  DataRecord record = file.data;
  if (record.source.empty()) {
    const auto it = file.attributes.find("dataset");
    const std::string name = it != file.attributes.end() ? it->second : "";
    if (name != "spirals" && name != "circles" && name != "moons") return false;
    record.source = "generator";
    record.dataset = name;
    record.samples = kTrainSamples;
    record.noise = kTrainNoise;
    record.test_fraction = kTrainTestFraction;
    record.seed = f.seed;
    if (!f.quiet) {
      std::fprintf(stderr,
                   "diffeoflow: %s has no data record (written before model files kept one): "
                   "regenerating %s with train's defaults (%d samples, noise %g, seed %u from "
                   "--seed)\n",
                   f.model_path.c_str(), name.c_str(), kTrainSamples, kTrainNoise, f.seed);
    }
  }
  if (record.source == "fashion-mnist") return false;
  try {
    RebuildSplit(record, train, test);
  } catch (const InputError& e) {
    throw InputError(std::string(e.what()) + " (look at other data with --data X.npy --labels y.npy)");
  }
  *description = record.source == "generator"
                     ? "test split of " + record.dataset + " (" + std::to_string(record.samples) +
                           " samples, noise " + nlohmann::json(record.noise).dump() + ", seed " +
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

}  // namespace

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

ModelGeometry InspectModel(const ModelFile& file, const InspectOptions& f) {
  ModelGeometry r;
  r.resolution = f.resolution;
  Classifier model(file.spec, std::max(f.threads, 1));
  const Vector& theta = file.theta;
  const auto it = file.attributes.find("dataset");
  r.dataset = it != file.attributes.end() ? it->second : file.data.dataset;
  Dataset train, test;
  std::string description;
  const bool known = DataOfModel(f, file, &train, &test, &description);
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
  const Vector volume = VolumeElements(model, theta, x);
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
    r.accuracy = Accuracy(model, theta, test).second;
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
  r.kinetic_energy = FlowAction(model, theta, data);
  r.fisher = Fisher(model, theta, data, labels.data(), 512);

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
  const std::vector<Matrix> jacobians = FeatureJacobians(model, theta, centres);
  for (Index c = 0; c < centres.cols(); ++c) {
    r.ellipse_centres.push_back(centres.col(c));
    r.ellipse_metrics.push_back(PullbackMetric(jacobians[static_cast<std::size_t>(c)]));
  }
  return r;
}

}  // namespace diffeoflow::flows
