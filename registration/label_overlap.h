// Label maps compared and combined: the overlap measures of the brain and atlas benchmarks.
#pragma once

#include <vector>

#include "registration/image.h"

namespace diffeoflow::registration {

// Mean Dice over the nonzero labels of `reference`: 2|A ∩ B| / (|A| + |B|) per label (values
// rounded to the nearest integer; both on the same grid).
double MeanDice(const Image& reference, const Image& labels);

// The number of distinct nonzero labels.
int CountLabels(const Image& labels);

// Per voxel the label most of `maps` give (ties: the smallest label), all on one grid.
Image MajorityVote(const std::vector<Image>& maps);

}  // namespace diffeoflow::registration
