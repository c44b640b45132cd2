// Figures written as PNG files with cairo: a grid of panels (Axes), each with a frame, "nice" tick
// marks and labels on both axes, a title, and the layers drawn into it: images through a colour map
// (with a colour bar), lines, scatter points, many particle paths, deformed grids, iso-contours,
// metric ellipses, text, and a legend.
//
// Usage:
//   plot::Figure fig(1, 3, 360, 320);               // 1 row, 3 panels of 360 x 320 px each
//   fig.SetTitle("LDDMM: moving -> fixed");
//   plot::Axes& ax = fig.At(0, 0);
//   ax.SetTitle("moving").SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
//   ax.Image(moving, {0, 64, 0, 64}, {.colormap = plot::Colormap::kGray, .colorbar_label = "I"});
//   fig.At(0, 1).Grid(phi_x, phi_y, 4);
//   fig.At(0, 2).Line(t, speed, {.label = "LDDMM"});
//   fig.SavePng("out/summary.png");                 // atomic: temp name beside it, then rename
// Options structs are aggregates: designated initializers must follow declaration order.
// examples/plot_gallery.cc draws every element.
//
// Conventions.
//  * Layers are drawn in call order (an Image first, then contours, paths, points on top), clipped
//    to the panel's plot area. One colour bar per panel: the last Image with colorbar = true, or
//    the last Colorbar call.
//  * Data coordinates: x to the right, y upwards (mathematical). Set Origin::kUpper on an image to
//    put matrix row 0 at the top (the image convention); the y axis then still increases upwards,
//    so pass the extent in world units (e.g. ymin = 0 at the bottom row of the picture).
//  * A matrix `values` has rows = y samples and cols = x samples. Its Extent is the outer edge of
//    the outermost pixels, so sample (i, j) sits at the centre of its pixel cell:
//      x_j = xmin + (j + 1/2)(xmax - xmin)/cols,   y_i = ymin + (i + 1/2)(ymax - ymin)/rows
//    for Origin::kLower (row i counted from the bottom; from the top for kUpper).
//  * Non-finite values (NaN, ±Inf) in an image are drawn in BadColor(); they are ignored when
//    vmin / vmax are chosen from the data and by Contour (no segment crosses a non-finite sample).
//  * Pixel size of the saved PNG: Width() = cols * panel_width_px,
//    Height() = rows * panel_height_px + (title set ? kFigureTitleHeightPx : 0).
//  * Fonts: cairo's toy text API with "DejaVu Sans".
//
// Errors: size mismatches and invalid arguments throw diffeoflow::InputError naming the call and
// what was expected; SavePng throws InputError naming the path when it cannot be written (missing
// folder, read-only) and leaves no file under that name.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace diffeoflow::plot {

// RGBA, each channel in [0, 1].
struct Color {
  double r = 0.0;
  double g = 0.0;
  double b = 0.0;
  double a = 1.0;

  Color WithAlpha(double alpha) const { return {r, g, b, alpha}; }
  // From 0xRRGGBB.
  static Color FromHex(std::uint32_t rgb, double alpha = 1.0);
};

// Categorical palette of 10 distinguishable colours (blue, orange, green, red, purple, brown, pink,
// grey, olive, cyan); the index wraps around, negative indices are taken modulo 10.
Color CategoricalColor(int index);
inline constexpr int kCategoricalColorCount = 10;

// Continuous colour maps, each a piecewise-linear interpolation in sRGB between a handful of
// control points. kGray, kViridis and kMagma are monotone in luminance (sequential);
// kCoolwarm is diverging (blue -> light grey -> red) with the light centre at t = 1/2.
enum class Colormap { kGray, kViridis, kMagma, kCoolwarm };

// The colour at t in [0, 1] (clamped). Non-finite t gives BadColor().
Color MapColor(Colormap colormap, double t);
// The colour of `value` on the scale [vmin, vmax]: MapColor(colormap, (value - vmin)/(vmax - vmin)).
// When vmax <= vmin every finite value maps to the middle of the map.
Color MapValue(Colormap colormap, double value, double vmin, double vmax);
// Colour of non-finite samples (a magenta that none of the maps contains).
Color BadColor();
// Relative luminance 0.2126 R + 0.7152 G + 0.0722 B of the linearised sRGB channels.
double Luminance(const Color& color);

// "Nice" tick values for an axis spanning [lo, hi]: multiples of a step 1, 2, 2.5 or 5 × 10^k chosen
// so that about `target_count` ticks (at least 2) fall inside [lo, hi]. Only ticks inside the range
// (up to a tolerance of 1e-9 of the step) are returned, in increasing order. lo == hi gives a range
// around the value. Throws InputError for non-finite bounds or lo > hi.
std::vector<double> NiceTicks(double lo, double hi, int target_count = 5);
// Ticks for a logarithmic axis on [lo, hi] (lo > 0): powers of ten, or 1-2-5 × 10^k when the range
// spans less than two decades.
std::vector<double> LogTicks(double lo, double hi);
// A tick label: the shortest decimal that distinguishes ticks `step` apart ("0.25", "-3", "1e-05"
// for very small or large magnitudes). Negative zero prints as "0".
std::string FormatTick(double value, double step);

// Data rectangle [xmin, xmax] x [ymin, ymax].
struct Extent {
  double xmin = 0.0;
  double xmax = 1.0;
  double ymin = 0.0;
  double ymax = 1.0;
};

// Which end of the y axis matrix row 0 is drawn at.
enum class Origin {
  kLower,  // row 0 at ymin (bottom): mathematical convention, e.g. values sampled on a grid
  kUpper,  // row 0 at ymax (top): image convention, e.g. a picture read from PNG
};

// Look of a line / marker series. `color` unset: the next colour of the panel's categorical cycle.
struct Style {
  std::optional<Color> color = std::nullopt;
  double width = 0.0;          // line width in px; 0 = the layer's default (Line 1.8, Grid 0.9,
                               // Paths 1.0, Contour 1.8, Ellipse 1.3)
  std::vector<double> dash = {};  // dash pattern in px (on, off, ...); empty = solid
  double radius = 3.0;         // marker radius in px (Scatter; Line draws markers if marker = true)
  bool marker = false;         // Line: also draw a dot at each point
  double alpha = 1.0;          // multiplies the colour's alpha
  std::string label = {};      // legend entry; empty = not in the legend
};

struct ImageOptions {
  Colormap colormap = Colormap::kViridis;
  // Colour scale. NaN: the finite minimum / maximum of the data.
  double vmin = std::numeric_limits<double>::quiet_NaN();
  double vmax = std::numeric_limits<double>::quiet_NaN();
  bool colorbar = true;
  std::string colorbar_label = {};
  Origin origin = Origin::kLower;
  // true: bilinear smoothing between samples; false: each sample a flat pixel cell.
  bool smooth = false;
};

enum class Anchor { kLeft, kCenter, kRight };

struct TextStyle {
  double size = 12.0;  // font size in px
  Color color = {0.1, 0.1, 0.1, 1.0};
  Anchor anchor = Anchor::kLeft;
  bool bold = false;
  bool background = false;  // a translucent white box behind the text for legibility
};

enum class LegendPosition { kBest, kUpperRight, kUpperLeft, kLowerRight, kLowerLeft };

// One panel. Obtained from Figure::At; the reference stays valid for the figure's lifetime.
// Setters return *this to chain. Limits default to the union of the data of all layers (images
// exactly; lines, points, paths, grids and ellipses with a 5% margin unless they lie inside an
// image); SetLimits overrides them. Contours and text do not widen the limits.
class Axes {
 public:
  Axes();
  ~Axes();
  Axes(const Axes&) = delete;
  Axes& operator=(const Axes&) = delete;

  Axes& SetTitle(const std::string& title);
  Axes& SetXLabel(const std::string& label);
  Axes& SetYLabel(const std::string& label);
  Axes& SetLimits(double xmin, double xmax, double ymin, double ymax);
  Axes& SetXLimits(double xmin, double xmax);
  Axes& SetYLimits(double ymin, double ymax);
  // One data unit is as long on screen in x as in y (the plot area shrinks to fit).
  Axes& SetEqualAspect(bool equal = true);
  // Logarithmic y axis; non-positive y values are dropped from lines and points.
  Axes& SetLogY(bool log = true);
  // Light grid lines at the major ticks.
  Axes& SetGridLines(bool grid = true);
  Axes& SetLegendPosition(LegendPosition position);

  // A matrix drawn through a colour map into `extent` (see conventions above); optional colour bar
  // on the right of the panel. Throws InputError for an empty matrix or an empty extent.
  void Image(const Eigen::MatrixXd& values, const Extent& extent, const ImageOptions& options = {});

  // A polyline through (xs[i], ys[i]); non-finite points break the line.
  void Line(const Eigen::VectorXd& xs, const Eigen::VectorXd& ys, const Style& style = {});
  void Line(const std::vector<double>& xs, const std::vector<double>& ys, const Style& style = {});
  // Filled dots of style.radius px.
  void Scatter(const Eigen::VectorXd& xs, const Eigen::VectorXd& ys, const Style& style = {});
  // Dots with one colour each (colors.size() == xs.size()); style.color only sets the legend swatch.
  void Scatter(const Eigen::VectorXd& xs, const Eigen::VectorXd& ys, const Style& style,
               const std::vector<Color>& colors);
  // Dots coloured by class: CategoricalColor(labels[i]). When class_names is non-empty, class k
  // appears in the legend as class_names[k].
  void ScatterClasses(const Eigen::VectorXd& xs, const Eigen::VectorXd& ys,
                      const Eigen::VectorXi& labels, const Style& style = {},
                      const std::vector<std::string>& class_names = {});

  // Many paths (e.g. particle trajectories), each a k x 2 matrix of (x, y) rows, drawn with the
  // same style (use a small alpha for many paths). Throws InputError if a path has != 2 columns.
  void Paths(const std::vector<Eigen::MatrixXd>& paths, const Style& style = {});
  // Same, with one colour per path (colors.size() == paths.size()), e.g. by class label.
  void Paths(const std::vector<Eigen::MatrixXd>& paths, const Style& style,
             const std::vector<Color>& colors);

  // A deformed grid: node (i, j) sits at (X(i, j), Y(i, j)); lines join neighbouring nodes along
  // every `stride`-th row and every `stride`-th column (the last row/column is always drawn).
  // X and Y must have the same shape, at least 2 x 2; stride >= 1. Default colour: dark grey.
  void Grid(const Eigen::MatrixXd& X, const Eigen::MatrixXd& Y, int stride = 1,
            const Style& style = {});

  // The iso-line {values = level} by marching squares over the sample centres (see conventions),
  // with linear interpolation along cell edges; ambiguous saddle cells are resolved by the cell
  // mean. Default colour: black.
  void Contour(const Eigen::MatrixXd& values, const Extent& extent, double level,
               const Style& style = {}, Origin origin = Origin::kLower);

  // The metric ellipse {x : (x - center)ᵀ G (x - center) = scale²} of a symmetric positive definite
  // 2 x 2 matrix G: semi-axes scale / sqrt(λ_k) along G's eigenvectors. Throws InputError if G is
  // not symmetric positive definite. Default colour: black, no fill; style.alpha < 1 also fills.
  void Ellipse(const Eigen::Vector2d& center, const Eigen::Matrix2d& metric, double scale = 1.0,
               const Style& style = {});

  // Text at data point (x, y).
  void Text(double x, double y, const std::string& text, const TextStyle& style = {});

  // A colour bar for a scale not tied to an image (e.g. scatter coloured by value).
  void Colorbar(Colormap colormap, double vmin, double vmax, const std::string& label = "");

  // Draws the legend of all labelled series (it is drawn anyway when any series has a label;
  // calling this only fixes the position).
  void Legend(LegendPosition position = LegendPosition::kBest);

  // Implementation detail: the recorded layers and settings (defined in figure.cc).
  struct State;
  State& state() { return *state_; }
  const State& state() const { return *state_; }

 private:
  std::unique_ptr<State> state_;
};

inline constexpr int kFigureTitleHeightPx = 36;

// A rows x cols grid of panels, each panel_width_px x panel_height_px (including its own margins
// for tick labels, title and colour bar).
class Figure {
 public:
  // Throws InputError unless rows, cols >= 1 and panel sizes are in [80, 4000] px.
  Figure(int rows, int cols, int panel_width_px = 420, int panel_height_px = 360);
  ~Figure();
  Figure(const Figure&) = delete;
  Figure& operator=(const Figure&) = delete;

  Figure& SetTitle(const std::string& title);
  // The panel in row r, column c (0-based). Throws InputError when out of range.
  Axes& At(int row, int col);

  int Width() const;
  int Height() const;

  // Where a data point of panel (row, col) lands in PNG pixels (x to the right, y downwards); for
  // annotating a saved figure and for tests. Throws like At.
  Eigen::Vector2d DataToPixel(int row, int col, double x, double y) const;

  // Renders and writes the PNG atomically (temporary file beside `path`, then rename).
  // Throws InputError naming `path` on failure; no file is left under `path` or the temporary name.
  void SavePng(const std::string& path) const;

 private:
  const Axes& PanelAt(int row, int col) const;

  int rows_;
  int cols_;
  int panel_width_px_;
  int panel_height_px_;
  std::string title_;
  std::vector<std::unique_ptr<Axes>> axes_;
};

}  // namespace diffeoflow::plot
