// Draws one figure with every element of the plot library (images with colour bars, deformed grid,
// contours, lines with legend, logarithmic axis, class scatter, particle paths, metric ellipses,
// text) into the PNG given as argv[1]. Usage: example_plot_gallery out.png
#include <Eigen/Core>
#include <cmath>
#include <exception>
#include <iostream>
#include <numbers>
#include <vector>

#include "plot/figure.h"

namespace plot = diffeoflow::plot;

namespace {

// A smooth test deformation φ(x) = x + u(x) on [0, 64]^2 (a swirl about the centre).
Eigen::Vector2d Swirl(double x, double y) {
  const double cx = x - 32.0, cy = y - 32.0;
  const double angle = 0.9 * std::exp(-(cx * cx + cy * cy) / (2.0 * 12.0 * 12.0));
  return {32.0 + std::cos(angle) * cx - std::sin(angle) * cy,
          32.0 + std::sin(angle) * cx + std::cos(angle) * cy};
}

void Draw(const std::string& path) {
  plot::Figure fig(2, 3, 420, 360);
  fig.SetTitle("diffeoflow plot gallery");
  const int n = 64;

  // Moving image: an off-centre ellipse, in the image convention (row 0 at the top).
  Eigen::MatrixXd moving(n, n), jacobian(n, n), X(n, n), Y(n, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double x = j + 0.5, y = n - (i + 0.5);
      const double r2 = std::pow((x - 26.0) / 16.0, 2) + std::pow((y - 36.0) / 10.0, 2);
      moving(i, j) = 1.0 / (1.0 + std::exp(12.0 * (r2 - 1.0)));
      if (i == 10 && j > 40 && j < 50) moving(i, j) = std::numeric_limits<double>::quiet_NaN();
    }
  }
  // Deformed grid nodes and a Jacobian determinant by central differences (row = y, bottom up).
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const Eigen::Vector2d p = Swirl(j + 0.5, i + 0.5);
      X(i, j) = p.x();
      Y(i, j) = p.y();
    }
  }
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double h = 0.5, x = j + 0.5, y = i + 0.5;
      const Eigen::Vector2d dx = (Swirl(x + h, y) - Swirl(x - h, y)) / (2 * h);
      const Eigen::Vector2d dy = (Swirl(x, y + h) - Swirl(x, y - h)) / (2 * h);
      // Add a compression blob so that the map shows both sides of 1.
      const double r2 = std::pow(x - 44.0, 2) + std::pow(y - 20.0, 2);
      jacobian(i, j) = (dx.x() * dy.y() - dx.y() * dy.x()) - 1.3 * std::exp(-r2 / 40.0) +
                       0.6 * std::exp(-(std::pow(x - 18, 2) + std::pow(y - 46, 2)) / 60.0);
    }
  }

  plot::Axes& a = fig.At(0, 0);
  a.SetTitle("moving image").SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
  a.Image(moving, {0, 64, 0, 64},
          {.colormap = plot::Colormap::kGray, .colorbar_label = "intensity",
           .origin = plot::Origin::kUpper});
  a.Text(4, 58, "NaN = magenta", {.size = 11, .background = true});

  plot::Axes& b = fig.At(0, 1);
  b.SetTitle("deformed grid φ").SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
  b.Grid(X, Y, 4);

  plot::Axes& c = fig.At(0, 2);
  c.SetTitle("Jacobian determinant").SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
  c.Image(jacobian, {0, 64, 0, 64},
          {.colormap = plot::Colormap::kCoolwarm, .vmin = -0.5, .vmax = 2.5,
           .colorbar_label = "det Dφ"});
  c.Contour(jacobian, {0, 64, 0, 64}, 0.0, {.color = plot::Color{0, 0, 0, 1}, .label = "det Dφ = 0"});
  c.Contour(jacobian, {0, 64, 0, 64}, 1.0,
            {.color = plot::Color{0.2, 0.2, 0.2, 1}, .width = 1.2, .dash = {4, 3}, .label = "det Dφ = 1"});

  // Speed and loss curves of two methods.
  std::vector<double> t, v1, v2, it, l1, l2;
  for (int k = 0; k <= 20; ++k) {
    t.push_back(k / 20.0);
    v1.push_back(3.1 + 0.02 * std::sin(6.0 * k / 20.0));
    v2.push_back(2.2 + 1.6 * std::pow(k / 20.0 - 0.5, 2) * 4.0 / 2.0);
  }
  for (int k = 0; k < 150; ++k) {
    it.push_back(k);
    l1.push_back(2.0 * std::exp(-k / 18.0) + 1e-3);
    l2.push_back(2.0 / (1.0 + 0.3 * k) + 2e-3);
  }
  plot::Axes& d = fig.At(1, 0);
  d.SetTitle("velocity norm along the path").SetXLabel("t").SetYLabel("‖v_t‖_V").SetGridLines();
  d.Line(t, v1, {.marker = true, .label = "EPDiff shooting"});
  d.Line(t, v2, {.dash = {6, 3}, .label = "velocity-field LDDMM"});

  plot::Axes& e = fig.At(1, 1);
  e.SetTitle("loss").SetXLabel("iteration").SetYLabel("E(v)").SetLogY().SetGridLines();
  e.Line(it, l1, {.label = "L-BFGS"});
  e.Line(it, l2, {.label = "gradient descent"});

  // Decision regions, particle paths and metric ellipses.
  const int m = 80;
  Eigen::MatrixXd probability(m, m), logvol(m, m);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) {
      const double x = -2.0 + 4.0 * (j + 0.5) / m, y = -2.0 + 4.0 * (i + 0.5) / m;
      probability(i, j) = 1.0 / (1.0 + std::exp(-4.0 * (x * x + y * y - 1.2)));
    }
  }
  Eigen::VectorXd xs(60), ys(60);
  Eigen::VectorXi labels(60);
  std::vector<Eigen::MatrixXd> paths;
  std::vector<plot::Color> path_colors;
  for (int k = 0; k < 60; ++k) {
    const double angle = 2.0 * std::numbers::pi * k / 30.0;
    const double radius = k < 30 ? 0.55 : 1.6;
    xs[k] = radius * std::cos(angle);
    ys[k] = radius * std::sin(angle);
    labels[k] = k < 30 ? 0 : 1;
    Eigen::MatrixXd p(20, 2);
    for (int s = 0; s < 20; ++s) {
      const double u = s / 19.0, r = radius * (1.0 + (k < 30 ? -0.5 : 0.15) * (1.0 - u));
      p(s, 0) = r * std::cos(angle - 0.6 * (1.0 - u));
      p(s, 1) = r * std::sin(angle - 0.6 * (1.0 - u));
    }
    paths.push_back(p);
    path_colors.push_back(plot::CategoricalColor(labels[k]));
  }
  plot::Axes& f = fig.At(1, 2);
  f.SetTitle("decision regions").SetXLabel("x₁").SetYLabel("x₂").SetEqualAspect();
  f.Image(probability, {-2, 2, -2, 2},
          {.colormap = plot::Colormap::kCoolwarm, .vmin = 0, .vmax = 1, .colorbar_label = "p(class 1)",
           .smooth = true});
  f.Contour(probability, {-2, 2, -2, 2}, 0.5, {.color = plot::Color{0, 0, 0, 1}, .width = 1.5});
  f.Paths(paths, {.width = 1.0, .alpha = 0.5}, path_colors);
  f.ScatterClasses(xs, ys, labels, {.radius = 3.5}, {"inner", "outer"});
  for (double x : {-1.0, 0.0, 1.0}) {
    Eigen::Matrix2d G;
    G << 40.0 + 30.0 * x * x, 10.0 * x, 10.0 * x, 40.0;
    f.Ellipse({x, 1.5}, G, 1.0, {.color = plot::Color{0.1, 0.1, 0.1, 1}, .alpha = 0.25});
  }
  f.Text(-1.9, 1.85, "metric ellipses", {.size = 10.5, .background = true});

  fig.SavePng(path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " out.png\n";
    return 2;
  }
  try {
    Draw(argv[1]);
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 2;
  }
  std::cout << "wrote " << argv[1] << "\n";
  return 0;
}
