// What a trained 2-D classifier does, on disk:
//  - trajectories.h5: each test point's path through depth, in the trajectory schema of
//    solvers/trajectory.h (/times (T), /states (T, N, W), /options, root attributes format =
//    "diffeoflow-trajectory", version = 1, kind = "layers") plus /inputs (N, 2), /labels (N),
//    /predictions (N) and /projection (W, 2): the orthonormal directions the figure draws the paths
//    in (the two leading principal directions of all states; the identity when W = 2).
//  - summary.png: the decision regions over the input plane with the test points, and the particle
//    paths through depth (projected) coloured by class.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "flows/classifier.h"
#include "flows/datasets.h"
#include "flows/shooting_classifier.h"

namespace diffeoflow::flows {

// A trained classifier of 2-D points as the figure sees it: logits (classes × N) of points
// (2 × N), and the hidden states of the points at `times` (each W × N).
struct PlaneClassifier {
  std::string name;  // model kind, e.g. "odenet" or "shooting"
  std::function<Matrix(const Matrix&)> logits;
  std::function<std::vector<Matrix>(const Matrix&)> paths;
  std::vector<double> times;
};
PlaneClassifier AsPlaneClassifier(Classifier& model, const Vector& theta);
PlaneClassifier AsPlaneClassifier(const ShootingClassifier& model);

// Writes both files into `dir` (atomically). `data` must be 2-D (sample_shape {2}); at most
// `max_paths` of its points are traced.
void WriteTwoDimensionalSummary(const PlaneClassifier& model, const Dataset& data,
                                const std::string& dir, int max_paths = 400, int resolution = 160);

}  // namespace diffeoflow::flows
