// Colours: the categorical palette and piecewise-linear continuous colour maps (figure.h).
#include <algorithm>
#include <array>
#include <cmath>
#include <span>

#include "plot/figure.h"

namespace diffeoflow::plot {
namespace {

struct ControlPoint {
  double t;
  std::uint32_t rgb;
};

// Hand-placed control points. Sequential maps rise in luminance from one point to the next.
constexpr std::array<ControlPoint, 2> kGrayPoints = {{{0.0, 0x000000}, {1.0, 0xffffff}}};
constexpr std::array<ControlPoint, 6> kViridisPoints = {{{0.00, 0x450457},
                                                         {0.20, 0x41447f},
                                                         {0.40, 0x2e6f8c},
                                                         {0.60, 0x22988a},
                                                         {0.80, 0x58c468},
                                                         {1.00, 0xf9e523}}};
constexpr std::array<ControlPoint, 6> kMagmaPoints = {{{0.00, 0x020107},
                                                       {0.20, 0x331068},
                                                       {0.40, 0x7a2483},
                                                       {0.60, 0xc23a73},
                                                       {0.80, 0xf7775a},
                                                       {1.00, 0xfbf5bb}}};
constexpr std::array<ControlPoint, 5> kCoolwarmPoints = {{{0.00, 0x3a4cc0},
                                                          {0.25, 0x8cadf8},
                                                          {0.50, 0xdddddd},
                                                          {0.75, 0xf2a183},
                                                          {1.00, 0xb30426}}};

constexpr std::array<std::uint32_t, kCategoricalColorCount> kCategorical = {
    0x3366b8, 0xe8822a, 0x3a9a4a, 0xcc3b3b, 0x8a63b8,
    0x8c5a4a, 0xd977b8, 0x7a7a7a, 0xb0b032, 0x2fb5c8};

Color Interpolate(std::span<const ControlPoint> points, double t) {
  if (t <= points.front().t) return Color::FromHex(points.front().rgb);
  if (t >= points.back().t) return Color::FromHex(points.back().rgb);
  std::size_t k = 1;
  while (points[k].t < t) ++k;
  const double s = (t - points[k - 1].t) / (points[k].t - points[k - 1].t);
  const Color a = Color::FromHex(points[k - 1].rgb);
  const Color b = Color::FromHex(points[k].rgb);
  return {a.r + s * (b.r - a.r), a.g + s * (b.g - a.g), a.b + s * (b.b - a.b), 1.0};
}

double Linearise(double c) {
  return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
}

}  // namespace

Color Color::FromHex(std::uint32_t rgb, double alpha) {
  return {((rgb >> 16) & 0xff) / 255.0, ((rgb >> 8) & 0xff) / 255.0, (rgb & 0xff) / 255.0, alpha};
}

Color CategoricalColor(int index) {
  const int k = ((index % kCategoricalColorCount) + kCategoricalColorCount) % kCategoricalColorCount;
  return Color::FromHex(kCategorical[static_cast<std::size_t>(k)]);
}

Color MapColor(Colormap colormap, double t) {
  if (!std::isfinite(t)) return BadColor();
  t = std::clamp(t, 0.0, 1.0);
  switch (colormap) {
    case Colormap::kGray:
      return Interpolate(kGrayPoints, t);
    case Colormap::kViridis:
      return Interpolate(kViridisPoints, t);
    case Colormap::kMagma:
      return Interpolate(kMagmaPoints, t);
    case Colormap::kCoolwarm:
      return Interpolate(kCoolwarmPoints, t);
  }
  return BadColor();
}

Color MapValue(Colormap colormap, double value, double vmin, double vmax) {
  if (!std::isfinite(value)) return BadColor();
  if (!(vmax > vmin)) return MapColor(colormap, 0.5);
  return MapColor(colormap, (value - vmin) / (vmax - vmin));
}

Color BadColor() { return {1.0, 0.0, 1.0, 1.0}; }

double Luminance(const Color& color) {
  return 0.2126 * Linearise(color.r) + 0.7152 * Linearise(color.g) + 0.0722 * Linearise(color.b);
}

}  // namespace diffeoflow::plot
