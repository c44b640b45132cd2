// C⁰, C¹ and C² networks untangling the same two spirals (flows/classifier.h):
//
//   mlp     h_{l+1} = σ(W_l h_l + b_l)                       C⁰: no skip connection
//   resnet  h_{l+1} = h_l + Δ g_l(h_l)                       C¹: Euler steps of dh/dt = g
//   c2      h_{l+1} = 2h_l − h_{l−1} + Δ² g_l(h_l)            C²: second differences of d²h/dt² = g
//   odenet  dh/dt = g(t, h) on [0, 1], RK4                   the continuous-depth reference
//
// All four share the width W of the hidden flow, the depth L = 8 (layers, or RK4 steps), the
// hidden units of each block (32; mlp blocks have none), the data (2000 points, noise 0.02, 20 %
// test), the optimiser (Adam 0.03, batch 128, cosine schedule, 100 epochs) and the seed: the
// defaults of `diffeoflow train --dataset spirals --model M --channels W`.
//
// Two widths: W = 2, where the hidden flow moves the points in the plane itself so the paths are
// drawn without any projection (and the read-out's decision line can be drawn in the same plane),
// and W = 16 (the training default), drawn in the two leading principal directions of all states.
// The layer-wise paths are read back from the trajectories.h5 each model writes (the file
// `diffeoflow train` writes, flows/summary_figure.h): /states (T, N, W) and /projection (W, 2).
//
// The action (complexity) of the hidden flow is flows/geometry.h FlowAction over the test
// points: ∫₀¹ ‖dh/dt‖² dt for odenet, Σ_l ‖h_{l+1} − h_l‖² / Δ for the discrete networks; beside it
// the Fisher–Rao norm E ⟨θ, ∇_θ ℓ⟩² over the first 512 test points. The time column is the training
// time (TrainSummary::wall_seconds); the check that trajectories.h5 holds exactly the states
// Classifier::Paths recomputes is in the JSON (trajectories_h5_max_abs_difference).
//
//   example_untangling [--out DIR] [--seed S] [--epochs E]
//
// Writes DIR/untangling.png, DIR/untangling.md, DIR/untangling.json and, per model,
// DIR/<model>-w<W>/{trajectories.h5, summary.png}.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "examples/example_util.h"
#include "flows/classifier.h"
#include "flows/datasets.h"
#include "flows/geometry.h"
#include "flows/summary_figure.h"
#include "flows/train.h"
#include "plot/figure.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"

namespace {

using namespace diffeoflow;
using namespace diffeoflow::flows;

struct Flags {
  std::string out = "untangling";
  unsigned seed = 1;
  int epochs = 100;
};

std::string ContinuityClass(ModelKind kind) {
  switch (kind) {
    case ModelKind::kMlp:
      return "C⁰";
    case ModelKind::kResNet:
      return "C¹";
    case ModelKind::kC2:
      return "C²";
    default:
      return "ODE";
  }
}

// The layer-wise paths of one model as trajectories.h5 stores them, projected to the plane.
struct StoredPaths {
  std::vector<Matrix> lines;  // per point: T × 2
  Eigen::VectorXi labels;
  Index width = 0;
  std::size_t depth_points = 0;
};

StoredPaths ReadPaths(const std::string& path) {
  const h5::Reader in(path);
  if (in.StringAttribute("/", "format") != "diffeoflow-trajectory" ||
      in.StringAttribute("/", "kind") != "layers") {
    throw InputError(path + ": not a layer-wise trajectory file (attributes format, kind)");
  }
  h5::Shape shape, projection_shape;
  const std::vector<double> states = in.ReadDoubles("states", &shape);
  const std::vector<double> projection = in.ReadDoubles("projection", &projection_shape);
  const std::vector<std::int64_t> labels = in.ReadInts("labels");
  if (shape.size() != 3 || projection_shape.size() != 2 || projection_shape[0] != shape[2] ||
      projection_shape[1] != 2 || labels.size() != shape[1]) {
    throw InputError(path + ": /states must be (T, N, W), /projection (W, 2), /labels (N)");
  }
  const auto T = static_cast<Index>(shape[0]), N = static_cast<Index>(shape[1]),
             W = static_cast<Index>(shape[2]);
  // Row-major (W, 2) → the W × 2 matrix P; a state h (W) lands at Pᵀh.
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, 2, Eigen::RowMajor>> P(
      projection.data(), W, 2);
  StoredPaths out;
  out.width = W;
  out.depth_points = static_cast<std::size_t>(T);
  out.labels.resize(N);
  for (Index i = 0; i < N; ++i) {
    out.labels[i] = static_cast<int>(labels[static_cast<std::size_t>(i)]);
    Matrix line(T, 2);
    for (Index t = 0; t < T; ++t) {
      const Eigen::Map<const Vector> h(states.data() + (t * N + i) * W, W);
      line.row(t) = h.transpose() * P;
    }
    out.lines.push_back(std::move(line));
  }
  return out;
}

struct Row {
  std::string model, continuity;
  int width = 0;
  Index parameters = 0;
  double action = 0.0, fisher_rao_norm = 0.0, test_accuracy = 0.0, train_accuracy = 0.0,
         wall_seconds = 0.0;
  double file_vs_paths = 0.0;  // max |stored − recomputed| over the stored states
};

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"C0, C1 and C2 networks (and an ODE-Net) untangling two spirals", "example_untangling"};
  app.add_option("--out", flags.out, "Folder for the figure and tables");
  app.add_option("--seed", flags.seed, "Data and initialisation seed");
  app.add_option("--epochs", flags.epochs, "Training epochs")->check(CLI::Range(1, 1000000000));
  CLI11_PARSE(app, argc, argv);
  return examples::RunExample("example_untangling", [&] {
    EnsureOutputDirectory(flags.out, "--out");
    GeneratorOptions g;
    g.samples = 2000;
    g.noise = 0.02;
    g.seed = flags.seed;
    Dataset train, test;
    SplitTrainTest(TwoSpirals(g), 0.2, flags.seed + 1, &train, &test);
    const int threads = examples::HardwareThreads();

    const std::vector<ModelKind> kinds = {ModelKind::kMlp, ModelKind::kResNet, ModelKind::kC2,
                                          ModelKind::kOdeNet};
    const std::vector<int> widths = {2, 16};
    plot::Figure fig(static_cast<int>(widths.size()), static_cast<int>(kinds.size()), 400, 390);
    fig.SetTitle(
        "two spirals, depth L = 8: each test point's path through the layers "
        "(grey dot = input features h₀, coloured dot = final features, by class)");
    std::vector<Row> rows;
    for (std::size_t wi = 0; wi < widths.size(); ++wi) {
      for (std::size_t ki = 0; ki < kinds.size(); ++ki) {
        ModelSpec spec = examples::TwoDimensionalSpec(train, kinds[ki]);
        spec.width = widths[wi];
        spec.depth = 8;
        Classifier model(spec, threads);
        Vector theta = model.Initialize(flags.seed);
        const TrainSummary s = Train(model, theta, train, test,
                                     examples::TwoDimensionalTraining(flags.epochs, flags.seed));

        Row r;
        r.model = ModelKindName(spec.kind);
        r.continuity = ContinuityClass(spec.kind);
        r.width = spec.width;
        r.parameters = s.parameters;
        r.test_accuracy = s.test_accuracy;
        r.train_accuracy = s.train_accuracy;
        r.wall_seconds = s.wall_seconds;
        r.action = FlowAction(model, theta, test.features);
        r.fisher_rao_norm = Fisher(model, theta, test.features, test.labels.data()).fisher_rao_norm;

        const std::string dir =
            (std::filesystem::path(flags.out) / (r.model + "-w" + std::to_string(r.width)))
                .string();
        EnsureOutputDirectory(dir, "--out");
        WriteTwoDimensionalSummary(AsPlaneClassifier(model, theta), test, dir, 400);
        const StoredPaths stored =
            ReadPaths((std::filesystem::path(dir) / "trajectories.h5").string());
        {
          // The file against the model: the same states, recomputed.
          const Index n = static_cast<Index>(stored.lines.size());
          const std::vector<Matrix> paths =
              model.Paths(theta, test.features.leftCols(n), static_cast<int>(stored.depth_points));
          const h5::Reader in((std::filesystem::path(dir) / "trajectories.h5").string());
          const std::vector<double> states = in.ReadDoubles("states");
          for (std::size_t t = 0; t < paths.size(); ++t) {
            const Eigen::Map<const Matrix> file(states.data() + t * n * stored.width, stored.width,
                                                n);
            r.file_vs_paths = std::max(r.file_vs_paths, (file - paths[t]).cwiseAbs().maxCoeff());
          }
        }
        rows.push_back(r);
        std::cerr << r.model << " W=" << r.width << ": " << s.BriefReport() << "  action "
                  << r.action << "\n";

        plot::Axes& ax = fig.At(static_cast<int>(wi), static_cast<int>(ki));
        char title[160];
        std::snprintf(title, sizeof(title), "%s (%s), W = %d: acc %.3f, action %.3g",
                      r.model.c_str(), r.continuity.c_str(), r.width, r.test_accuracy, r.action);
        ax.SetTitle(title);
        ax.SetXLabel(stored.width == 2 ? "h₁" : "PC 1")
            .SetYLabel(stored.width == 2 ? "h₂" : "PC 2");
        std::vector<plot::Color> colors;
        const Index n = static_cast<Index>(stored.lines.size());
        Vector x0(n), y0(n), x1(n), y1(n);
        for (Index i = 0; i < n; ++i) {
          const Matrix& line = stored.lines[static_cast<std::size_t>(i)];
          colors.push_back(plot::CategoricalColor(stored.labels[i]));
          x0[i] = line(0, 0);
          y0[i] = line(0, 1);
          x1[i] = line(line.rows() - 1, 0);
          y1[i] = line(line.rows() - 1, 1);
        }
        ax.Paths(stored.lines, {.width = 0.7, .alpha = 0.3}, colors);
        // One legend for the figure, in the first panel.
        const bool legend = wi == 0 && ki == 0;
        ax.Scatter(x0, y0,
                   {.color = plot::Color{0.45, 0.45, 0.45, 1.0},
                    .radius = 1.3,
                    .label = legend ? "input features h₀" : ""});
        ax.ScatterClasses(x1, y1, stored.labels, {.radius = 2.0},
                          legend
                              ? std::vector<std::string>{"class 0, final h_L", "class 1, final h_L"}
                              : std::vector<std::string>{});
        if (stored.width == 2) {
          // The read-out's decision line {h : (r₁ − r₀)·h + (b₁ − b₀) = 0} in the plane of the
          // flow.
          Eigen::Vector2d w = Eigen::Vector2d::Zero();
          double b = 0.0;
          for (const Classifier::Block& block : model.Blocks()) {
            if (block.name.rfind("readout/", 0) != 0) continue;
            if (block.name.ends_with("/weight")) {  // 2 × 2, row-major
              w << theta[block.offset + 2] - theta[block.offset + 0],
                  theta[block.offset + 3] - theta[block.offset + 1];
            } else if (block.name.ends_with("/bias")) {
              b = theta[block.offset + 1] - theta[block.offset];
            }
          }
          double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
          for (const Matrix& line : stored.lines) {
            xmin = std::min(xmin, line.col(0).minCoeff());
            xmax = std::max(xmax, line.col(0).maxCoeff());
            ymin = std::min(ymin, line.col(1).minCoeff());
            ymax = std::max(ymax, line.col(1).maxCoeff());
          }
          const double px = 0.05 * (xmax - xmin), py = 0.05 * (ymax - ymin);
          ax.SetLimits(xmin - px, xmax + px, ymin - py, ymax + py);
          const double cx = 0.5 * (xmin + xmax), cy = 0.5 * (ymin + ymax);
          const double span = 4.0 * std::max(xmax - xmin, ymax - ymin);
          if (w.norm() > 0.0) {
            // Closest point of the line to the centre, then ± span along the line.
            const Eigen::Vector2d c(cx, cy);
            const Eigen::Vector2d foot = c - (w.dot(c) + b) / w.squaredNorm() * w;
            const Eigen::Vector2d dir(-w.y() / w.norm(), w.x() / w.norm());
            const Eigen::Vector2d a = foot - span * dir, e = foot + span * dir;
            ax.Line(std::vector<double>{a.x(), e.x()}, std::vector<double>{a.y(), e.y()},
                    {.color = plot::Color{0, 0, 0, 1},
                     .width = 1.4,
                     .dash = {6, 4},
                     .label = legend ? "read-out boundary" : ""});
          }
        }
        ax.SetLegendPosition(plot::LegendPosition::kBest);
      }
    }
    fig.SavePng((std::filesystem::path(flags.out) / "untangling.png").string());

    std::ostringstream table;
    table << "| model | continuity | width W | parameters | action | Fisher–Rao norm | test "
             "accuracy | train accuracy | training time [s] "
             "|\n|---|---|---|---|---|---|---|---|---|\n";
    nlohmann::ordered_json json = nlohmann::ordered_json::array();
    for (const Row& r : rows) {
      char line[384];
      std::snprintf(line, sizeof(line),
                    "| %s | %s | %d | %ld | %.4g | %.3g | %.4f | %.4f | %.2f |\n", r.model.c_str(),
                    r.continuity.c_str(), r.width, static_cast<long>(r.parameters), r.action,
                    r.fisher_rao_norm, r.test_accuracy, r.train_accuracy, r.wall_seconds);
      table << line;
      json.push_back({{"model", r.model},
                      {"continuity", r.continuity},
                      {"width", r.width},
                      {"parameters", r.parameters},
                      {"action", r.action},
                      {"fisher_rao_norm", r.fisher_rao_norm},
                      {"test_accuracy", r.test_accuracy},
                      {"train_accuracy", r.train_accuracy},
                      {"wall_seconds", r.wall_seconds},
                      {"trajectories_h5_max_abs_difference", r.file_vs_paths}});
    }
    std::cout << table.str();
    examples::WriteTable(flags.out, "untangling", table.str(), json.dump(2));
    std::cout << "wrote " << flags.out << "/untangling.png, untangling.md, untangling.json\n";
    return 0;
  });
}
