#include "registration/image_view.h"

#include <cmath>
#include <string>

#include "solvers/errors.h"

namespace diffeoflow::registration {

ImageView::ImageView(const Image& image)
    : grid(image.grid),
      data(image.data.data()),
      strides{1, image.grid.size[0],
              static_cast<Eigen::Index>(image.grid.size[0]) * image.grid.size[1]},
      source_type(image.source_type) {
  if (image.data.size() != image.grid.voxels()) {
    throw InputError("an image's values do not fill its grid: " +
                     std::to_string(image.data.size()) + " values, " + SizeText(image.grid) +
                     " voxels");
  }
}

Image CopyImage(const ImageView& view) {
  Image out{view.grid, Eigen::VectorXd(view.grid.voxels()), view.source_type};
  double* values = out.data.data();
  ForEachVoxel(view, [&](int, int, int, double v) { *values++ = v; });
  return out;
}

bool AllFinite(const ImageView& view) {
  bool finite = true;
  ForEachVoxel(view, [&](int, int, int, double v) { finite = finite && std::isfinite(v); });
  return finite;
}

}  // namespace diffeoflow::registration
