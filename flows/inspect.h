// The geometry of a trained classifier on 2-D input, looked at on an N × N grid of its input plane
// (what `diffeoflow inspect --model` writes): the pull-back g = JᵀJ of the Euclidean metric of the
// feature space (before the read-out) and its volume element √det g (flows/geometry.h), the class
// probabilities, the action of the hidden flow and the Fisher–Rao norm.
//
// The grid covers the bounding box of the model's data — InspectOptions::data / labels, else the
// split train made, rebuilt from the data record of the model file (flows/own_data.h; for an older
// file without one, the generator named by its dataset attribute with train's default settings and
// InspectOptions::seed) — widened by `margin` on each side; sample (i, j) sits at
// grid_min + (i, j) ∘ (grid_max − grid_min) / (N − 1), and row j of the arrays is y index j.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "flows/geometry.h"
#include "flows/model_io.h"

namespace diffeoflow::flows {

// A grid point is near the decision boundary when its largest class probability is below
// kNearBoundary, far from it when above kFar.
inline constexpr double kNearBoundary = 0.7;
inline constexpr double kFar = 0.95;
// About this many metric ellipses, on a lattice inside the grid.
inline constexpr int kEllipses = 40;

struct InspectOptions {
  // .npy features and integer labels to look at (both or neither; standardised as train did).
  std::string data, labels;
  std::string model_path;  // the model file's name, for messages
  int resolution = 128;    // grid points per axis
  double margin = 0.1;     // grid beyond the data's bounding box, a fraction of its size
  unsigned seed = 0;       // for a model file without a data record
  bool quiet = false;
  int threads = 1;
};

struct ModelGeometry {
  Eigen::Vector2d grid_min, grid_max;
  int resolution = 0;
  Eigen::MatrixXd volume;                 // resolution × resolution, row = y index
  std::vector<Eigen::MatrixXd> probabilities;  // per class, row = y index
  std::vector<Eigen::Matrix2d> ellipse_metrics;
  std::vector<Eigen::Vector2d> ellipse_centres;
  // Median volume elements near and far from the boundary, and in the least and the most sure
  // fifth of the grid (ranked by the largest probability); NaN when a set is empty.
  double near = 0, far = 0, uncertain_quintile = 0, confident_quintile = 0;
  double kinetic_energy = 0;              // the action of the hidden flow on the data
  FisherSummary fisher;
  std::string dataset, fisher_data;       // what the action and the Fisher norm were taken on
  double accuracy = std::numeric_limits<double>::quiet_NaN();  // on the labelled data, when known
  Matrix test_points;           // 2 × M (empty when the data set is unknown)
  Eigen::VectorXi test_labels;
};

// The geometry of `file`'s classifier (a classifier on 2-D input). Throws InputError for data
// that do not fit the model.
ModelGeometry InspectModel(const ModelFile& file, const InspectOptions& options);

// The median of `values` (the mean of the two middle ones for an even count); NaN when empty.
double Median(std::vector<double> values);

}  // namespace diffeoflow::flows
