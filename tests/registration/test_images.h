// Synthetic images shared by the registration tests.
#pragma once

#include <cmath>

#include "registration/image.h"

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

}  // namespace diffeoflow::testing
