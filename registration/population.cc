#include "registration/population.h"

#include <string>

#include "registration/image_ops.h"
#include "solvers/errors.h"

namespace diffeoflow::registration {

void PopulationOptions::Validate() const {
  if (subjects < 2 || subjects % 2 != 0) {
    throw InputError("population: subjects must be even and >= 2 (antithetic pairs), got " +
                     std::to_string(subjects));
  }
  if (!(max_displacement_fraction > 0.0 && max_displacement_fraction < 0.5)) {
    throw InputError("population: max_displacement_fraction must lie in (0, 0.5)");
  }
}

Population MakePopulation(const Image& base, const PopulationOptions& options,
                          const Image* labels) {
  options.Validate();
  if (labels != nullptr && !labels->grid.SameShape(base.grid)) {
    throw InputError("population: the labels' grid " + SizeText(labels->grid) +
                     " differs from the base image's " + SizeText(base.grid));
  }
  Population population;
  population.mean = base;
  if (labels != nullptr) population.mean_labels = *labels;
  for (int k = 0; k < options.subjects / 2; ++k) {
    RandomDiffeomorphismOptions warp;
    warp.max_displacement_fraction = options.max_displacement_fraction;
    warp.max_cycles = options.max_cycles;
    warp.spectral_decay = options.spectral_decay;
    warp.seed = options.seed + static_cast<std::uint64_t>(k);
    const RandomDiffeomorphism map = MakeRandomDiffeomorphism(base.grid, warp);
    // exp(v) and exp(−v): velocities v and −v.
    for (const VectorField* u : {&map.displacement_mm, &map.inverse_displacement_mm}) {
      const VectorField position = PositionFromDisplacement(*u);
      population.subjects.push_back(WarpImage(base, position, Interpolation::kLinear));
      population.displacements_mm.push_back(*u);
      if (labels != nullptr) {
        population.labels.push_back(WarpImage(*labels, position, Interpolation::kNearest));
      }
    }
  }
  return population;
}

}  // namespace diffeoflow::registration
