// A read-only view of a scalar image whose values live elsewhere: an Image's, or a caller's array
// (the Python module's NumPy inputs), float32 or float64, in any memory order. Voxel (i, j, k) is
// the element at data + i·strides[0] + j·strides[1] + k·strides[2] (strides in elements, any sign;
// strides[2] is unused in 2-D). `Register` reads its two input images through views, so that an
// input is never copied: the first images it makes are its own working images (the normalised
// intensities, the moving image resampled into the fixed world).
//
// An Image converts to a view of itself (float64, x fastest), so functions taking a view take an
// Image as they did before; values read through a view are the doubles an Image of the same
// values holds, and the functions over views give results bit-identical to the Image ones.
#pragma once

#include <array>

#include <Eigen/Core>

#include "registration/image.h"

namespace diffeoflow::registration {

struct ImageView {
  Grid grid;
  const void* data = nullptr;
  ElementType element = ElementType::kFloat64;  // of the values at `data`: kFloat32 or kFloat64
  std::array<Eigen::Index, 3> strides{1, 0, 0};
  // As Image::source_type: the type the values had on disk (kept by what is resampled from them).
  ElementType source_type = ElementType::kFloat64;

  ImageView() = default;
  // The values of `image` (no copy; `image` must outlive the view). Not explicit: an Image is
  // passed wherever a view is taken. InputError when its values do not fill its grid.
  ImageView(const Image& image);  // NOLINT(google-explicit-constructor)

  // True for an Image's layout: float64, x fastest, no gaps.
  bool image_layout() const {
    return element == ElementType::kFloat64 && strides[0] == 1 && strides[1] == grid.size[0] &&
           (grid.dim == 2 || strides[2] == static_cast<Eigen::Index>(grid.size[0]) * grid.size[1]);
  }
};

namespace detail {

// The values of an image row by row, for the samplers and loops written once over both layouts:
// Row(j, k)[i] is voxel (i, j, k) as a double (k = 0 in 2-D).
struct ContiguousValues {  // an Image's layout
  const double* data;
  Eigen::Index nx, nxy;
  ContiguousValues(const Grid& grid, const double* values)
      : data(values), nx(grid.size[0]), nxy(static_cast<Eigen::Index>(grid.size[0]) * grid.size[1]) {}
  const double* Row(Eigen::Index j, Eigen::Index k) const { return data + k * nxy + j * nx; }
};

template <typename T>
struct StridedRow {
  const T* start;
  Eigen::Index stride;
  double operator[](Eigen::Index i) const { return static_cast<double>(start[i * stride]); }
};

template <typename T>
struct StridedValues {  // any other view
  const T* data;
  Eigen::Index sx, sy, sz;
  StridedRow<T> Row(Eigen::Index j, Eigen::Index k) const { return {data + j * sy + k * sz, sx}; }
};

}  // namespace detail

// visit(values) with the view's values as detail::ContiguousValues (an Image's layout) or
// detail::StridedValues<float or double>; returns what visit returns.
template <typename Visit>
decltype(auto) VisitValues(const ImageView& view, Visit&& visit) {
  if (view.image_layout()) {
    return visit(detail::ContiguousValues(view.grid, static_cast<const double*>(view.data)));
  }
  const auto& s = view.strides;
  if (view.element == ElementType::kFloat32) {
    return visit(detail::StridedValues<float>{static_cast<const float*>(view.data), s[0], s[1],
                                              view.grid.dim == 3 ? s[2] : 0});
  }
  return visit(detail::StridedValues<double>{static_cast<const double*>(view.data), s[0], s[1],
                                             view.grid.dim == 3 ? s[2] : 0});
}

// f(i, j, k, value) for every voxel in x-fastest order (the order of Image::data).
template <typename F>
void ForEachVoxel(const ImageView& view, F&& f) {
  const int nx = view.grid.size[0], ny = view.grid.size[1];
  const int nz = view.grid.dim == 3 ? view.grid.size[2] : 1;
  VisitValues(view, [&](const auto& values) {
    for (int k = 0; k < nz; ++k) {
      for (int j = 0; j < ny; ++j) {
        const auto row = values.Row(j, k);
        for (int i = 0; i < nx; ++i) f(i, j, k, static_cast<double>(row[i]));
      }
    }
  });
}

// The view's values in an Image of their own (x-fastest doubles, the view's source_type): a copy,
// for an image the caller keeps or changes.
Image CopyImage(const ImageView& view);

// True when every value is finite.
bool AllFinite(const ImageView& view);

}  // namespace diffeoflow::registration
