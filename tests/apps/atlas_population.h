// Shared by the atlas command-line tests (tests/apps, tests/mpi): a small 2-D population written
// as NIfTI files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "registration/image_io.h"
#include "registration/population.h"
#include "registration/shapes.h"

namespace diffeoflow::testing {

// `count` (even) 32² subjects of a C shape under antithetic random warps (registration/
// population.h), written to dir/s0.nii.gz, s1.nii.gz, …; returns " path0 path1 …".
inline std::string WriteAtlasPopulation(const std::filesystem::path& dir, int count,
                                        std::uint64_t seed) {
  registration::ShapeOptions shape;
  shape.size = 32;
  shape.edge_width_px = 2.0;
  registration::PopulationOptions options;
  options.subjects = count;
  options.max_displacement_fraction = 0.06;
  options.seed = seed;
  const registration::Population population =
      registration::MakePopulation(registration::CShapeImage(shape), options);
  std::string images;
  for (std::size_t i = 0; i < population.subjects.size(); ++i) {
    // Appends only: GCC 12's -Wrestrict misfires on "x" + std::string temporaries.
    std::string name = "s";
    name.append(std::to_string(i)).append(".nii.gz");
    const std::string path = (dir / name).string();
    registration::WriteImage(path, population.subjects[i]);
    images.append(" ").append(path);
  }
  return images;
}

}  // namespace diffeoflow::testing
