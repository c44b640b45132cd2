// Figure and Axes: records layers, lays panels out and renders them with cairo (figure.h).
#include "plot/figure.h"

#include <cairo.h>
#include <unistd.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <numbers>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>

#include "solvers/errors.h"

namespace diffeoflow::plot {
namespace {

constexpr const char* kFont = "DejaVu Sans";
constexpr double kTickFont = 11.0;
constexpr double kLabelFont = 12.5;
constexpr double kPanelTitleFont = 13.5;
constexpr double kFigureTitleFont = 17.0;
constexpr double kLegendFont = 11.0;
constexpr double kTickLength = 4.0;
const Color kInk = {0.13, 0.13, 0.13, 1.0};
const Color kFrameColor = {0.25, 0.25, 0.25, 1.0};

// A bounding box that grows with Add.
struct Box {
  double xmin = std::numeric_limits<double>::infinity();
  double xmax = -std::numeric_limits<double>::infinity();
  double ymin = std::numeric_limits<double>::infinity();
  double ymax = -std::numeric_limits<double>::infinity();
  bool Empty() const { return !(xmin <= xmax && ymin <= ymax); }
  void Add(double x, double y) {
    if (!std::isfinite(x) || !std::isfinite(y)) return;
    xmin = std::min(xmin, x);
    xmax = std::max(xmax, x);
    ymin = std::min(ymin, y);
    ymax = std::max(ymax, y);
  }
  void Add(const Box& other) {
    if (other.Empty()) return;
    Add(other.xmin, other.ymin);
    Add(other.xmax, other.ymax);
  }
};

// The mapping from data to pixels of one panel.
struct Frame {
  double px = 0.0, py = 0.0, pw = 1.0, ph = 1.0;  // plot area in pixels (py = top)
  double xmin = 0.0, xmax = 1.0, ymin = 0.0, ymax = 1.0;  // limits (log10 of y when log_y)
  bool log_y = false;

  // Non-finite result for points that cannot be drawn (non-positive y on a log axis).
  Eigen::Vector2d ToPixel(double x, double y) const {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    if (log_y) y = y > 0.0 ? std::log10(y) : nan;
    return {px + (x - xmin) / (xmax - xmin) * pw, py + ph - (y - ymin) / (ymax - ymin) * ph};
  }
};

void SetColor(cairo_t* cr, const Color& c, double alpha = 1.0) {
  cairo_set_source_rgba(cr, c.r, c.g, c.b, c.a * alpha);
}

void SelectFont(cairo_t* cr, double size, bool bold = false) {
  cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

double TextWidth(cairo_t* cr, const std::string& text, double size, bool bold = false) {
  SelectFont(cr, size, bold);
  cairo_text_extents_t extents;
  cairo_text_extents(cr, text.c_str(), &extents);
  return extents.x_advance;
}

// Draws `text` with its horizontal anchor at x and its vertical centre (cap height) at y.
void DrawText(cairo_t* cr, const std::string& text, double x, double y, double size,
              Anchor anchor, const Color& color, bool bold = false, double angle = 0.0) {
  if (text.empty()) return;
  SelectFont(cr, size, bold);
  cairo_text_extents_t extents;
  cairo_text_extents(cr, text.c_str(), &extents);
  const double dx = anchor == Anchor::kLeft     ? 0.0
                    : anchor == Anchor::kCenter ? -extents.x_advance / 2.0
                                                : -extents.x_advance;
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, angle);
  cairo_move_to(cr, dx, 0.36 * size);
  SetColor(cr, color);
  cairo_show_text(cr, text.c_str());
  cairo_restore(cr);
}

void ApplyLineStyle(cairo_t* cr, const Style& style, double default_width) {
  cairo_set_line_width(cr, style.width > 0.0 ? style.width : default_width);
  if (style.dash.empty()) {
    cairo_set_dash(cr, nullptr, 0, 0.0);
  } else {
    cairo_set_dash(cr, style.dash.data(), static_cast<int>(style.dash.size()), 0.0);
  }
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap(cr, style.dash.empty() ? CAIRO_LINE_CAP_ROUND : CAIRO_LINE_CAP_BUTT);
}

// Adds a polyline to the path, broken at points that are not finite after projection.
template <typename Get>
void AddPolyline(cairo_t* cr, const Frame& frame, Eigen::Index n, Get get) {
  bool pen_down = false;
  for (Eigen::Index i = 0; i < n; ++i) {
    const auto [x, y] = get(i);
    const Eigen::Vector2d p = frame.ToPixel(x, y);
    if (!p.allFinite()) {
      pen_down = false;
      continue;
    }
    if (pen_down) {
      cairo_line_to(cr, p.x(), p.y());
    } else {
      cairo_move_to(cr, p.x(), p.y());
      pen_down = true;
    }
  }
}

void DrawDot(cairo_t* cr, const Eigen::Vector2d& p, double radius, const Color& color,
             double alpha) {
  if (!p.allFinite()) return;
  cairo_new_path(cr);
  cairo_arc(cr, p.x(), p.y(), radius, 0.0, 2.0 * std::numbers::pi);
  SetColor(cr, color, alpha);
  cairo_fill_preserve(cr);
  cairo_set_line_width(cr, std::min(0.8, 0.35 * radius));
  SetColor(cr, {0.6 * color.r, 0.6 * color.g, 0.6 * color.b, color.a}, alpha);
  cairo_stroke(cr);
}

void RequireSameSize(Eigen::Index a, Eigen::Index b, const char* what) {
  if (a != b) {
    throw InputError(std::string("plot::Axes::") + what + ": expected xs and ys of equal size, got " +
                     std::to_string(a) + " and " + std::to_string(b));
  }
}

void RequireExtent(const Extent& e, const char* what) {
  if (!std::isfinite(e.xmin) || !std::isfinite(e.xmax) || !std::isfinite(e.ymin) ||
      !std::isfinite(e.ymax) || !(e.xmax > e.xmin) || !(e.ymax > e.ymin)) {
    throw InputError(std::string("plot::Axes::") + what +
                     ": expected a finite extent with xmax > xmin and ymax > ymin");
  }
}

// Centre of sample i (row) or j (column) of a matrix drawn into `extent`.
double SampleX(const Extent& e, Eigen::Index cols, double j) {
  return e.xmin + (j + 0.5) * (e.xmax - e.xmin) / static_cast<double>(cols);
}
double SampleY(const Extent& e, Eigen::Index rows, double i, Origin origin) {
  const double dy = (e.ymax - e.ymin) / static_cast<double>(rows);
  return origin == Origin::kLower ? e.ymin + (i + 0.5) * dy : e.ymax - (i + 0.5) * dy;
}

struct LegendEntry {
  std::string label;
  Color color;
  std::vector<double> dash;
  double width = 0.0;  // > 0: a line sample
  double radius = 0.0;  // > 0: a dot sample
  bool fill = false;    // a filled box sample
};

struct ColorbarSpec {
  Colormap colormap = Colormap::kViridis;
  double vmin = 0.0;
  double vmax = 1.0;
  std::string label;
};

}  // namespace

struct Axes::State {
  std::string title, xlabel, ylabel;
  std::optional<std::pair<double, double>> xlim, ylim;
  bool equal_aspect = false;
  bool log_y = false;
  bool grid_lines = false;
  LegendPosition legend_position = LegendPosition::kBest;
  Box image_box;  // extents of images (no margin)
  Box data_box;   // lines, points, paths, grids, ellipses (a margin is added)
  Box positive_data_box;  // the same restricted to y > 0, for a logarithmic y axis
  std::vector<Eigen::Vector2d> probe_points;  // a sample of data points, to place the legend
  std::vector<std::function<void(cairo_t*, const Frame&)>> layers;
  std::vector<LegendEntry> legend;
  std::optional<ColorbarSpec> colorbar;
  int color_cycle = 0;

  Color NextColor(const Style& style) {
    if (style.color) return *style.color;
    return CategoricalColor(color_cycle++);
  }
  void AddData(double x, double y) {
    data_box.Add(x, y);
    if (y > 0.0) positive_data_box.Add(x, y);
  }
  void Probe(double x, double y) {
    if (std::isfinite(x) && std::isfinite(y) && probe_points.size() < 40000) {
      probe_points.emplace_back(x, y);
    }
  }
  // Points along the segment from (x0, y0) to (x1, y1), so that the legend avoids lines too.
  void ProbeSegment(double x0, double y0, double x1, double y1, int pieces) {
    for (int k = 0; k < pieces; ++k) {
      const double u = static_cast<double>(k) / pieces;
      Probe(x0 + u * (x1 - x0), y0 + u * (y1 - y0));
    }
  }
};

namespace {

// Pixel geometry of one panel and its decorations.
struct PanelLayout {
  Frame frame;
  std::vector<double> xticks, yticks;
  double xstep = 0.0, ystep = 0.0;
  double cell_x = 0.0, cell_y = 0.0, cell_w = 0.0, cell_h = 0.0;
  double colorbar_x = 0.0;  // left edge of the colour bar
  double ytick_width = 0.0;  // widest y tick label
  std::vector<double> cticks;
  double cstep = 0.0;
};

std::pair<double, double> Padded(double lo, double hi, double fraction) {
  if (hi > lo) {
    const double pad = fraction * (hi - lo);
    return {lo - pad, hi + pad};
  }
  const double half = lo == 0.0 ? 0.5 : 0.1 * std::abs(lo);
  return {lo - half, hi + half};
}

double TickStep(const std::vector<double>& ticks) {
  return ticks.size() >= 2 ? ticks[1] - ticks[0] : 1.0;
}

PanelLayout Layout(const Axes::State& s, cairo_t* cr, double cell_x, double cell_y, double cell_w,
                   double cell_h) {
  PanelLayout L;
  L.cell_x = cell_x;
  L.cell_y = cell_y;
  L.cell_w = cell_w;
  L.cell_h = cell_h;

  // Limits: images exactly, other data with a 4% margin; the y margin in log space on a log axis.
  Box box = s.image_box;
  const Box& data = s.log_y ? s.positive_data_box : s.data_box;
  if (!data.Empty()) {
    const auto [x0, x1] = Padded(data.xmin, data.xmax, 0.05);
    double y0, y1;
    if (s.log_y) {
      const auto [l0, l1] = Padded(std::log10(data.ymin), std::log10(data.ymax), 0.05);
      y0 = std::pow(10.0, l0);
      y1 = std::pow(10.0, l1);
    } else {
      std::tie(y0, y1) = Padded(data.ymin, data.ymax, 0.05);
    }
    // Data inside an image does not widen the image's range.
    Box padded;
    padded.Add(x0, y0);
    padded.Add(x1, y1);
    if (!box.Empty() && data.xmin >= box.xmin && data.xmax <= box.xmax && data.ymin >= box.ymin &&
        data.ymax <= box.ymax) {
      padded = Box{};
    }
    box.Add(padded);
  }
  if (box.Empty()) box = Box{0.0, 1.0, s.log_y ? 1.0 : 0.0, s.log_y ? 10.0 : 1.0};
  double xmin = box.xmin, xmax = box.xmax, ymin = box.ymin, ymax = box.ymax;
  if (s.xlim) std::tie(xmin, xmax) = *s.xlim;
  if (s.ylim) std::tie(ymin, ymax) = *s.ylim;
  if (!(xmax > xmin)) std::tie(xmin, xmax) = Padded(xmin, xmin, 0.0);
  if (s.log_y) {
    if (!(ymin > 0.0)) ymin = ymax > 0.0 ? ymax * 1e-3 : 1.0;
    if (!(ymax > ymin)) ymax = ymin * 10.0;
  } else if (!(ymax > ymin)) {
    std::tie(ymin, ymax) = Padded(ymin, ymin, 0.0);
  }

  // Ticks (target count from the cell size).
  const int y_target = std::clamp(static_cast<int>(cell_h / 60.0), 3, 8);
  L.yticks = s.log_y ? LogTicks(ymin, ymax) : NiceTicks(ymin, ymax, y_target);
  L.ystep = TickStep(L.yticks);

  // Margins.
  double ytick_width = 0.0;
  for (double t : L.yticks) {
    const std::string label = s.log_y ? FormatTick(t, t) : FormatTick(t, L.ystep);
    ytick_width = std::max(ytick_width, TextWidth(cr, label, kTickFont));
  }
  L.ytick_width = ytick_width;
  const double left = 10.0 + (s.ylabel.empty() ? 0.0 : kLabelFont + 8.0) + ytick_width +
                      kTickLength + 4.0;
  const double top = 10.0 + (s.title.empty() ? 0.0 : kPanelTitleFont + 12.0);
  const double bottom =
      kTickLength + 4.0 + kTickFont + 6.0 + (s.xlabel.empty() ? 0.0 : kLabelFont + 8.0) + 4.0;
  double right = 16.0;
  if (s.colorbar) {
    L.cticks = NiceTicks(std::min(s.colorbar->vmin, s.colorbar->vmax),
                         std::max(s.colorbar->vmin, s.colorbar->vmax), y_target);
    L.cstep = TickStep(L.cticks);
    double ctick_width = 0.0;
    for (double t : L.cticks) {
      ctick_width = std::max(ctick_width, TextWidth(cr, FormatTick(t, L.cstep), kTickFont));
    }
    right = 14.0 + 14.0 + kTickLength + 4.0 + ctick_width +
            (s.colorbar->label.empty() ? 0.0 : 8.0 + kLabelFont) + 10.0;
  }
  Frame& f = L.frame;
  f.px = cell_x + left;
  f.py = cell_y + top;
  f.pw = std::max(10.0, cell_w - left - right);
  f.ph = std::max(10.0, cell_h - top - bottom);
  f.xmin = xmin;
  f.xmax = xmax;
  f.log_y = s.log_y;
  f.ymin = s.log_y ? std::log10(ymin) : ymin;
  f.ymax = s.log_y ? std::log10(ymax) : ymax;
  if (s.equal_aspect && !s.log_y) {
    const double sx = f.pw / (xmax - xmin);
    const double sy = f.ph / (ymax - ymin);
    if (sx > sy) {
      const double w = sy * (xmax - xmin);
      f.px += (f.pw - w) / 2.0;
      f.pw = w;
    } else {
      const double h = sx * (ymax - ymin);
      f.py += (f.ph - h) / 2.0;
      f.ph = h;
    }
  }
  L.colorbar_x = f.px + f.pw + 14.0;

  // x ticks from the final plot width, fewer while their labels would touch.
  for (int x_target = std::clamp(static_cast<int>(f.pw / 55.0), 3, 9);; --x_target) {
    L.xticks = NiceTicks(xmin, xmax, x_target);
    L.xstep = TickStep(L.xticks);
    double widest = 0.0;
    for (double t : L.xticks) {
      widest = std::max(widest, TextWidth(cr, FormatTick(t, L.xstep), kTickFont));
    }
    const double spacing = L.xticks.size() >= 2 ? f.pw * L.xstep / (xmax - xmin) : f.pw;
    if (x_target <= 2 || spacing >= widest + 10.0) break;
  }
  return L;
}

void DrawColorbar(cairo_t* cr, const ColorbarSpec& spec, const PanelLayout& L) {
  const double x = L.colorbar_x, y = L.frame.py, w = 14.0, h = L.frame.ph;
  const double lo = std::min(spec.vmin, spec.vmax), hi = std::max(spec.vmin, spec.vmax);
  const int steps = std::max(2, static_cast<int>(h));
  for (int k = 0; k < steps; ++k) {
    const double t = (k + 0.5) / steps;
    SetColor(cr, MapColor(spec.colormap, t));
    const double y0 = y + h - (k + 1) * h / steps;
    cairo_rectangle(cr, x, std::floor(y0), w, std::ceil(h / steps) + 1.0);
    cairo_fill(cr);
  }
  cairo_set_dash(cr, nullptr, 0, 0.0);
  cairo_set_line_width(cr, 1.0);
  SetColor(cr, kFrameColor);
  cairo_rectangle(cr, x + 0.5, y + 0.5, w - 1.0, h - 1.0);
  cairo_stroke(cr);
  double label_x = x + w + kTickLength + 4.0;
  double max_width = 0.0;
  for (double t : L.cticks) {
    const double ty = hi > lo ? y + h - (t - lo) / (hi - lo) * h : y + h / 2.0;
    cairo_move_to(cr, x + w, std::round(ty) + 0.5);
    cairo_line_to(cr, x + w + kTickLength, std::round(ty) + 0.5);
    cairo_stroke(cr);
    const std::string label = FormatTick(t, L.cstep);
    max_width = std::max(max_width, TextWidth(cr, label, kTickFont));
    DrawText(cr, label, label_x, ty, kTickFont, Anchor::kLeft, kInk);
  }
  if (!spec.label.empty()) {
    DrawText(cr, spec.label, label_x + max_width + 8.0 + kLabelFont / 2.0, y + h / 2.0, kLabelFont,
             Anchor::kCenter, kInk, false, std::numbers::pi / 2.0);
  }
}

void DrawLegend(cairo_t* cr, const Axes::State& s, const Frame& f) {
  if (s.legend.empty()) return;
  const double row_h = kLegendFont + 7.0, sample_w = 24.0, pad = 7.0;
  double text_w = 0.0;
  for (const auto& e : s.legend) text_w = std::max(text_w, TextWidth(cr, e.label, kLegendFont));
  const double w = pad + sample_w + 6.0 + text_w + pad;
  const double h = pad + row_h * static_cast<double>(s.legend.size()) + pad - 4.0;
  const double inset = 8.0;
  // Candidate boxes: the four named corners, then (for kBest only) the edge centres and centre.
  auto box_at = [&](double fx, double fy) -> std::pair<double, double> {
    return {f.px + inset + fx * (f.pw - 2.0 * inset - w), f.py + inset + fy * (f.ph - 2.0 * inset - h)};
  };
  auto corner = [&](LegendPosition p) -> std::pair<double, double> {
    switch (p) {
      case LegendPosition::kUpperLeft:
        return box_at(0.0, 0.0);
      case LegendPosition::kLowerRight:
        return box_at(1.0, 1.0);
      case LegendPosition::kLowerLeft:
        return box_at(0.0, 1.0);
      default:
        return box_at(1.0, 0.0);
    }
  };
  std::pair<double, double> origin = corner(s.legend_position);
  if (s.legend_position == LegendPosition::kBest) {
    std::size_t best = std::numeric_limits<std::size_t>::max();
    constexpr std::array<std::array<double, 2>, 9> kCandidates = {
        {{1, 0}, {0, 0}, {1, 1}, {0, 1}, {0.5, 0}, {0.5, 1}, {0, 0.5}, {1, 0.5}, {0.5, 0.5}}};
    for (const auto& [fx, fy] : kCandidates) {
      const auto [x0, y0] = box_at(fx, fy);
      std::size_t inside = 0;
      for (const auto& q : s.probe_points) {
        const Eigen::Vector2d px = f.ToPixel(q.x(), q.y());
        if (px.x() >= x0 - 3.0 && px.x() <= x0 + w + 3.0 && px.y() >= y0 - 3.0 &&
            px.y() <= y0 + h + 3.0) {
          ++inside;
        }
      }
      if (inside < best) {
        best = inside;
        origin = {x0, y0};
      }
    }
  }
  const auto [x0, y0] = origin;
  cairo_new_path(cr);
  cairo_rectangle(cr, x0 + 0.5, y0 + 0.5, w, h);
  cairo_set_source_rgba(cr, 1.0, 1.0, 1.0, 0.88);
  cairo_fill_preserve(cr);
  cairo_set_dash(cr, nullptr, 0, 0.0);
  cairo_set_line_width(cr, 0.8);
  SetColor(cr, {0.7, 0.7, 0.7, 1.0});
  cairo_stroke(cr);
  double y = y0 + pad + row_h / 2.0 - 2.0;
  for (const auto& e : s.legend) {
    const double sx = x0 + pad;
    if (e.fill) {
      cairo_rectangle(cr, sx + 2.0, y - 5.0, sample_w - 4.0, 10.0);
      SetColor(cr, e.color);
      cairo_fill(cr);
    } else if (e.width > 0.0) {
      Style st;
      st.width = e.width;
      st.dash = e.dash;
      ApplyLineStyle(cr, st, e.width);
      cairo_move_to(cr, sx, y);
      cairo_line_to(cr, sx + sample_w, y);
      SetColor(cr, e.color);
      cairo_stroke(cr);
    }
    if (e.radius > 0.0) DrawDot(cr, {sx + sample_w / 2.0, y}, e.radius, e.color, 1.0);
    DrawText(cr, e.label, sx + sample_w + 6.0, y, kLegendFont, Anchor::kLeft, kInk);
    y += row_h;
  }
}

void DrawPanel(cairo_t* cr, const Axes::State& s, const PanelLayout& L) {
  const Frame& f = L.frame;
  // Plot background and grid lines.
  cairo_rectangle(cr, f.px, f.py, f.pw, f.ph);
  cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
  cairo_fill(cr);
  auto tick_y = [&](double t) { return f.ToPixel(f.xmin, t).y(); };
  auto tick_x = [&](double t) { return f.ToPixel(t, s.log_y ? 1.0 : f.ymin).x(); };
  if (s.grid_lines) {
    cairo_set_line_width(cr, 0.7);
    cairo_set_dash(cr, nullptr, 0, 0.0);
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    for (double t : L.xticks) {
      cairo_move_to(cr, std::round(tick_x(t)) + 0.5, f.py);
      cairo_line_to(cr, std::round(tick_x(t)) + 0.5, f.py + f.ph);
    }
    for (double t : L.yticks) {
      cairo_move_to(cr, f.px, std::round(tick_y(t)) + 0.5);
      cairo_line_to(cr, f.px + f.pw, std::round(tick_y(t)) + 0.5);
    }
    cairo_stroke(cr);
  }
  // Layers, clipped to the plot area.
  cairo_save(cr);
  cairo_rectangle(cr, f.px, f.py, f.pw, f.ph);
  cairo_clip(cr);
  for (const auto& layer : s.layers) {
    cairo_save(cr);
    cairo_new_path(cr);
    layer(cr, f);
    cairo_restore(cr);
  }
  cairo_restore(cr);
  DrawLegend(cr, s, f);

  // Frame, ticks and tick labels.
  cairo_set_dash(cr, nullptr, 0, 0.0);
  cairo_set_line_width(cr, 1.0);
  SetColor(cr, kFrameColor);
  cairo_rectangle(cr, std::round(f.px) + 0.5, std::round(f.py) + 0.5, std::round(f.pw) - 1.0,
                  std::round(f.ph) - 1.0);
  cairo_stroke(cr);
  const double bottom = std::round(f.py) + std::round(f.ph);
  for (double t : L.xticks) {
    const double x = std::round(tick_x(t)) + 0.5;
    cairo_move_to(cr, x, bottom);
    cairo_line_to(cr, x, bottom + kTickLength);
    cairo_stroke(cr);
    DrawText(cr, FormatTick(t, L.xstep), tick_x(t), bottom + kTickLength + 4.0 + kTickFont / 2.0,
             kTickFont, Anchor::kCenter, kInk);
  }
  const double left = std::round(f.px);
  for (double t : L.yticks) {
    const double y = std::round(tick_y(t)) + 0.5;
    cairo_move_to(cr, left, y);
    cairo_line_to(cr, left - kTickLength, y);
    cairo_stroke(cr);
    const std::string label = s.log_y ? FormatTick(t, t) : FormatTick(t, L.ystep);
    DrawText(cr, label, left - kTickLength - 4.0, tick_y(t), kTickFont, Anchor::kRight, kInk);
  }
  if (s.log_y) {
    // Unlabelled minor ticks at 2..9 x 10^k.
    for (double e = std::floor(f.ymin); e <= std::ceil(f.ymax); e += 1.0) {
      for (int m = 2; m <= 9; ++m) {
        const double v = m * std::pow(10.0, e);
        const double lv = std::log10(v);
        if (lv < f.ymin || lv > f.ymax) continue;
        if (std::any_of(L.yticks.begin(), L.yticks.end(),
                        [v](double t) { return std::abs(t - v) <= 1e-9 * v; })) {
          continue;
        }
        const double y = std::round(tick_y(v)) + 0.5;
        cairo_move_to(cr, left, y);
        cairo_line_to(cr, left - 0.6 * kTickLength, y);
        cairo_stroke(cr);
      }
    }
  }
  // Axis labels and title.
  if (!s.xlabel.empty()) {
    DrawText(cr, s.xlabel, f.px + f.pw / 2.0,
             bottom + kTickLength + 4.0 + kTickFont + 8.0 + kLabelFont / 2.0, kLabelFont,
             Anchor::kCenter, kInk);
  }
  if (!s.ylabel.empty()) {
    DrawText(cr, s.ylabel, left - kTickLength - 4.0 - L.ytick_width - 8.0 - kLabelFont / 2.0,
             f.py + f.ph / 2.0, kLabelFont,
             Anchor::kCenter, kInk, false, -std::numbers::pi / 2.0);
  }
  if (!s.title.empty()) {
    DrawText(cr, s.title, f.px + f.pw / 2.0, f.py - 8.0 - kPanelTitleFont / 2.0, kPanelTitleFont,
             Anchor::kCenter, kInk, true);
  }
  if (s.colorbar) DrawColorbar(cr, *s.colorbar, L);
}

// Marching squares over the sample centres, returning the iso-line as polylines (k x 2 matrices of
// data coordinates). Crossing points are keyed by grid edge so that the segments of neighbouring
// cells join exactly and dashes run continuously along a contour.
std::vector<Eigen::MatrixXd> ContourPolylines(const Eigen::MatrixXd& v, const Extent& e,
                                              double level, Origin origin) {
  const Eigen::Index rows = v.rows(), cols = v.cols();
  // Edge keys: 2 (i cols + j) for (i, j)-(i, j+1); 2 (i cols + j) + 1 for (i, j)-(i+1, j).
  auto horizontal = [cols](Eigen::Index i, Eigen::Index j) { return 2 * (i * cols + j); };
  auto vertical = [cols](Eigen::Index i, Eigen::Index j) { return 2 * (i * cols + j) + 1; };
  auto crossing = [&](Eigen::Index key) -> Eigen::Vector2d {
    const Eigen::Index cell = key / 2, i = cell / cols, j = cell % cols;
    const Eigen::Index i1 = key % 2 == 1 ? i + 1 : i, j1 = key % 2 == 1 ? j : j + 1;
    const double a = v(i, j), b = v(i1, j1);
    const double s = (level - a) / (b - a);
    return {SampleX(e, cols, j + s * static_cast<double>(j1 - j)),
            SampleY(e, rows, i + s * static_cast<double>(i1 - i), origin)};
  };
  std::vector<std::array<Eigen::Index, 2>> segments;
  for (Eigen::Index i = 0; i + 1 < rows; ++i) {
    for (Eigen::Index j = 0; j + 1 < cols; ++j) {
      // Corners counter-clockwise in index space: (i,j), (i,j+1), (i+1,j+1), (i+1,j); edge k joins
      // corner k to corner k+1.
      const std::array<double, 4> c = {v(i, j), v(i, j + 1), v(i + 1, j + 1), v(i + 1, j)};
      if (!std::isfinite(c[0]) || !std::isfinite(c[1]) || !std::isfinite(c[2]) ||
          !std::isfinite(c[3])) {
        continue;
      }
      const std::array<Eigen::Index, 4> edge = {horizontal(i, j), vertical(i, j + 1),
                                                horizontal(i + 1, j), vertical(i, j)};
      std::array<bool, 4> above;
      for (int k = 0; k < 4; ++k) above[k] = c[k] > level;
      std::array<int, 4> crossed;
      int n = 0;
      for (int k = 0; k < 4; ++k) {
        if (above[k] != above[(k + 1) % 4]) crossed[n++] = k;
      }
      if (n == 2) {
        segments.push_back({edge[crossed[0]], edge[crossed[1]]});
      } else if (n == 4) {
        const bool centre_above = 0.25 * (c[0] + c[1] + c[2] + c[3]) > level;
        if (centre_above == above[0]) {
          // Corners 0 and 2 joined through the centre: cut off corners 1 and 3.
          segments.push_back({edge[0], edge[1]});
          segments.push_back({edge[2], edge[3]});
        } else {
          segments.push_back({edge[3], edge[0]});
          segments.push_back({edge[1], edge[2]});
        }
      }
    }
  }
  // Chain segments that share an edge key.
  std::unordered_map<Eigen::Index, std::array<int, 2>> at;  // key -> up to two segments
  for (int s = 0; s < static_cast<int>(segments.size()); ++s) {
    for (Eigen::Index key : segments[static_cast<std::size_t>(s)]) {
      auto [it, inserted] = at.try_emplace(key, std::array<int, 2>{-1, -1});
      (it->second[0] < 0 ? it->second[0] : it->second[1]) = s;
    }
  }
  std::vector<bool> used(segments.size(), false);
  std::vector<Eigen::MatrixXd> polylines;
  auto other = [&](Eigen::Index key, int s) {
    const auto& pair = at.at(key);
    return pair[0] == s ? pair[1] : pair[0];
  };
  for (int start = 0; start < static_cast<int>(segments.size()); ++start) {
    if (used[static_cast<std::size_t>(start)]) continue;
    used[static_cast<std::size_t>(start)] = true;
    std::deque<Eigen::Index> keys(segments[static_cast<std::size_t>(start)].begin(),
                                  segments[static_cast<std::size_t>(start)].end());
    for (int direction = 0; direction < 2; ++direction) {
      int s = start;
      while (true) {
        const Eigen::Index end = direction == 0 ? keys.back() : keys.front();
        const int next = other(end, s);
        if (next < 0 || used[static_cast<std::size_t>(next)]) break;
        used[static_cast<std::size_t>(next)] = true;
        const auto& seg = segments[static_cast<std::size_t>(next)];
        const Eigen::Index far = seg[0] == end ? seg[1] : seg[0];
        if (direction == 0) {
          keys.push_back(far);
        } else {
          keys.push_front(far);
        }
        s = next;
      }
    }
    Eigen::MatrixXd line(static_cast<Eigen::Index>(keys.size()), 2);
    for (std::size_t k = 0; k < keys.size(); ++k) {
      line.row(static_cast<Eigen::Index>(k)) = crossing(keys[k]).transpose();
    }
    polylines.push_back(std::move(line));
  }
  return polylines;
}

std::string TemporaryPngPath(const std::string& path) {
  std::random_device device;
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, ".tmp-%ld-%08x", static_cast<long>(::getpid()),
                static_cast<unsigned>(device()));
  return path + suffix;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Axes

Axes::Axes() : state_(std::make_unique<State>()) {}
Axes::~Axes() = default;

Axes& Axes::SetTitle(const std::string& title) {
  state_->title = title;
  return *this;
}
Axes& Axes::SetXLabel(const std::string& label) {
  state_->xlabel = label;
  return *this;
}
Axes& Axes::SetYLabel(const std::string& label) {
  state_->ylabel = label;
  return *this;
}
Axes& Axes::SetLimits(double xmin, double xmax, double ymin, double ymax) {
  SetXLimits(xmin, xmax);
  return SetYLimits(ymin, ymax);
}
Axes& Axes::SetXLimits(double xmin, double xmax) {
  if (!std::isfinite(xmin) || !std::isfinite(xmax) || !(xmax > xmin)) {
    throw InputError("plot::Axes::SetXLimits: expected finite xmin < xmax, got " +
                     std::to_string(xmin) + ", " + std::to_string(xmax));
  }
  state_->xlim = {xmin, xmax};
  return *this;
}
Axes& Axes::SetYLimits(double ymin, double ymax) {
  if (!std::isfinite(ymin) || !std::isfinite(ymax) || !(ymax > ymin)) {
    throw InputError("plot::Axes::SetYLimits: expected finite ymin < ymax, got " +
                     std::to_string(ymin) + ", " + std::to_string(ymax));
  }
  state_->ylim = {ymin, ymax};
  return *this;
}
Axes& Axes::SetEqualAspect(bool equal) {
  state_->equal_aspect = equal;
  return *this;
}
Axes& Axes::SetLogY(bool log) {
  state_->log_y = log;
  return *this;
}
Axes& Axes::SetGridLines(bool grid) {
  state_->grid_lines = grid;
  return *this;
}
Axes& Axes::SetLegendPosition(LegendPosition position) {
  state_->legend_position = position;
  return *this;
}
void Axes::Legend(LegendPosition position) { state_->legend_position = position; }

void Axes::Image(const Eigen::MatrixXd& values, const Extent& extent,
                 const ImageOptions& options) {
  if (values.size() == 0) throw InputError("plot::Axes::Image: expected a non-empty matrix");
  RequireExtent(extent, "Image");
  double vmin = options.vmin, vmax = options.vmax;
  if (std::isnan(vmin) || std::isnan(vmax)) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (Eigen::Index k = 0; k < values.size(); ++k) {
      const double v = values.data()[k];
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    }
    if (!(lo <= hi)) lo = hi = 0.0;
    if (std::isnan(vmin)) vmin = lo;
    if (std::isnan(vmax)) vmax = hi;
  }
  if (!std::isfinite(vmin) || !std::isfinite(vmax)) {
    throw InputError("plot::Axes::Image: expected finite vmin and vmax");
  }
  if (vmax == vmin) {
    vmin -= 0.5 * std::max(1e-12, std::abs(vmin) * 0.1) + (vmin == 0.0 ? 0.5 : 0.0);
    vmax += 0.5 * std::max(1e-12, std::abs(vmax) * 0.1) + (vmax == 0.0 ? 0.5 : 0.0);
  }
  state_->image_box.Add(extent.xmin, extent.ymin);
  state_->image_box.Add(extent.xmax, extent.ymax);
  if (options.colorbar) {
    state_->colorbar = ColorbarSpec{options.colormap, vmin, vmax, options.colorbar_label};
  }
  const Colormap colormap = options.colormap;
  const Origin origin = options.origin;
  const bool smooth = options.smooth;
  state_->layers.push_back([values, extent, colormap, origin, smooth, vmin, vmax](
                               cairo_t* cr, const Frame& f) {
    const int rows = static_cast<int>(values.rows()), cols = static_cast<int>(values.cols());
    cairo_surface_t* image = cairo_image_surface_create(CAIRO_FORMAT_RGB24, cols, rows);
    if (cairo_surface_status(image) != CAIRO_STATUS_SUCCESS) {
      cairo_surface_destroy(image);
      return;
    }
    cairo_surface_flush(image);
    unsigned char* data = cairo_image_surface_get_data(image);
    const int stride = cairo_image_surface_get_stride(image);
    for (int i = 0; i < rows; ++i) {
      const int surface_row = origin == Origin::kUpper ? i : rows - 1 - i;
      auto* row = reinterpret_cast<std::uint32_t*>(data + surface_row * stride);
      for (int j = 0; j < cols; ++j) {
        const Color c = MapValue(colormap, values(i, j), vmin, vmax);
        const auto to8 = [](double u) {
          return static_cast<std::uint32_t>(std::lround(std::clamp(u, 0.0, 1.0) * 255.0));
        };
        row[j] = 0xff000000u | (to8(c.r) << 16) | (to8(c.g) << 8) | to8(c.b);
      }
    }
    cairo_surface_mark_dirty(image);
    const Eigen::Vector2d p0 = f.ToPixel(extent.xmin, extent.ymax);
    const Eigen::Vector2d p1 = f.ToPixel(extent.xmax, extent.ymin);
    if (p0.allFinite() && p1.allFinite()) {
      cairo_translate(cr, p0.x(), p0.y());
      cairo_scale(cr, (p1.x() - p0.x()) / cols, (p1.y() - p0.y()) / rows);
      cairo_set_source_surface(cr, image, 0.0, 0.0);
      cairo_pattern_t* pattern = cairo_get_source(cr);
      cairo_pattern_set_filter(pattern, smooth ? CAIRO_FILTER_BILINEAR : CAIRO_FILTER_NEAREST);
      cairo_pattern_set_extend(pattern, CAIRO_EXTEND_PAD);
      cairo_rectangle(cr, 0.0, 0.0, cols, rows);
      cairo_fill(cr);
    }
    cairo_surface_destroy(image);
  });
}

void Axes::Line(const Eigen::VectorXd& xs, const Eigen::VectorXd& ys, const Style& style) {
  RequireSameSize(xs.size(), ys.size(), "Line");
  const Color color = state_->NextColor(style);
  const int pieces = static_cast<int>(std::clamp<Eigen::Index>(400 / std::max<Eigen::Index>(xs.size(), 1), 1, 16));
  for (Eigen::Index i = 0; i < xs.size(); ++i) {
    state_->AddData(xs[i], ys[i]);
    if (i + 1 < xs.size()) {
      state_->ProbeSegment(xs[i], ys[i], xs[i + 1], ys[i + 1], pieces);
    } else {
      state_->Probe(xs[i], ys[i]);
    }
  }
  if (!style.label.empty()) {
    state_->legend.push_back({style.label, color.WithAlpha(color.a * style.alpha), style.dash,
                              style.width > 0.0 ? style.width : 1.8,
                              style.marker ? style.radius : 0.0, false});
  }
  state_->layers.push_back([xs, ys, style, color](cairo_t* cr, const Frame& f) {
    ApplyLineStyle(cr, style, 1.8);
    AddPolyline(cr, f, xs.size(), [&](Eigen::Index i) { return std::pair{xs[i], ys[i]}; });
    SetColor(cr, color, style.alpha);
    cairo_stroke(cr);
    if (style.marker) {
      for (Eigen::Index i = 0; i < xs.size(); ++i) {
        DrawDot(cr, f.ToPixel(xs[i], ys[i]), style.radius, color, style.alpha);
      }
    }
  });
}

void Axes::Line(const std::vector<double>& xs, const std::vector<double>& ys, const Style& style) {
  Line(Eigen::Map<const Eigen::VectorXd>(xs.data(), static_cast<Eigen::Index>(xs.size())),
       Eigen::Map<const Eigen::VectorXd>(ys.data(), static_cast<Eigen::Index>(ys.size())), style);
}

void Axes::Scatter(const Eigen::VectorXd& xs, const Eigen::VectorXd& ys, const Style& style) {
  RequireSameSize(xs.size(), ys.size(), "Scatter");
  const Color color = state_->NextColor(style);
  Style colored = style;
  colored.color = color;
  Scatter(xs, ys, colored, std::vector<Color>(static_cast<std::size_t>(xs.size()), color));
}

void Axes::Scatter(const Eigen::VectorXd& xs, const Eigen::VectorXd& ys, const Style& style,
                   const std::vector<Color>& colors) {
  RequireSameSize(xs.size(), ys.size(), "Scatter");
  if (colors.size() != static_cast<std::size_t>(xs.size())) {
    throw InputError("plot::Axes::Scatter: expected one colour per point (" +
                     std::to_string(xs.size()) + "), got " + std::to_string(colors.size()));
  }
  for (Eigen::Index i = 0; i < xs.size(); ++i) {
    state_->AddData(xs[i], ys[i]);
    state_->Probe(xs[i], ys[i]);
  }
  if (!style.label.empty()) {
    const Color c = style.color ? *style.color : (colors.empty() ? kInk : colors.front());
    state_->legend.push_back({style.label, c, {}, 0.0, std::max(style.radius, 3.0), false});
  }
  state_->layers.push_back([xs, ys, colors, style](cairo_t* cr, const Frame& f) {
    for (Eigen::Index i = 0; i < xs.size(); ++i) {
      DrawDot(cr, f.ToPixel(xs[i], ys[i]), style.radius, colors[static_cast<std::size_t>(i)],
              style.alpha);
    }
  });
}

void Axes::ScatterClasses(const Eigen::VectorXd& xs, const Eigen::VectorXd& ys,
                          const Eigen::VectorXi& labels, const Style& style,
                          const std::vector<std::string>& class_names) {
  RequireSameSize(xs.size(), ys.size(), "ScatterClasses");
  if (labels.size() != xs.size()) {
    throw InputError("plot::Axes::ScatterClasses: expected one label per point (" +
                     std::to_string(xs.size()) + "), got " + std::to_string(labels.size()));
  }
  std::vector<Color> colors(static_cast<std::size_t>(xs.size()));
  for (Eigen::Index i = 0; i < xs.size(); ++i) {
    colors[static_cast<std::size_t>(i)] = CategoricalColor(labels[i]);
  }
  Style unlabeled = style;
  unlabeled.label.clear();
  Scatter(xs, ys, unlabeled, colors);
  for (std::size_t k = 0; k < class_names.size(); ++k) {
    if (class_names[k].empty()) continue;
    state_->legend.push_back({class_names[k], CategoricalColor(static_cast<int>(k)), {}, 0.0,
                              std::max(style.radius, 3.0), false});
  }
}

void Axes::Paths(const std::vector<Eigen::MatrixXd>& paths, const Style& style) {
  const Color color = state_->NextColor(style);
  Style s = style;
  s.color = color;
  Paths(paths, s, std::vector<Color>(paths.size(), color));
}

void Axes::Paths(const std::vector<Eigen::MatrixXd>& paths, const Style& style,
                 const std::vector<Color>& colors) {
  if (colors.size() != paths.size()) {
    throw InputError("plot::Axes::Paths: expected one colour per path (" +
                     std::to_string(paths.size()) + "), got " + std::to_string(colors.size()));
  }
  for (std::size_t k = 0; k < paths.size(); ++k) {
    if (paths[k].cols() != 2) {
      throw InputError("plot::Axes::Paths: path " + std::to_string(k) +
                       " must be a k x 2 matrix of (x, y) rows, got " +
                       std::to_string(paths[k].cols()) + " columns");
    }
    for (Eigen::Index i = 0; i < paths[k].rows(); ++i) {
      state_->AddData(paths[k](i, 0), paths[k](i, 1));
      if (i % 4 == 0) state_->Probe(paths[k](i, 0), paths[k](i, 1));
    }
  }
  if (!style.label.empty()) {
    const Color c = style.color ? *style.color : (colors.empty() ? kInk : colors.front());
    state_->legend.push_back({style.label, c.WithAlpha(std::max(0.6, style.alpha)), style.dash,
                              style.width > 0.0 ? style.width : 1.0, 0.0, false});
  }
  state_->layers.push_back([paths, colors, style](cairo_t* cr, const Frame& f) {
    ApplyLineStyle(cr, style, 1.0);
    for (std::size_t k = 0; k < paths.size(); ++k) {
      const Eigen::MatrixXd& p = paths[k];
      AddPolyline(cr, f, p.rows(), [&](Eigen::Index i) { return std::pair{p(i, 0), p(i, 1)}; });
      SetColor(cr, colors[k], style.alpha);
      cairo_stroke(cr);
    }
  });
}

void Axes::Grid(const Eigen::MatrixXd& X, const Eigen::MatrixXd& Y, int stride,
                const Style& style) {
  if (X.rows() != Y.rows() || X.cols() != Y.cols() || X.rows() < 2 || X.cols() < 2) {
    throw InputError("plot::Axes::Grid: expected X and Y of the same shape, at least 2 x 2; got " +
                     std::to_string(X.rows()) + "x" + std::to_string(X.cols()) + " and " +
                     std::to_string(Y.rows()) + "x" + std::to_string(Y.cols()));
  }
  if (stride < 1) throw InputError("plot::Axes::Grid: expected stride >= 1");
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    for (Eigen::Index j = 0; j < X.cols(); ++j) {
      state_->AddData(X(i, j), Y(i, j));
      if ((i % stride == 0) && (j % stride == 0)) state_->Probe(X(i, j), Y(i, j));
    }
  }
  const Color color = style.color ? *style.color : Color{0.2, 0.2, 0.2, 1.0};
  if (!style.label.empty()) {
    state_->legend.push_back(
        {style.label, color, style.dash, style.width > 0.0 ? style.width : 0.9, 0.0, false});
  }
  state_->layers.push_back([X, Y, stride, style, color](cairo_t* cr, const Frame& f) {
    ApplyLineStyle(cr, style, 0.9);
    auto selected = [stride](Eigen::Index k, Eigen::Index n) {
      return k % stride == 0 || k == n - 1;
    };
    for (Eigen::Index i = 0; i < X.rows(); ++i) {
      if (!selected(i, X.rows())) continue;
      AddPolyline(cr, f, X.cols(), [&](Eigen::Index j) { return std::pair{X(i, j), Y(i, j)}; });
    }
    for (Eigen::Index j = 0; j < X.cols(); ++j) {
      if (!selected(j, X.cols())) continue;
      AddPolyline(cr, f, X.rows(), [&](Eigen::Index i) { return std::pair{X(i, j), Y(i, j)}; });
    }
    SetColor(cr, color, style.alpha);
    cairo_stroke(cr);
  });
}

void Axes::Contour(const Eigen::MatrixXd& values, const Extent& extent, double level,
                   const Style& style, Origin origin) {
  RequireExtent(extent, "Contour");
  if (values.rows() < 2 || values.cols() < 2) {
    throw InputError("plot::Axes::Contour: expected a matrix of at least 2 x 2 samples");
  }
  if (!std::isfinite(level)) throw InputError("plot::Axes::Contour: expected a finite level");
  const auto polylines = ContourPolylines(values, extent, level, origin);
  for (const auto& line : polylines) {
    for (Eigen::Index k = 0; k < line.rows(); ++k) state_->Probe(line(k, 0), line(k, 1));
  }
  const Color color = style.color ? *style.color : kInk;
  if (!style.label.empty()) {
    state_->legend.push_back(
        {style.label, color, style.dash, style.width > 0.0 ? style.width : 1.8, 0.0, false});
  }
  state_->layers.push_back([polylines, style, color](cairo_t* cr, const Frame& f) {
    ApplyLineStyle(cr, style, 1.8);
    for (const auto& line : polylines) {
      AddPolyline(cr, f, line.rows(), [&](Eigen::Index k) { return std::pair{line(k, 0), line(k, 1)}; });
    }
    SetColor(cr, color, style.alpha);
    cairo_stroke(cr);
  });
}

void Axes::Ellipse(const Eigen::Vector2d& center, const Eigen::Matrix2d& metric, double scale,
                   const Style& style) {
  if (!metric.allFinite() || std::abs(metric(0, 1) - metric(1, 0)) >
                                 1e-9 * (std::abs(metric(0, 1)) + std::abs(metric(1, 0)) + 1e-300)) {
    throw InputError("plot::Axes::Ellipse: expected a finite symmetric 2 x 2 metric");
  }
  Eigen::SelfAdjointEigenSolver<Eigen::Matrix2d> eigen(metric);
  if (!(eigen.eigenvalues().minCoeff() > 0.0)) {
    throw InputError("plot::Axes::Ellipse: expected a positive definite metric");
  }
  if (!(scale > 0.0) || !std::isfinite(scale) || !center.allFinite()) {
    throw InputError("plot::Axes::Ellipse: expected a finite centre and scale > 0");
  }
  // Boundary points c + scale (u1 cos θ / sqrt(λ1) + u2 sin θ / sqrt(λ2)).
  constexpr int kPoints = 72;
  Eigen::MatrixXd boundary(kPoints, 2);
  const Eigen::Vector2d a1 = eigen.eigenvectors().col(0) * (scale / std::sqrt(eigen.eigenvalues()[0]));
  const Eigen::Vector2d a2 = eigen.eigenvectors().col(1) * (scale / std::sqrt(eigen.eigenvalues()[1]));
  for (int k = 0; k < kPoints; ++k) {
    const double theta = 2.0 * std::numbers::pi * k / kPoints;
    boundary.row(k) = (center + std::cos(theta) * a1 + std::sin(theta) * a2).transpose();
    state_->AddData(boundary(k, 0), boundary(k, 1));
  }
  state_->Probe(center.x(), center.y());
  const Color color = style.color ? *style.color : kInk;
  if (!style.label.empty()) {
    LegendEntry entry{style.label, color, style.dash, style.width > 0.0 ? style.width : 1.3, 0.0,
                      false};
    state_->legend.push_back(entry);
  }
  state_->layers.push_back([boundary, style, color](cairo_t* cr, const Frame& f) {
    ApplyLineStyle(cr, style, 1.3);
    AddPolyline(cr, f, boundary.rows(),
                [&](Eigen::Index i) { return std::pair{boundary(i, 0), boundary(i, 1)}; });
    cairo_close_path(cr);
    if (style.alpha < 1.0) {
      SetColor(cr, color, style.alpha);
      cairo_fill_preserve(cr);
    }
    SetColor(cr, color);
    cairo_stroke(cr);
  });
}

void Axes::Text(double x, double y, const std::string& text, const TextStyle& style) {
  state_->layers.push_back([x, y, text, style](cairo_t* cr, const Frame& f) {
    const Eigen::Vector2d p = f.ToPixel(x, y);
    if (!p.allFinite()) return;
    if (style.background) {
      const double w = TextWidth(cr, text, style.size, style.bold);
      const double x0 = style.anchor == Anchor::kLeft     ? p.x()
                        : style.anchor == Anchor::kCenter ? p.x() - w / 2.0
                                                          : p.x() - w;
      cairo_rectangle(cr, x0 - 3.0, p.y() - 0.75 * style.size, w + 6.0, 1.5 * style.size);
      cairo_set_source_rgba(cr, 1.0, 1.0, 1.0, 0.8);
      cairo_fill(cr);
    }
    DrawText(cr, text, p.x(), p.y(), style.size, style.anchor, style.color, style.bold);
  });
}

void Axes::Colorbar(Colormap colormap, double vmin, double vmax, const std::string& label) {
  if (!std::isfinite(vmin) || !std::isfinite(vmax) || !(vmax > vmin)) {
    throw InputError("plot::Axes::Colorbar: expected finite vmin < vmax");
  }
  state_->colorbar = ColorbarSpec{colormap, vmin, vmax, label};
}

// ---------------------------------------------------------------------------------------------
// Figure

Figure::Figure(int rows, int cols, int panel_width_px, int panel_height_px)
    : rows_(rows), cols_(cols), panel_width_px_(panel_width_px), panel_height_px_(panel_height_px) {
  if (rows < 1 || cols < 1 || panel_width_px < 80 || panel_width_px > 4000 ||
      panel_height_px < 80 || panel_height_px > 4000) {
    throw InputError("plot::Figure: expected rows, cols >= 1 and panel sizes in [80, 4000] px, got " +
                     std::to_string(rows) + "x" + std::to_string(cols) + " panels of " +
                     std::to_string(panel_width_px) + "x" + std::to_string(panel_height_px));
  }
  if (static_cast<long>(cols) * panel_width_px > 32000 ||
      static_cast<long>(rows) * panel_height_px + kFigureTitleHeightPx > 32000) {
    throw InputError("plot::Figure: the figure would exceed 32000 px on a side");
  }
  for (int k = 0; k < rows * cols; ++k) axes_.push_back(std::make_unique<Axes>());
}

Figure::~Figure() = default;

Figure& Figure::SetTitle(const std::string& title) {
  title_ = title;
  return *this;
}

Axes& Figure::At(int row, int col) {
  return const_cast<Axes&>(PanelAt(row, col));
}

const Axes& Figure::PanelAt(int row, int col) const {
  if (row < 0 || row >= rows_ || col < 0 || col >= cols_) {
    throw InputError("plot::Figure::At: panel (" + std::to_string(row) + ", " +
                     std::to_string(col) + ") outside the " + std::to_string(rows_) + "x" +
                     std::to_string(cols_) + " grid");
  }
  return *axes_[static_cast<std::size_t>(row * cols_ + col)];
}

int Figure::Width() const { return cols_ * panel_width_px_; }
int Figure::Height() const {
  return rows_ * panel_height_px_ + (title_.empty() ? 0 : kFigureTitleHeightPx);
}

namespace {

// A scratch cairo context for measuring text.
struct Scratch {
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
  cairo_t* cr = cairo_create(surface);
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
  }
};

}  // namespace

Eigen::Vector2d Figure::DataToPixel(int row, int col, double x, double y) const {
  const Axes& axes = PanelAt(row, col);
  Scratch scratch;
  const double top = title_.empty() ? 0.0 : kFigureTitleHeightPx;
  const PanelLayout L = Layout(axes.state(), scratch.cr, col * panel_width_px_,
                               top + row * panel_height_px_, panel_width_px_, panel_height_px_);
  return L.frame.ToPixel(x, y);
}

void Figure::SavePng(const std::string& path) const {
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Width(), Height());
  cairo_t* cr = cairo_create(surface);
  cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
  cairo_paint(cr);
  const double top = title_.empty() ? 0.0 : kFigureTitleHeightPx;
  if (!title_.empty()) {
    DrawText(cr, title_, Width() / 2.0, kFigureTitleHeightPx / 2.0 + 2.0, kFigureTitleFont,
             Anchor::kCenter, kInk, true);
  }
  for (int r = 0; r < rows_; ++r) {
    for (int c = 0; c < cols_; ++c) {
      const Axes::State& s = axes_[static_cast<std::size_t>(r * cols_ + c)]->state();
      const PanelLayout L = Layout(s, cr, c * panel_width_px_, top + r * panel_height_px_,
                                   panel_width_px_, panel_height_px_);
      cairo_save(cr);
      DrawPanel(cr, s, L);
      cairo_restore(cr);
    }
  }
  cairo_surface_flush(surface);
  const cairo_status_t render_status = cairo_status(cr);
  cairo_destroy(cr);
  if (render_status != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(surface);
    throw InputError("cannot render figure '" + path +
                     "': " + cairo_status_to_string(render_status));
  }
  const std::string temporary = TemporaryPngPath(path);
  const cairo_status_t status = cairo_surface_write_to_png(surface, temporary.c_str());
  cairo_surface_destroy(surface);
  if (status != CAIRO_STATUS_SUCCESS) {
    std::remove(temporary.c_str());
    throw InputError("cannot write figure '" + path + "' (is the folder missing or read-only?): " +
                     cairo_status_to_string(status));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    throw InputError("cannot write figure '" + path + "': rename from temporary file failed");
  }
}

}  // namespace diffeoflow::plot

#if defined(__SANITIZE_ADDRESS__)
// LeakSanitizer hook, linked into every program that draws a figure. Fontconfig (loaded by cairo's
// toy font API) keeps its process-wide caches behind offset-encoded pointers, which LeakSanitizer
// cannot follow, so it reports them as direct leaks at exit. They are not ours; ignore them there.
extern "C" const char* __lsan_default_suppressions() { return "leak:libfontconfig.so\n"; }
#endif
