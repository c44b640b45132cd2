// A synthetic population with a known mean shape, for atlas tests, benchmarks and the demo
// (issue 17, item 5): a base image warped by N random smooth diffeomorphisms whose velocities
// average to zero.
//
// The maps come in antithetic pairs: subject 2k is base ∘ exp(v_k), subject 2k + 1 is
// base ∘ exp(−v_k), with v_k = MakeRandomDiffeomorphism's stationary velocity (shapes.h; seed
// `seed + k`). The velocities sum to zero exactly, so the base image is the population's centre:
// to first order in v exactly the Fréchet mean of the maps, and the shape an atlas method should
// recover. (For large v the LDDMM mean of exp(±v) moves off the base by O(|v|²); the benchmark's
// 6 % warps keep that well below the atlas error, see docs/atlas.md.)
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "registration/image.h"
#include "registration/shapes.h"

namespace diffeoflow::registration {

struct PopulationOptions {
  int subjects = 4;                        // N, even (antithetic pairs), ≥ 2
  double max_displacement_fraction = 0.06;  // of the largest extent, per map (shapes.h)
  int max_cycles = 2;
  double spectral_decay = 2.0;
  std::uint64_t seed = 0;

  // InputError naming the field unless N is even and ≥ 2 and the fraction lies in (0, 0.5).
  void Validate() const;
};

struct Population {
  Image mean;                        // the true mean shape: the base image itself
  std::vector<Image> subjects;       // base ∘ φ_i (linear interpolation, clamped)
  std::vector<VectorField> displacements_mm;  // u_i: φ_i = id + u_i
  std::optional<Image> mean_labels;  // the base labels, when given
  std::vector<Image> labels;         // labels ∘ φ_i (nearest), when given
};

// The population of `base` (2-D or 3-D); `labels` (same grid) is carried along with nearest
// interpolation when given. Reproducible: the same options give the same bits.
Population MakePopulation(const Image& base, const PopulationOptions& options,
                          const Image* labels = nullptr);

}  // namespace diffeoflow::registration
