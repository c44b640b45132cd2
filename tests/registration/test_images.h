// Synthetic images shared by the registration tests.
#pragma once

#include <cmath>

#include "registration/image.h"
#include "registration/shapes.h"

namespace diffeoflow::testing {

// A size × size image (unit spacing) of a disc with a smooth (tanh, width 2 voxels) edge.
inline registration::Image SmoothDisc(int size, double cx, double cy, double radius) {
  registration::Image image;
  image.grid.dim = 2;
  image.grid.size = {size, size, 1};
  image.data.resize(image.grid.voxels());
  for (int j = 0; j < size; ++j) {
    for (int i = 0; i < size; ++i) {
      const double r = std::hypot(i - cx, j - cy);
      image.data[image.grid.index(i, j)] = 0.5 * (1.0 - std::tanh((r - radius) / 2.0));
    }
  }
  return image;
}

// A 48² C shape and its copy under a seeded smooth warp of at most 2.5 mm (original = fixed).
inline registration::WarpedPair SmallWarpedCPair() {
  registration::ShapeOptions shape;
  shape.size = 48;
  shape.edge_width_px = 2.0;
  registration::SmoothWarpOptions warp;
  warp.max_displacement_mm = 2.5;
  warp.width_fraction = 0.25;
  warp.seed = 3;
  return registration::MakeWarpedPair(registration::CShapeImage(shape), warp);
}

}  // namespace diffeoflow::testing
