// Tests of the figure library: PNG size, colour maps, image pixels, ticks, contours, errors.
#include <cairo.h>
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "plot/figure.h"
#include "solvers/errors.h"
#include "tests/scratch.h"

namespace diffeoflow::plot {
namespace {

namespace fs = std::filesystem;

class PlotTest : public testing::ScratchTest {
 protected:
  PlotTest() : ScratchTest("diffeoflow_plot_test_") {}
};

// A PNG read back with cairo; pixel colours as 0..255 channels.
class Png {
 public:
  explicit Png(const std::string& path)
      : surface_(cairo_image_surface_create_from_png(path.c_str())) {}
  ~Png() { cairo_surface_destroy(surface_); }
  Png(const Png&) = delete;
  Png& operator=(const Png&) = delete;
  bool ok() const { return cairo_surface_status(surface_) == CAIRO_STATUS_SUCCESS; }
  int width() const { return cairo_image_surface_get_width(surface_); }
  int height() const { return cairo_image_surface_get_height(surface_); }
  std::array<int, 3> At(int x, int y) const {
    const unsigned char* data = cairo_image_surface_get_data(surface_);
    const int stride = cairo_image_surface_get_stride(surface_);
    std::uint32_t p;
    std::memcpy(&p, data + y * stride + 4 * x, 4);
    return {static_cast<int>((p >> 16) & 0xff), static_cast<int>((p >> 8) & 0xff),
            static_cast<int>(p & 0xff)};
  }

 private:
  cairo_surface_t* surface_;
};

std::array<int, 3> To8(const Color& c) {
  return {static_cast<int>(std::lround(c.r * 255)), static_cast<int>(std::lround(c.g * 255)),
          static_cast<int>(std::lround(c.b * 255))};
}

void ExpectColorNear(const std::array<int, 3>& actual, const std::array<int, 3>& expected,
                     int tolerance, const std::string& where) {
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(actual[k], expected[k], tolerance) << where << " channel " << k;
  }
}

TEST_F(PlotTest, SavedPngHasTheDocumentedPixelSize) {
  Figure fig(2, 3, 200, 150);
  fig.At(0, 0).Line(std::vector<double>{0, 1, 2}, std::vector<double>{1, 3, 2});
  ASSERT_EQ(fig.Width(), 600);
  ASSERT_EQ(fig.Height(), 300);
  fig.SavePng(Path("a.png"));
  Png a(Path("a.png"));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.width(), 600);
  EXPECT_EQ(a.height(), 300);

  fig.SetTitle("with a title");
  fig.SavePng(Path("b.png"));
  Png b(Path("b.png"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.width(), 600);
  EXPECT_EQ(b.height(), 300 + kFigureTitleHeightPx);
  // Only the two final files: no temporary left beside them.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 2);
}

TEST(Colormap, EndsMapToTheEndColours) {
  for (Colormap map : {Colormap::kGray, Colormap::kViridis, Colormap::kMagma, Colormap::kCoolwarm}) {
    const Color lo = MapColor(map, 0.0), hi = MapColor(map, 1.0);
    const Color vlo = MapValue(map, -3.0, -3.0, 5.0), vhi = MapValue(map, 5.0, -3.0, 5.0);
    EXPECT_EQ(To8(vlo), To8(lo));
    EXPECT_EQ(To8(vhi), To8(hi));
    // Out of range values clamp to the ends.
    EXPECT_EQ(To8(MapValue(map, -100.0, -3.0, 5.0)), To8(lo));
    EXPECT_EQ(To8(MapValue(map, 100.0, -3.0, 5.0)), To8(hi));
    EXPECT_NE(To8(lo), To8(hi));
  }
  EXPECT_EQ(To8(MapColor(Colormap::kGray, 0.0)), (std::array<int, 3>{0, 0, 0}));
  EXPECT_EQ(To8(MapColor(Colormap::kGray, 1.0)), (std::array<int, 3>{255, 255, 255}));
}

TEST(Colormap, SequentialMapsAreMonotoneInLuminance) {
  for (Colormap map : {Colormap::kGray, Colormap::kViridis, Colormap::kMagma}) {
    double previous = -1.0;
    for (int k = 0; k <= 200; ++k) {
      const double l = Luminance(MapColor(map, k / 200.0));
      EXPECT_GT(l, previous) << "map " << static_cast<int>(map) << " at t = " << k / 200.0;
      previous = l;
    }
  }
}

TEST(Colormap, DivergingMapIsLightestInTheMiddle) {
  const double centre = Luminance(MapColor(Colormap::kCoolwarm, 0.5));
  for (int k = 0; k <= 20; ++k) {
    if (k == 10) continue;
    EXPECT_LT(Luminance(MapColor(Colormap::kCoolwarm, k / 20.0)), centre) << k;
  }
  const Color blue = MapColor(Colormap::kCoolwarm, 0.0), red = MapColor(Colormap::kCoolwarm, 1.0);
  EXPECT_GT(blue.b, blue.r);
  EXPECT_GT(red.r, red.b);
}

TEST(Colormap, NonFiniteValuesGetTheBadColour) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(To8(MapValue(Colormap::kViridis, nan, 0, 1)), To8(BadColor()));
  EXPECT_EQ(To8(MapColor(Colormap::kGray, std::numeric_limits<double>::infinity())),
            To8(BadColor()));
}

TEST(Colormap, CategoricalPaletteHasTenDistinctColoursAndWraps) {
  for (int i = 0; i < kCategoricalColorCount; ++i) {
    for (int j = i + 1; j < kCategoricalColorCount; ++j) {
      const auto a = To8(CategoricalColor(i)), b = To8(CategoricalColor(j));
      const int distance = std::abs(a[0] - b[0]) + std::abs(a[1] - b[1]) + std::abs(a[2] - b[2]);
      EXPECT_GT(distance, 60) << i << " vs " << j;
    }
  }
  EXPECT_EQ(To8(CategoricalColor(12)), To8(CategoricalColor(2)));
  EXPECT_EQ(To8(CategoricalColor(-1)), To8(CategoricalColor(9)));
}

TEST(Ticks, NiceTicksForTypicalRanges) {
  EXPECT_EQ(NiceTicks(0.0, 1.0, 5), (std::vector<double>{0.0, 0.2, 0.4, 0.6, 0.8, 1.0}));
  EXPECT_EQ(NiceTicks(0.0, 64.0, 5), (std::vector<double>{0, 20, 40, 60}));
  const auto t = NiceTicks(-2.0, 2.0, 5);
  EXPECT_EQ(t, (std::vector<double>{-2, -1, 0, 1, 2}));
  const auto u = NiceTicks(0.013, 0.087, 4);
  ASSERT_GE(u.size(), 3u);
  for (double v : u) {
    EXPECT_GE(v, 0.013);
    EXPECT_LE(v, 0.087);
  }
  // Equally spaced by a step of the form {1, 2, 2.5, 5} x 10^k.
  const double step = u[1] - u[0];
  const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-12));
  EXPECT_TRUE(std::abs(mantissa - 1) < 1e-9 || std::abs(mantissa - 2) < 1e-9 ||
              std::abs(mantissa - 2.5) < 1e-9 || std::abs(mantissa - 5) < 1e-9)
      << mantissa;
  for (std::size_t k = 1; k < u.size(); ++k) EXPECT_NEAR(u[k] - u[k - 1], step, 1e-12);
  // A degenerate range still gives ticks around the value.
  const auto d = NiceTicks(3.0, 3.0);
  EXPECT_GE(d.size(), 2u);
  // Ranges beyond double resolution still give increasing ticks (and terminate).
  EXPECT_EQ(NiceTicks(-1e308, 1e308).size(), 2u);
  const auto fine = NiceTicks(1e10, 1e10 + 1e-7);
  ASSERT_GE(fine.size(), 2u);
  EXPECT_LT(fine.front(), fine.back());
  EXPECT_THROW(NiceTicks(1.0, 0.0), InputError);
  EXPECT_THROW(NiceTicks(0.0, std::numeric_limits<double>::infinity()), InputError);
}

TEST(Ticks, LogTicksAndLabels) {
  EXPECT_EQ(LogTicks(1e-3, 10.0), (std::vector<double>{1e-3, 1e-2, 1e-1, 1.0, 10.0}));
  EXPECT_EQ(LogTicks(1.0, 10.0), (std::vector<double>{1.0, 2.0, 5.0, 10.0}));
  EXPECT_THROW(LogTicks(0.0, 1.0), InputError);
  EXPECT_EQ(FormatTick(0.2, 0.2), "0.2");
  EXPECT_EQ(FormatTick(2.5, 2.5), "2.5");
  EXPECT_EQ(FormatTick(40.0, 20.0), "40");
  EXPECT_EQ(FormatTick(-1e-17, 0.5), "0.0");
  EXPECT_EQ(FormatTick(-1e-17, 1.0), "0");
  EXPECT_EQ(FormatTick(-0.5, 0.5), "-0.5");
  EXPECT_EQ(FormatTick(0.75, 0.25), "0.75");
  EXPECT_EQ(FormatTick(1e-5, 1e-5), "1e-05");
  EXPECT_EQ(FormatTick(2e6, 1e6), "2e06");
}

TEST_F(PlotTest, ImagePixelHasTheColormapColour) {
  // A 2 x 2 image in the mathematical convention: row 0 at the bottom.
  Eigen::MatrixXd values(2, 2);
  values << 0.0, 0.25,  // bottom row
      0.75, 1.0;        // top row
  for (Origin origin : {Origin::kLower, Origin::kUpper}) {
    Figure fig(1, 1, 300, 300);
    fig.At(0, 0).Image(values, {0, 2, 0, 2},
                       {.colormap = Colormap::kViridis, .vmin = 0.0, .vmax = 1.0,
                        .origin = origin});
    const std::string path = Path("image.png");
    fig.SavePng(path);
    Png png(path);
    ASSERT_TRUE(png.ok());
    // Centres of the four cells (x = 0.5 / 1.5, y = 0.5 / 1.5 in data units).
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 2; ++j) {
        const double y = origin == Origin::kLower ? i + 0.5 : 2.0 - (i + 0.5);
        const Eigen::Vector2d p = fig.DataToPixel(0, 0, j + 0.5, y);
        const auto actual = png.At(static_cast<int>(p.x()), static_cast<int>(p.y()));
        ExpectColorNear(actual, To8(MapColor(Colormap::kViridis, values(i, j))), 1,
                        "cell (" + std::to_string(i) + ", " + std::to_string(j) + ")");
      }
    }
  }
}

TEST_F(PlotTest, NanSamplesAreDrawnInTheBadColour) {
  Eigen::MatrixXd values = Eigen::MatrixXd::Constant(4, 4, 2.0);
  values(1, 2) = std::numeric_limits<double>::quiet_NaN();
  values(3, 3) = std::numeric_limits<double>::infinity();
  Figure fig(1, 1, 240, 240);
  fig.At(0, 0).Image(values, {0, 4, 0, 4}, {.colormap = Colormap::kGray});
  fig.At(0, 0).Contour(values, {0, 4, 0, 4}, 1.0);
  fig.SavePng(Path("nan.png"));
  Png png(Path("nan.png"));
  ASSERT_TRUE(png.ok());
  const Eigen::Vector2d bad = fig.DataToPixel(0, 0, 2.5, 1.5);
  ExpectColorNear(png.At(static_cast<int>(bad.x()), static_cast<int>(bad.y())), To8(BadColor()),
                  1, "NaN cell");
  const Eigen::Vector2d inf = fig.DataToPixel(0, 0, 3.5, 3.5);
  ExpectColorNear(png.At(static_cast<int>(inf.x()), static_cast<int>(inf.y())), To8(BadColor()),
                  1, "Inf cell");
  // The finite samples share one value: the middle of the map.
  const Eigen::Vector2d good = fig.DataToPixel(0, 0, 0.5, 0.5);
  ExpectColorNear(png.At(static_cast<int>(good.x()), static_cast<int>(good.y())),
                  To8(MapColor(Colormap::kGray, 0.5)), 1, "finite cell");
}

TEST_F(PlotTest, ContourOfACirclePassesThroughTheCircle) {
  // f(x, y) = x² + y² on [-1, 1]², level 0.36: the circle of radius 0.6.
  const int n = 101;
  Eigen::MatrixXd f(n, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double x = -1.0 + 2.0 * (j + 0.5) / n, y = -1.0 + 2.0 * (i + 0.5) / n;
      f(i, j) = x * x + y * y;
    }
  }
  Figure fig(1, 1, 400, 400);
  Axes& ax = fig.At(0, 0);
  ax.SetLimits(-1, 1, -1, 1).SetEqualAspect();
  ax.Contour(f, {-1, 1, -1, 1}, 0.36, {.color = Color{1.0, 0.0, 0.0, 1.0}, .width = 2.0});
  fig.SavePng(Path("contour.png"));
  Png png(Path("contour.png"));
  ASSERT_TRUE(png.ok());
  auto is_red = [&](int x, int y) {
    const auto c = png.At(x, y);
    return c[0] > 200 && c[1] < 120 && c[2] < 120;
  };
  auto red_near = [&](const Eigen::Vector2d& p) {
    for (int dy = -1; dy <= 1; ++dy) {
      for (int dx = -1; dx <= 1; ++dx) {
        if (is_red(static_cast<int>(p.x()) + dx, static_cast<int>(p.y()) + dy)) return true;
      }
    }
    return false;
  };
  for (int k = 0; k < 16; ++k) {
    const double angle = 2.0 * std::numbers::pi * (k + 0.3) / 16.0;
    const Eigen::Vector2d on = fig.DataToPixel(0, 0, 0.6 * std::cos(angle), 0.6 * std::sin(angle));
    EXPECT_TRUE(red_near(on)) << "no contour at angle " << angle;
    const Eigen::Vector2d inside =
        fig.DataToPixel(0, 0, 0.45 * std::cos(angle), 0.45 * std::sin(angle));
    const Eigen::Vector2d outside =
        fig.DataToPixel(0, 0, 0.75 * std::cos(angle), 0.75 * std::sin(angle));
    EXPECT_FALSE(red_near(inside)) << "contour inside the circle at angle " << angle;
    EXPECT_FALSE(red_near(outside)) << "contour outside the circle at angle " << angle;
  }
}

TEST_F(PlotTest, SavingIntoAMissingFolderThrowsNamingThePathAndLeavesNoFile) {
  Figure fig(1, 1);
  fig.At(0, 0).Scatter(Eigen::VectorXd::LinSpaced(5, 0, 1), Eigen::VectorXd::LinSpaced(5, 1, 2));
  const std::string path = Path("missing/sub/figure.png");
  try {
    fig.SavePng(path);
    FAIL() << "expected InputError";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(Path("missing")));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 0);
}

TEST_F(PlotTest, GridScatterPathsEllipseAndLegendRender) {
  Figure fig(1, 2, 300, 260);
  Eigen::MatrixXd X(5, 5), Y(5, 5);
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 5; ++j) {
      X(i, j) = j + 0.1 * std::sin(i);
      Y(i, j) = i;
    }
  }
  Axes& a = fig.At(0, 0);
  a.SetTitle("grid").SetXLabel("x").SetYLabel("y");
  a.Grid(X, Y, 2, {.color = Color{0.0, 0.0, 1.0, 1.0}, .width = 3.0});
  Axes& b = fig.At(0, 1);
  b.SetLogY().SetTitle("log");
  b.Line(std::vector<double>{1, 2, 3}, std::vector<double>{1, 0.1, 0.01}, {.label = "loss"});
  b.ScatterClasses(Eigen::Vector2d(1, 2), Eigen::Vector2d(0.5, 0.05), Eigen::Vector2i(0, 1),
                   {}, {"a", "b"});
  std::vector<Eigen::MatrixXd> paths(2, Eigen::MatrixXd::Random(4, 2).cwiseAbs());
  b.Paths(paths, {.alpha = 0.3});
  Eigen::Matrix2d G;
  G << 4, 1, 1, 3;
  b.Ellipse({2.0, 0.1}, G, 0.2, {.alpha = 0.3, .label = "metric"});
  b.Text(1.5, 0.5, "note");
  b.Colorbar(Colormap::kMagma, 0, 1, "c");
  fig.SavePng(Path("all.png"));
  Png png(Path("all.png"));
  ASSERT_TRUE(png.ok());
  // The grid line along row 2 (y = 2) passes through the node (X(2, 2), 2) in blue.
  const Eigen::Vector2d node = fig.DataToPixel(0, 0, X(2, 2), 2.0);
  const auto c = png.At(static_cast<int>(node.x()), static_cast<int>(node.y()));
  EXPECT_LT(c[0], 80);
  EXPECT_GT(c[2], 180);
}

TEST_F(PlotTest, DegenerateDataRendersWithoutCrashing) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Figure fig(2, 2, 200, 180);
  fig.At(0, 0).Image(Eigen::MatrixXd::Constant(3, 3, nan), {0, 1, 0, 1});
  fig.At(0, 1).Line(std::vector<double>{nan, nan}, std::vector<double>{1, 2});
  fig.At(1, 0).Line(std::vector<double>{0, 1}, std::vector<double>{-1e300, 1e300});
  fig.At(1, 1).SetLogY().Line(std::vector<double>{0, 1, 2}, std::vector<double>{0, -1, 0});
  fig.At(1, 1).Scatter(Eigen::VectorXd::Zero(1), Eigen::VectorXd::Constant(1, 5.0));
  fig.SavePng(Path("degenerate.png"));
  Png png(Path("degenerate.png"));
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(png.width(), 400);
  // The all-NaN image is drawn in the bad colour.
  const Eigen::Vector2d p = fig.DataToPixel(0, 0, 0.5, 0.5);
  ExpectColorNear(png.At(static_cast<int>(p.x()), static_cast<int>(p.y())), To8(BadColor()), 1,
                  "all-NaN image");
}

TEST(Errors, BadArgumentsThrowInputError) {
  EXPECT_THROW(Figure(0, 1), InputError);
  EXPECT_THROW(Figure(1, 1, 10, 10), InputError);
  Figure fig(1, 1);
  EXPECT_THROW(fig.At(1, 0), InputError);
  Axes& ax = fig.At(0, 0);
  EXPECT_THROW(ax.Line(Eigen::VectorXd(3), Eigen::VectorXd(2)), InputError);
  EXPECT_THROW(ax.Image(Eigen::MatrixXd(0, 0), {}), InputError);
  EXPECT_THROW(ax.Image(Eigen::MatrixXd::Zero(2, 2), {1, 0, 0, 1}), InputError);
  EXPECT_THROW(ax.Grid(Eigen::MatrixXd::Zero(3, 3), Eigen::MatrixXd::Zero(3, 2)), InputError);
  EXPECT_THROW(ax.Paths({Eigen::MatrixXd::Zero(3, 3)}), InputError);
  Eigen::Matrix2d indefinite;
  indefinite << 1, 0, 0, -1;
  EXPECT_THROW(ax.Ellipse({0, 0}, indefinite), InputError);
  EXPECT_THROW(ax.SetLimits(1, 0, 0, 1), InputError);
}

}  // namespace
}  // namespace diffeoflow::plot
