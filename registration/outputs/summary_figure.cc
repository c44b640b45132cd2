#include "registration/outputs/summary_figure.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>
#include <vector>

#include "plot/figure.h"
#include "solvers/errors.h"

namespace diffeoflow::registration {

Eigen::MatrixXd MidSlice(const Grid& grid, const double* values) {
  const int k = grid.dim == 3 ? grid.size[2] / 2 : 0;
  Eigen::MatrixXd slice(grid.size[1], grid.size[0]);
  for (int j = 0; j < grid.size[1]; ++j) {
    for (int i = 0; i < grid.size[0]; ++i) slice(j, i) = values[grid.index(i, j, k)];
  }
  return slice;
}

namespace {

plot::Extent ExtentOf(const Grid& g) {
  return {0.0, g.size[0] * g.spacing_mm[0], 0.0, g.size[1] * g.spacing_mm[1]};
}

}  // namespace

void DeformedGridPanel(plot::Axes& ax, const Grid& g, const Eigen::VectorXd& fixed,
                       const Eigen::VectorXd& phi, const std::string& title, double vmin,
                       double vmax, const plot::Style& style) {
  ax.SetTitle(title).SetXLabel("x [mm]").SetYLabel("y [mm]");
  plot::ImageOptions io;
  io.colormap = plot::Colormap::kGray;
  io.origin = plot::Origin::kUpper;
  io.colorbar = false;
  io.vmin = vmin - 2.0 * (vmax - vmin);
  io.vmax = vmax;
  ax.Image(MidSlice(g, fixed.data()), ExtentOf(g), io);
  // φ(x) of the mid slice in mm, drawn with y down like the images.
  const Eigen::Index n = g.voxels();
  const Eigen::MatrixXd px = MidSlice(g, phi.data());
  const Eigen::MatrixXd py = MidSlice(g, phi.data() + n);
  const double height = g.size[1] * g.spacing_mm[1];
  Eigen::MatrixXd X = (px.array() + 0.5) * g.spacing_mm[0];
  Eigen::MatrixXd Y = height - (py.array() + 0.5) * g.spacing_mm[1];
  const int stride = std::max(1, std::max(g.size[0], g.size[1]) / 32);
  ax.Grid(X, Y, stride, style);
  ax.SetLimits(0, g.size[0] * g.spacing_mm[0], 0, height).SetEqualAspect();
}

void ImagePanel(plot::Axes& ax, const Grid& g, const Eigen::VectorXd& values,
                const std::string& title, double vmin, double vmax) {
  ax.SetTitle(title).SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
  plot::ImageOptions io;
  io.colormap = plot::Colormap::kGray;
  io.vmin = vmin;
  io.vmax = vmax;
  io.origin = plot::Origin::kUpper;
  io.colorbar_label = "intensity";
  ax.Image(MidSlice(g, values.data()), ExtentOf(g), io);
}

void WriteSummaryFigure(const std::string& path, const RegistrationResult& r, const Image& moving,
                        const Image& fixed) {
  const Grid& g = r.grid;
  const double vmin = std::min(moving.data.minCoeff(), fixed.data.minCoeff());
  const double vmax = std::max(moving.data.maxCoeff(), fixed.data.maxCoeff());
  plot::Figure fig(1, 5, 360, 330);
  char title[256];
  std::snprintf(title, sizeof(title),
                "%s: SSD reduction %.2f%%, det Dphi in [%.3f, %.3f], %.2f s%s",
                r.method == RegistrationMethod::kShooting ? "Geodesic shooting" : "LDDMM (GD on v_t)",
                100.0 * r.ssd_reduction(), r.min_jacobian, r.max_jacobian, r.wall_seconds,
                g.dim == 3 ? " (mid z-slice)" : "");
  fig.SetTitle(title);
  ImagePanel(fig.At(0, 0), g, moving.data, "moving", vmin, vmax);
  ImagePanel(fig.At(0, 1), g, fixed.data, "fixed", vmin, vmax);
  ImagePanel(fig.At(0, 2), g, r.warped.data, "warped (moving o phi)", vmin, vmax);
  {
    plot::Style style;
    style.color = plot::Color::FromHex(0x1f4e9c);
    style.width = 0.8;
    DeformedGridPanel(fig.At(0, 3), g, fixed.data, r.phi, "deformed grid phi(x)", vmin, vmax,
                      style);
  }
  {
    plot::Axes& ax = fig.At(0, 4);
    ax.SetTitle("det Dphi").SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
    plot::ImageOptions io;
    io.colormap = plot::Colormap::kCoolwarm;
    const double spread = std::max(std::abs(std::log(std::max(r.min_jacobian, 1e-3))),
                                   std::abs(std::log(std::max(r.max_jacobian, 1e-3))));
    Eigen::MatrixXd log_jac = MidSlice(g, r.jacobian.data.data()).array().max(1e-6).log();
    io.vmin = -spread;
    io.vmax = spread;
    io.origin = plot::Origin::kUpper;
    io.colorbar_label = "log det Dphi";
    ax.Image(log_jac, ExtentOf(g), io);
  }
  fig.SavePng(path);
}

namespace {

// Six significant digits, for figure titles.
std::string Number(double value) {
  std::ostringstream out;
  out << std::setprecision(6) << value;
  return out.str();
}

// Packed point-major coordinates (q_i contiguous) → N × dim rows.
Matrix Unpack(const Vector& packed, int dim) {
  return Eigen::Map<const Matrix>(packed.data(), dim, packed.size() / dim).transpose();
}

}  // namespace

void WriteLandmarkSummaryFigure(const std::string& path, const LandmarkMatchingResult& result) {
  if (result.dim != 2) throw InputError(path + ": summary.png is drawn for 2-D landmarks only");
  const Eigen::Index n = result.source.rows();
  // Deformed grid over the shapes' bounding box, with a margin.
  Eigen::RowVector2d lo = result.source.colwise().minCoeff().cwiseMin(result.target.colwise().minCoeff());
  Eigen::RowVector2d hi = result.source.colwise().maxCoeff().cwiseMax(result.target.colwise().maxCoeff());
  const Eigen::RowVector2d margin = 0.25 * (hi - lo).cwiseMax(1e-3);
  lo -= margin;
  hi += margin;
  const int cells = 24;
  Matrix nodes((cells + 1) * (cells + 1), 2);
  for (int r = 0; r <= cells; ++r) {
    for (int c = 0; c <= cells; ++c) {
      nodes.row(r * (cells + 1) + c) << lo.x() + (hi.x() - lo.x()) * c / cells,
          lo.y() + (hi.y() - lo.y()) * r / cells;
    }
  }
  const Matrix moved = CarryAlongMatch(result, nodes).back();
  Matrix X(cells + 1, cells + 1), Y(cells + 1, cells + 1);
  for (int r = 0; r <= cells; ++r) {
    for (int c = 0; c <= cells; ++c) {
      X(r, c) = moved(r * (cells + 1) + c, 0);
      Y(r, c) = moved(r * (cells + 1) + c, 1);
    }
  }
  std::vector<Eigen::MatrixXd> paths(static_cast<std::size_t>(n), Matrix(result.times.size(), 2));
  for (std::size_t k = 0; k < result.times.size(); ++k) {
    for (Eigen::Index i = 0; i < n; ++i) {
      paths[i].row(k) << result.positions[k][2 * i], result.positions[k][2 * i + 1];
    }
  }
  const Matrix matched = Unpack(result.positions.back(), 2);
  const auto closed = [](const Eigen::VectorXd& v) {
    Eigen::VectorXd out(v.size() + 1);
    out << v, v[0];
    return out;
  };

  plot::Figure fig(1, 3, 420, 400);
  fig.SetTitle("match-landmarks (" + LandmarkMethodName(result.method) + "): residual rms " +
               Number(result.residual_rms) + ", kinetic energy " + Number(result.kinetic_energy));
  plot::Axes& shapes = fig.At(0, 0);
  shapes.SetTitle("shapes and landmark paths").SetXLabel("x").SetYLabel("y").SetEqualAspect();
  shapes.Paths(paths, {.color = plot::Color{0.45, 0.45, 0.45, 1.0}, .width = 1.0});
  shapes.Line(closed(result.source.col(0)), closed(result.source.col(1)),
              {.color = plot::CategoricalColor(0), .width = 1.5, .marker = true, .label = "source"});
  shapes.Line(closed(result.target.col(0)), closed(result.target.col(1)),
              {.color = plot::CategoricalColor(1), .width = 1.5, .marker = true, .label = "target"});
  shapes.Scatter(matched.col(0), matched.col(1),
                 {.color = plot::CategoricalColor(2), .radius = 2.0, .label = "q(1)"});

  plot::Axes& grid = fig.At(0, 1);
  grid.SetTitle("deformed grid φ₁, target, q(1)").SetXLabel("x").SetYLabel("y").SetEqualAspect();
  grid.Grid(X, Y, 1);
  grid.Line(closed(result.target.col(0)), closed(result.target.col(1)),
            {.color = plot::CategoricalColor(1), .width = 1.5});
  grid.Scatter(matched.col(0), matched.col(1), {.color = plot::CategoricalColor(2), .radius = 2.0});

  plot::Axes& speed = fig.At(0, 2);
  speed.SetTitle("speed along the path").SetXLabel("t").SetYLabel("‖v_t‖_V").SetGridLines();
  speed.Line(result.times, result.velocity_norm_per_time,
             {.color = plot::CategoricalColor(3), .marker = true, .label = "‖v_t‖_V"});
  double vmax = 0.0;
  for (double v : result.velocity_norm_per_time) vmax = std::max(vmax, v);
  speed.SetYLimits(0.0, 1.15 * std::max(vmax, 1e-12));
  fig.SavePng(path);
}

}  // namespace diffeoflow::registration
