// Geodesic shooting against time-dependent weights, for networks: the shooting classifier
// (flows/shooting_classifier.h — control points with initial momenta, only p_0 and the read-out
// trained) against an ODE-Net (flows/classifier.h — an MLP field whose weights are the free
// variables), on two spirals, concentric circles and two moons with the data, split and defaults of
// `diffeoflow train`. Prints a Markdown table and writes it with the raw numbers as JSON.
//
//   example_landmark_classifiers [--out DIR] [--seed S] [--odenet-epochs E]
//
// Action is measured the same way for both models, from the recorded paths of the test points:
// mean over points of Σ_k ‖x(t_{k+1}) − x(t_k)‖² / Δt ≈ ∫₀¹ ‖dx/dt‖² dt (in each model's own
// hidden space: D = 3 for shooting, the embedding width for the ODE-Net).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "examples/example_util.h"
#include "flows/classifier.h"
#include "flows/datasets.h"
#include "flows/shooting_classifier.h"
#include "flows/train.h"
#include "solvers/atomic_file.h"

namespace {

using namespace diffeoflow;
using namespace diffeoflow::flows;

double PathAction(const std::vector<Matrix>& paths) {
  if (paths.size() < 2) return 0.0;
  const double dt = 1.0 / static_cast<double>(paths.size() - 1);
  double total = 0.0;
  for (std::size_t k = 0; k + 1 < paths.size(); ++k) {
    total += (paths[k + 1] - paths[k]).squaredNorm() / dt;
  }
  return total / static_cast<double>(paths.front().cols());
}

struct Row {
  std::string dataset, model;
  double test_accuracy = 0.0, train_accuracy = 0.0;
  long parameters = 0;
  double nfe_forward = 0.0, nfe_backward = 0.0, wall_seconds = 0.0, action = 0.0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string out_dir = "landmark_classifiers";
  unsigned seed = 1;
  int odenet_epochs = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--out") {
      out_dir = argv[i + 1];
    } else if (flag == "--seed") {
      seed = static_cast<unsigned>(std::atoi(argv[i + 1]));
    } else if (flag == "--odenet-epochs") {
      odenet_epochs = std::atoi(argv[i + 1]);
    } else {
      std::cerr << "example_landmark_classifiers: unknown flag " << flag << "\n";
      return 2;
    }
  }
  try {
    EnsureOutputDirectory(out_dir, "--out");
    std::vector<Row> rows;
    for (const std::string name : {"spirals", "circles", "moons"}) {
      GeneratorOptions g;
      g.samples = 2000;
      g.noise = 0.02;
      g.seed = seed;
      const Dataset all = name == "spirals"   ? TwoSpirals(g)
                          : name == "circles" ? ConcentricCircles(g)
                                              : TwoMoons(g);
      Dataset train, test;
      SplitTrainTest(all, 0.2, seed + 1, &train, &test);

      ShootingClassifierOptions so;
      so.seed = seed;
      ShootingClassifier shooting;
      const ShootingClassifierSummary ss = TrainShootingClassifier(train, test, so, &shooting);
      rows.push_back({name, "shooting", ss.test_accuracy, ss.train_accuracy, ss.parameters,
                      ss.nfe_forward, ss.nfe_backward, ss.wall_seconds,
                      PathAction(shooting.Paths(test.features))});
      std::cerr << name << ": " << ss.BriefReport() << "\n";

      const int threads = examples::HardwareThreads();
      Classifier odenet(examples::TwoDimensionalSpec(train), threads);
      Vector theta = odenet.Initialize(seed);
      const TrainSummary ts = Train(odenet, theta, train, test,
                                    examples::TwoDimensionalTraining(odenet_epochs, seed));
      rows.push_back({name, "odenet", ts.test_accuracy, ts.train_accuracy,
                      static_cast<long>(ts.parameters), ts.nfe_forward, ts.nfe_backward,
                      ts.wall_seconds, PathAction(odenet.Paths(theta, test.features, 9))});
      std::cerr << name << ": odenet " << ts.BriefReport() << "\n";
    }
    std::ostringstream table;
    table << "| data set | model | test accuracy | train accuracy | parameters | NFE fwd / bwd "
             "(per evaluation) | wall time [s] | action ∫‖dx/dt‖² |\n"
          << "|---|---|---|---|---|---|---|---|\n";
    nlohmann::json json = nlohmann::json::array();
    for (const Row& r : rows) {
      char line[512];
      std::snprintf(line, sizeof(line), "| %s | %s | %.4f | %.4f | %ld | %.0f / %.0f | %.1f | %.3g |\n",
                    r.dataset.c_str(), r.model.c_str(), r.test_accuracy, r.train_accuracy,
                    r.parameters, r.nfe_forward, r.nfe_backward, r.wall_seconds, r.action);
      table << line;
      json.push_back({{"dataset", r.dataset}, {"model", r.model},
                      {"test_accuracy", r.test_accuracy}, {"train_accuracy", r.train_accuracy},
                      {"parameters", r.parameters}, {"nfe_forward", r.nfe_forward},
                      {"nfe_backward", r.nfe_backward}, {"wall_seconds", r.wall_seconds},
                      {"action", r.action}});
    }
    std::cout << table.str();
    examples::WriteTable(out_dir, "comparison", table.str(), json.dump(2));
  } catch (const std::exception& e) {
    std::cerr << "example_landmark_classifiers: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
