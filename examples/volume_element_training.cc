// How training reshapes the geometry a classifier induces on its input plane (flows/geometry.h):
// the volume element √det g(x), g = JᵀJ, J = ∂h/∂x the Jacobian of the feature map x ↦ h(1)
// (embedding and ODE block, everything before the linear read-out), at initialisation, half-way
// through training and at the end, for concentric circles and two spirals.
//
// The claim tested (Hauser & Ray, NeurIPS 2017; Benfenati & Marta 2023): a trained classifier
// magnifies area where it is unsure, i.e. near its decision boundary. On a regular grid over the
// data's bounding box (plus 0.25 on every side) we take p = softmax(logits) and
//
//   ratio = median{√det g(x) : max p(x) < 0.7} / median{√det g(x) : max p(x) > 0.95}.
//
// When one of the two sets is empty (typically the confident set at initialisation, where all
// logits are small) the ratio is undefined: the table says "n/a" (JSON null) and gives the sizes of
// both sets. A ratio that is always defined is reported beside it: the median volume element of
// the 20 % least confident grid points over that of the 20 % most confident ones ("rank ratio").
// Each stage also reports the action of the hidden flow and the Fisher–Rao norm
// E ⟨θ, ∇_θ ℓ⟩² over the first 512 test points (flows/geometry.h).
//
// Model and training are the defaults of `diffeoflow train --dataset circles|spirals`: 2000 points,
// noise 0.02, 20 % test split; odenet with a linear embedding to 16 features, an MLP field
// 16+1 → 32 → 16 (tanh) integrated by RK4 in 8 steps, discrete adjoint; Adam 0.03, batch 128,
// cosine schedule, 100 epochs; seed 1. "mid" is θ after epoch 50, copied from inside the training
// loop (the schedule is the one of the full run).
//
//   example_volume_element_training [--out DIR] [--seed S] [--epochs E] [--resolution R]
//
// Writes DIR/volume_element_<data set>.png, DIR/volume_element.md and DIR/volume_element.json, and
// prints the table and the JSON.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "examples/example_util.h"
#include "flows/classifier.h"
#include "flows/datasets.h"
#include "flows/geometry.h"
#include "flows/train.h"
#include "plot/figure.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"

namespace {

using namespace diffeoflow;
using namespace diffeoflow::flows;

constexpr double kUnsure = 0.7, kConfident = 0.95, kRankShare = 0.2;

struct Flags {
  std::string out = "volume_element_training";
  unsigned seed = 1;
  int epochs = 100;
  int resolution = 140;
};

double Median(std::vector<double> v) {
  const std::size_t m = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m), v.end());
  const double upper = v[m];
  if (v.size() % 2 == 1) return upper;
  return 0.5 * (upper + *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m)));
}

// A regular grid over the data's bounding box plus a margin; sample (i, j) is column i·R + j, at
// the pixel centres of plot::Figure's convention (row i = y from the bottom, column j = x).
struct Grid {
  plot::Extent extent;
  int resolution = 0;
  Matrix points;  // 2 × R²
};

Grid MakeGrid(const Dataset& data, int resolution) {
  const double margin = 0.25;
  Grid g;
  g.resolution = resolution;
  g.extent = {data.features.row(0).minCoeff() - margin, data.features.row(0).maxCoeff() + margin,
              data.features.row(1).minCoeff() - margin, data.features.row(1).maxCoeff() + margin};
  g.points.resize(2, static_cast<Index>(resolution) * resolution);
  for (int i = 0; i < resolution; ++i) {
    for (int j = 0; j < resolution; ++j) {
      g.points(0, i * resolution + j) =
          g.extent.xmin + (j + 0.5) * (g.extent.xmax - g.extent.xmin) / resolution;
      g.points(1, i * resolution + j) =
          g.extent.ymin + (i + 0.5) * (g.extent.ymax - g.extent.ymin) / resolution;
    }
  }
  return g;
}

struct Stage {
  std::string name;
  int epoch = 0;
  double test_accuracy = 0.0;
  std::optional<double> ratio;  // empty when a set is empty
  Index unsure = 0, confident = 0, grid_points = 0;
  double rank_ratio = 0.0;
  double median_volume = 0.0;
  double kinetic_energy = 0.0;
  FisherSummary fisher;
  Matrix log_volume;   // R × R, log10 √det g
  Matrix probability;  // R × R, p(class 1)
  Matrix max_probability;
};

Stage Measure(Classifier& model, const Vector& theta, const Grid& grid, const Dataset& test,
              const std::string& name, int epoch) {
  Stage s;
  s.name = name;
  s.epoch = epoch;
  s.test_accuracy = Accuracy(model, theta, test).second;
  s.kinetic_energy = FlowAction(model, theta, test.features);
  s.fisher = Fisher(model, theta, test.features, test.labels.data());
  const Vector volume = VolumeElements(model, theta, grid.points);
  const Matrix logits = model.Logits(theta, grid.points);
  const Index n = grid.points.cols();
  const int R = grid.resolution;
  s.grid_points = n;
  s.log_volume.resize(R, R);
  s.probability.resize(R, R);
  s.max_probability.resize(R, R);
  std::vector<double> unsure, confident, all_volume(static_cast<std::size_t>(n));
  std::vector<std::pair<double, double>> by_confidence;  // (max p, volume)
  for (Index k = 0; k < n; ++k) {
    const Vector z = logits.col(k);
    const Vector e = (z.array() - z.maxCoeff()).exp().matrix();
    const Vector p = e / e.sum();
    const double pmax = p.maxCoeff(), v = volume[k];
    s.log_volume(k / R, k % R) = v > 0.0 ? std::log10(v) : std::numeric_limits<double>::quiet_NaN();
    s.probability(k / R, k % R) = p.size() > 1 ? p[1] : p[0];
    s.max_probability(k / R, k % R) = pmax;
    if (pmax < kUnsure) unsure.push_back(v);
    if (pmax > kConfident) confident.push_back(v);
    all_volume[static_cast<std::size_t>(k)] = v;
    by_confidence.emplace_back(pmax, v);
  }
  s.unsure = static_cast<Index>(unsure.size());
  s.confident = static_cast<Index>(confident.size());
  if (!unsure.empty() && !confident.empty()) s.ratio = Median(unsure) / Median(confident);
  s.median_volume = Median(all_volume);
  std::sort(by_confidence.begin(), by_confidence.end());
  const auto share = std::max<std::size_t>(1, static_cast<std::size_t>(kRankShare * n));
  std::vector<double> low, high;
  for (std::size_t k = 0; k < share; ++k) {
    low.push_back(by_confidence[k].second);
    high.push_back(by_confidence[by_confidence.size() - 1 - k].second);
  }
  s.rank_ratio = Median(low) / Median(high);
  return s;
}

// "n/a" when a set is empty; with_rank adds the rank ratio in that case.
std::string RatioText(const Stage& s, bool with_rank) {
  char text[64];
  if (s.ratio) {
    std::snprintf(text, sizeof(text), "%.2f", *s.ratio);
  } else {
    if (with_rank) {
      std::snprintf(text, sizeof(text), "n/a (rank ratio %.2f)", s.rank_ratio);
    } else {
      std::snprintf(text, sizeof(text), "n/a");
    }
  }
  return text;
}

void DrawFigure(const std::string& path, const std::string& dataset,
                const std::vector<Stage>& stages, const Grid& grid, const Dataset& test) {
  plot::Figure fig(1, static_cast<int>(stages.size()), 470, 430);
  fig.SetTitle(dataset +
               ": log volume element of the feature map x ↦ h(1) (odenet, W = 16; "
               "colour scale per panel)");
  const Index shown = std::min<Index>(test.size(), 300);
  Eigen::VectorXi labels(shown);
  for (Index i = 0; i < shown; ++i) labels[i] = test.labels[static_cast<std::size_t>(i)];
  for (std::size_t c = 0; c < stages.size(); ++c) {
    const Stage& s = stages[c];
    plot::Axes& ax = fig.At(0, static_cast<int>(c));
    char title[160];
    std::snprintf(title, sizeof(title), "%s (epoch %d): ratio %s, acc %.3f", s.name.c_str(),
                  s.epoch, RatioText(s, true).c_str(), s.test_accuracy);
    ax.SetTitle(title).SetXLabel("x₁").SetYLabel("x₂").SetEqualAspect();
    ax.Image(s.log_volume, grid.extent,
             {.colormap = plot::Colormap::kMagma, .colorbar_label = "log₁₀ √det g"});
    const bool legend = c == 0;
    ax.Contour(s.max_probability, grid.extent, kUnsure,
               {.color = plot::Color{0.55, 0.85, 1.0, 1.0},
                .width = 1.1,
                .dash = {2, 3},
                .label = legend ? "max p = 0.7" : ""});
    ax.Contour(s.max_probability, grid.extent, kConfident,
               {.color = plot::Color{0.3, 0.9, 0.4, 1.0},
                .width = 1.1,
                .dash = {6, 3},
                .label = legend ? "max p = 0.95" : ""});
    ax.Contour(s.probability, grid.extent, 0.5,
               {.color = plot::Color{1.0, 1.0, 1.0, 1.0},
                .width = 2.0,
                .label = legend ? "decision boundary" : ""});
    ax.ScatterClasses(test.features.row(0).head(shown).transpose(),
                      test.features.row(1).head(shown).transpose(), labels,
                      {.radius = 1.6, .alpha = 0.8},
                      legend ? std::vector<std::string>{"class 0 (test)", "class 1 (test)"}
                             : std::vector<std::string>{});
    ax.SetLegendPosition(plot::LegendPosition::kLowerLeft);
  }
  fig.SavePng(path);
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"The volume element of trained classifiers at initialisation, mid-training and end",
               "example_volume_element_training"};
  app.add_option("--out", flags.out, "Folder for the figures and tables");
  app.add_option("--seed", flags.seed, "Data and initialisation seed");
  app.add_option("--epochs", flags.epochs, "Training epochs (mid-training is half of them)")
      ->check(CLI::Range(2, 1000000000));
  app.add_option("--resolution", flags.resolution, "Grid points per axis")
      ->check(CLI::Range(8, 1000));
  CLI11_PARSE(app, argc, argv);
  return examples::RunExample("example_volume_element_training", [&] {
    EnsureOutputDirectory(flags.out, "--out");
    const int threads = examples::HardwareThreads();
    std::ostringstream table;
    table << "| data set | stage | epoch | test accuracy | ratio (max p < 0.7 / > 0.95) | grid "
             "points "
             "unsure / confident | rank ratio (20 % least / most confident) | median √det g | "
             "kinetic energy | Fisher–Rao norm |\n|---|---|---|---|---|---|---|---|---|---|\n";
    nlohmann::ordered_json json = nlohmann::ordered_json::array();
    for (const std::string name : {"circles", "spirals"}) {
      GeneratorOptions g;
      g.samples = 2000;
      g.noise = 0.02;
      g.seed = flags.seed;
      Dataset train, test;
      SplitTrainTest(name == "circles" ? ConcentricCircles(g) : TwoSpirals(g), 0.2, flags.seed + 1,
                     &train, &test);

      Classifier model(examples::TwoDimensionalSpec(train), threads);
      Vector theta = model.Initialize(flags.seed);
      const Grid grid = MakeGrid(train, flags.resolution);

      std::vector<Stage> stages;
      stages.push_back(Measure(model, theta, grid, test, "init", 0));

      TrainOptions o = examples::TwoDimensionalTraining(flags.epochs, flags.seed);
      const int mid_epoch = flags.epochs / 2;
      Vector theta_mid;
      o.progress = [&](const EpochReport& r) {
        if (r.epoch == mid_epoch) theta_mid = theta;  // Train updates θ in place
      };
      const TrainSummary summary = Train(model, theta, train, test, o);
      std::cerr << name << ": " << summary.BriefReport() << "\n";
      if (theta_mid.size() != theta.size()) {
        throw NumericalError("training stopped before the mid-training epoch " +
                             std::to_string(mid_epoch));
      }
      stages.push_back(Measure(model, theta_mid, grid, test, "mid", mid_epoch));
      stages.push_back(Measure(model, theta, grid, test, "end", summary.epochs));

      const std::string png =
          (std::filesystem::path(flags.out) / ("volume_element_" + name + ".png")).string();
      DrawFigure(png, name, stages, grid, test);
      for (const Stage& s : stages) {
        char line[512];
        std::snprintf(line, sizeof(line),
                      "| %s | %s | %d | %.4f | %s | %ld / %ld | %.2f | %.3g | %.4g | %.3g |\n",
                      name.c_str(), s.name.c_str(), s.epoch, s.test_accuracy,
                      RatioText(s, false).c_str(), static_cast<long>(s.unsure),
                      static_cast<long>(s.confident), s.rank_ratio, s.median_volume,
                      s.kinetic_energy, s.fisher.fisher_rao_norm);
        table << line;
        json.push_back(
            {{"dataset", name},
             {"stage", s.name},
             {"epoch", s.epoch},
             {"test_accuracy", s.test_accuracy},
             {"ratio", s.ratio ? nlohmann::ordered_json(*s.ratio) : nlohmann::ordered_json()},
             {"unsure_grid_points", s.unsure},
             {"confident_grid_points", s.confident},
             {"grid_points", s.grid_points},
             {"rank_ratio", s.rank_ratio},
             {"median_volume_element", s.median_volume},
             {"kinetic_energy", s.kinetic_energy},
             {"fisher_rao_norm", s.fisher.fisher_rao_norm},
             {"fisher_trace", s.fisher.fisher_trace},
             {"fisher_samples", s.fisher.samples},
             {"figure", png}});
      }
    }
    std::cout << table.str() << "\n" << json.dump(2) << "\n";
    examples::WriteTable(flags.out, "volume_element", table.str(), json.dump(2));
    return 0;
  });
}
