#include "flows/summary_figure.h"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <filesystem>

#include "plot/figure.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"

namespace diffeoflow::flows {

PlaneClassifier AsPlaneClassifier(Classifier& model, const Vector& theta) {
  return {ModelKindName(model.spec().kind),
          [&model, &theta](const Matrix& x) { return model.Logits(theta, x); },
          [&model, &theta](const Matrix& x) { return model.Paths(theta, x); }, model.PathTimes()};
}

PlaneClassifier AsPlaneClassifier(const ShootingClassifier& model) {
  std::vector<double> times;
  for (int k = 0; k <= model.steps; ++k) times.push_back(static_cast<double>(k) / model.steps);
  return {"shooting", [&model](const Matrix& x) { return model.Logits(x); },
          [&model](const Matrix& x) { return model.Paths(x); }, times};
}

void WriteTwoDimensionalSummary(const PlaneClassifier& model, const Dataset& data,
                                const std::string& dir, int max_paths, int resolution) {
  if (data.feature_count() != 2) throw InputError("summary figure: the data must be 2-D");
  const Index n = std::min<Index>(data.size(), max_paths);
  const Matrix x = data.features.leftCols(n);
  const std::vector<Matrix> paths = model.paths(x);
  const std::vector<double>& times = model.times;
  const Index W = paths.front().rows();
  const Matrix logits = model.logits(x);

  // Projection onto the two leading principal directions of all states.
  Matrix projection = Matrix::Identity(W, 2);
  if (W > 2) {
    Vector mean = Vector::Zero(W);
    Index count = 0;
    for (const Matrix& h : paths) {
      mean += h.rowwise().sum();
      count += h.cols();
    }
    mean /= static_cast<double>(count);
    Matrix cov = Matrix::Zero(W, W);
    for (const Matrix& h : paths) {
      const Matrix c = h.colwise() - mean;
      cov.noalias() += c * c.transpose();
    }
    Eigen::SelfAdjointEigenSolver<Matrix> eig(cov);
    projection.col(0) = eig.eigenvectors().col(W - 1);
    projection.col(1) = eig.eigenvectors().col(W - 2);
  }

  // trajectories.h5
  {
    h5::Writer out((std::filesystem::path(dir) / "trajectories.h5").string());
    out.SetAttribute("/", "format", "diffeoflow-trajectory");
    out.SetAttribute("/", "version", std::int64_t{1});
    out.SetAttribute("/", "kind", "layers");
    const auto T = static_cast<std::uint64_t>(times.size());
    out.WriteDoubles("times", times.data(), {T});
    out.SetAttribute("times", "units", "depth (t ∈ [0, 1])");
    std::vector<double> states;
    for (const Matrix& h : paths) states.insert(states.end(), h.data(), h.data() + h.size());
    out.WriteDoubles("states", states.data(),
                     {T, static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(W)});
    out.SetAttribute("states", "units", "1");
    out.WriteDoubles("inputs", x.data(), {static_cast<std::uint64_t>(n), 2});
    std::vector<std::int64_t> labels(data.labels.begin(), data.labels.begin() + n), predicted;
    for (Index i = 0; i < n; ++i) {
      Index arg = 0;
      logits.col(i).maxCoeff(&arg);
      predicted.push_back(arg);
    }
    out.WriteInts("labels", labels.data(), {static_cast<std::uint64_t>(n)});
    out.WriteInts("predictions", predicted.data(), {static_cast<std::uint64_t>(n)});
    const Matrix projection_rows = projection;  // (W, 2) row-major below
    std::vector<double> p;
    for (Index i = 0; i < W; ++i) {
      p.push_back(projection_rows(i, 0));
      p.push_back(projection_rows(i, 1));
    }
    out.WriteDoubles("projection", p.data(), {static_cast<std::uint64_t>(W), 2});
    out.CreateGroup("options");
    out.SetAttribute("options", "model", model.name);
    out.SetAttribute("options", "dataset", data.name);
    out.Commit();
  }

  // Decision regions on a grid around the data.
  const double margin = 0.25;
  const double xmin = data.features.row(0).minCoeff() - margin,
               xmax = data.features.row(0).maxCoeff() + margin;
  const double ymin = data.features.row(1).minCoeff() - margin,
               ymax = data.features.row(1).maxCoeff() + margin;
  Matrix grid(2, static_cast<Index>(resolution) * resolution);
  for (int i = 0; i < resolution; ++i) {
    for (int j = 0; j < resolution; ++j) {
      grid(0, i * resolution + j) = xmin + (j + 0.5) * (xmax - xmin) / resolution;
      grid(1, i * resolution + j) = ymin + (i + 0.5) * (ymax - ymin) / resolution;
    }
  }
  const Matrix grid_logits = model.logits(grid);
  Matrix region(resolution, resolution);  // P(class 1) for two classes, else the arg-max class
  for (int i = 0; i < resolution; ++i) {
    for (int j = 0; j < resolution; ++j) {
      const Vector z = grid_logits.col(i * resolution + j);
      if (z.size() == 2) {
        region(i, j) = 1.0 / (1.0 + std::exp(z[0] - z[1]));
      } else {
        Index arg = 0;
        z.maxCoeff(&arg);
        region(i, j) = static_cast<double>(arg);
      }
    }
  }

  plot::Figure fig(1, 2, 480, 420);
  fig.SetTitle(model.name + " on " + data.name);
  plot::Axes& left = fig.At(0, 0);
  left.SetTitle("decision regions and test points").SetXLabel("x₁").SetYLabel("x₂");
  left.SetEqualAspect();
  const plot::Extent extent{xmin, xmax, ymin, ymax};
  const bool binary = logits.rows() == 2;
  left.Image(region, extent,
             {.colormap = plot::Colormap::kCoolwarm,
              .vmin = 0.0,
              .vmax = binary ? 1.0 : static_cast<double>(logits.rows() - 1),
              .colorbar = true,
              .colorbar_label = binary ? "P(class 1)" : "predicted class"});
  if (binary) left.Contour(region, extent, 0.5, {.width = 1.5});
  Eigen::VectorXi labels(n);
  for (Index i = 0; i < n; ++i) labels[i] = data.labels[static_cast<std::size_t>(i)];
  left.ScatterClasses(x.row(0).transpose(), x.row(1).transpose(), labels, {.radius = 2.5});

  plot::Axes& right = fig.At(0, 1);
  right.SetTitle(W > 2 ? "paths through depth (2 principal directions)" : "paths through depth");
  right.SetXLabel(W > 2 ? "PC 1" : "h₁").SetYLabel(W > 2 ? "PC 2" : "h₂");
  std::vector<Matrix> lines;
  std::vector<plot::Color> colors;
  for (Index i = 0; i < n; ++i) {
    Matrix line(static_cast<Index>(paths.size()), 2);
    for (std::size_t k = 0; k < paths.size(); ++k) {
      line.row(static_cast<Index>(k)) = paths[k].col(i).transpose() * projection;
    }
    lines.push_back(line);
    colors.push_back(plot::CategoricalColor(labels[i]));
  }
  right.Paths(lines, {.width = 0.8, .alpha = 0.35}, colors);
  Vector end_x(n), end_y(n);
  for (Index i = 0; i < n; ++i) {
    end_x[i] = lines[static_cast<std::size_t>(i)](lines[static_cast<std::size_t>(i)].rows() - 1, 0);
    end_y[i] = lines[static_cast<std::size_t>(i)](lines[static_cast<std::size_t>(i)].rows() - 1, 1);
  }
  right.ScatterClasses(end_x, end_y, labels, {.radius = 2.0, .label = ""},
                       {"class 0 (end)", "class 1 (end)"});
  fig.SavePng((std::filesystem::path(dir) / "summary.png").string());
}

}  // namespace diffeoflow::flows
