// Register and the image functions read through views (registration/image_view.h) give, for a
// float32 array in C order (z fastest) or a float64 array with negative strides, the results they
// give for an Image of the same values: bit for bit.
#include "registration/image_view.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "registration/image_ops.h"
#include "registration/register.h"
#include "registration/register_checkpoint.h"
#include "registration/world_space.h"
#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

// A smooth blob with some texture on a 3-D grid: values exact in float32.
Image Blob(const std::array<int, 3>& size, double cx, double cy, double cz) {
  Image image;
  image.grid.dim = 3;
  image.grid.size = size;
  image.grid.spacing_mm = {1.5, 1.25, 2.0};
  image.grid.origin_mm = {-3.0, 2.0, 1.0};
  image.data.resize(image.grid.voxels());
  for (int k = 0; k < size[2]; ++k)
    for (int j = 0; j < size[1]; ++j)
      for (int i = 0; i < size[0]; ++i) {
        const double x = i - cx, y = j - cy, z = k - cz;
        const double v = 100.0 / (1.0 + std::exp(std::sqrt(x * x + y * y + z * z) - 4.0)) +
                         3.0 * std::sin(0.7 * i + 0.3 * j * k);
        image.data[image.grid.index(i, j, k)] = static_cast<float>(v);
      }
  return image;
}

// The image's values as float32 in C order (arr[i, j, k] with k fastest, as NumPy's default),
// and a view of them.
struct FloatCOrder {
  std::vector<float> values;
  ImageView view;
  explicit FloatCOrder(const Image& image) {
    const auto& n = image.grid.size;
    values.resize(static_cast<std::size_t>(image.grid.voxels()));
    for (int i = 0; i < n[0]; ++i)
      for (int j = 0; j < n[1]; ++j)
        for (int k = 0; k < n[2]; ++k) {
          values[(static_cast<std::size_t>(i) * n[1] + j) * n[2] + k] =
              static_cast<float>(image.data[image.grid.index(i, j, k)]);
        }
    view.grid = image.grid;
    view.data = values.data();
    view.element = ElementType::kFloat32;
    view.strides = {static_cast<Eigen::Index>(n[1]) * n[2], n[2], 1};
  }
};

// The values as float64 with every axis reversed in memory (negative strides from the last
// element), and a view of them.
struct DoubleReversed {
  std::vector<double> values;
  ImageView view;
  explicit DoubleReversed(const Image& image)
      : values(image.data.data(), image.data.data() + image.data.size()) {
    std::reverse(values.begin(), values.end());
    const auto& n = image.grid.size;
    view.grid = image.grid;
    view.data = values.data() + values.size() - 1;
    view.element = ElementType::kFloat64;
    view.strides = {-1, -static_cast<Eigen::Index>(n[0]),
                    -static_cast<Eigen::Index>(n[0]) * n[1]};
  }
};

void ExpectSameResult(const RegistrationResult& a, const RegistrationResult& b) {
  EXPECT_EQ(a.iterations, b.iterations);
  EXPECT_EQ(a.energy, b.energy);
  EXPECT_EQ(a.ssd_initial, b.ssd_initial);
  EXPECT_EQ(a.ssd_final, b.ssd_final);
  EXPECT_EQ(a.world_space_note, b.world_space_note);
  EXPECT_TRUE(a.warped.data == b.warped.data);
  EXPECT_TRUE(a.displacement.data == b.displacement.data);
  EXPECT_TRUE(a.jacobian.data == b.jacobian.data);
  EXPECT_TRUE(a.inverse_displacement.data == b.inverse_displacement.data);
  EXPECT_TRUE(a.affine == b.affine);
  EXPECT_EQ(a.warped.source_type, b.warped.source_type);
}

TEST(ImageView, TheFunctionsOverViewsGiveTheImageResults) {
  const Image image = Blob({12, 10, 8}, 5.5, 4.0, 3.5);
  const FloatCOrder c_order(image);
  const DoubleReversed reversed(image);
  Grid target = image.grid;
  target.size = {9, 11, 7};
  target.spacing_mm = {1.7, 1.1, 2.1};
  target.origin_mm = {-2.0, 1.0, 0.5};
  Eigen::Matrix4d world = Eigen::Matrix4d::Identity();
  world(0, 1) = 0.05;
  world(2, 3) = 0.7;
  Eigen::VectorXd expected(target.voxels()), got(target.voxels());
  for (const ImageView& view : {c_order.view, reversed.view}) {
    EXPECT_TRUE(CopyImage(view).data == image.data);
    EXPECT_TRUE(NormalizeIntensity(view).data == NormalizeIntensity(image).data);
    EXPECT_TRUE(NormalizeIntensity(view, 2.0, 98.0).data ==
                NormalizeIntensity(image, 2.0, 98.0).data);
    EXPECT_EQ(BackgroundValue(view), BackgroundValue(image));
    EXPECT_EQ(CheckpointFingerprint(view, view, RegistrationOptions()),
              CheckpointFingerprint(image, image, RegistrationOptions()));
    for (Interpolation interpolation : {Interpolation::kLinear, Interpolation::kNearest}) {
      ResampleScalar(image.grid, image.data.data(), target, interpolation, expected.data(), -1.0,
                     world);
      ResampleScalar(view, target, interpolation, got.data(), -1.0, world);
      EXPECT_TRUE(got == expected);
    }
  }
  // The check of an Image's size stays where an Image becomes a view.
  Image short_image = image;
  short_image.data.resize(10);
  EXPECT_THROW(ImageView{short_image}, InputError);
}

RegistrationOptions Small() {
  RegistrationOptions options;
  options.levels = 1;
  options.iterations = 4;
  options.time_steps = 3;
  options.metric.alpha_mm2 = 16.0;
  options.metric.threads = 1;
  return options;
}

TEST(ImageView, RegisterThroughViewsEqualsRegisterOnImages) {
  const Image fixed = Blob({16, 14, 12}, 7.5, 6.5, 5.5);
  const Image moving = Blob({16, 14, 12}, 8.5, 6.0, 5.5);
  // Another grid: the moving image is resampled into the fixed world (through the view).
  const Image moving_elsewhere = [] {
    Image m = Blob({14, 14, 10}, 7.0, 6.0, 4.5);
    m.grid.origin_mm = {-1.0, 2.5, 2.0};
    return m;
  }();
  const FloatCOrder fixed_c(fixed);
  for (const Image* m : {&moving, &moving_elsewhere}) {
    const FloatCOrder moving_c(*m);
    const DoubleReversed moving_reversed(*m);
    RegistrationOptions options = Small();
    options.affine.mode = AffineMode::kNone;
    const RegistrationResult expected = Register(*m, fixed, options);
    EXPECT_EQ(expected.world_space_note.empty(), m == &moving) << expected.world_space_note;
    ExpectSameResult(Register(moving_c.view, fixed_c.view, options), expected);
    ExpectSameResult(Register(moving_reversed.view, fixed, options), expected);
    // The affine stage and no intensity normalisation read the views as well.
    options.affine.mode = AffineMode::kRigid;
    options.normalize_intensity = false;
    options.sigma = 2.0;
    ExpectSameResult(Register(moving_c.view, fixed_c.view, options), Register(*m, fixed, options));
  }
}

}  // namespace
}  // namespace diffeoflow::registration
