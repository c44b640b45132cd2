// Images and vector fields on a regular grid in 2-D or 3-D, with physical spacing, origin and
// orientation (as NIfTI's qform/sform keeps them).
//
// Conventions:
//  - Voxel (i, j, k) is stored at index i + nx·(j + ny·k): x fastest. 2-D images have nz = 1.
//  - Physical position of voxel index p: origin_mm + direction · diag(spacing_mm) · p. Images on
//    different grids meet through these affines (world_space.h: registration and `apply`).
//  - A vector field with `dim` components stores them component-major: all x-components, then
//    all y-components, then (3-D) all z-components, each block in voxel order. Components are in
//    physical units (mm) along the image axes (not rotated by `direction`).
//  - A displacement u means φ(x) = x + u(x).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <Eigen/Core>
#include <Eigen/LU>

#include "solvers/element_type.h"

namespace diffeoflow::registration {

struct Grid {
  int dim = 2;                             // 2 or 3
  std::array<int, 3> size{1, 1, 1};        // nx, ny, nz (nz = 1 in 2-D)
  std::array<double, 3> spacing_mm{1.0, 1.0, 1.0};
  std::array<double, 3> origin_mm{0.0, 0.0, 0.0};
  Eigen::Matrix3d direction = Eigen::Matrix3d::Identity();

  Eigen::Index voxels() const {
    return static_cast<Eigen::Index>(size[0]) * size[1] * size[2];
  }
  Eigen::Index index(int i, int j, int k = 0) const {
    return i + static_cast<Eigen::Index>(size[0]) * (j + static_cast<Eigen::Index>(size[1]) * k);
  }
  bool SameShape(const Grid& other) const { return dim == other.dim && size == other.size; }

  // Volume (area in 2-D) of one voxel in mm^dim: the weight of a voxel in a discretised integral.
  double voxel_volume_mm() const {
    double v = spacing_mm[0] * spacing_mm[1];
    return dim == 3 ? v * spacing_mm[2] : v;
  }
  // Physical position (mm) of continuous voxel coordinates p: origin + direction · diag(spacing) · p.
  Eigen::Vector3d VoxelToPhysical(const Eigen::Vector3d& p) const {
    return Eigen::Vector3d(origin_mm[0], origin_mm[1], origin_mm[2]) +
           direction * Eigen::Vector3d(spacing_mm[0] * p[0], spacing_mm[1] * p[1],
                                       spacing_mm[2] * p[2]);
  }
  // Inverse of VoxelToPhysical (direction is assumed invertible).
  Eigen::Vector3d PhysicalToVoxel(const Eigen::Vector3d& x) const {
    const Eigen::Vector3d q =
        direction.inverse() * (x - Eigen::Vector3d(origin_mm[0], origin_mm[1], origin_mm[2]));
    return Eigen::Vector3d(q[0] / spacing_mm[0], q[1] / spacing_mm[1], q[2] / spacing_mm[2]);
  }
};

// The element type an image had on disk (solvers/element_type.h). Values are always held as double
// in memory; the type is kept so that label maps can be written back in the type they came in
// (apply --interpolation nearest). Images made in memory are kFloat64.
using ::diffeoflow::ElementType;
using ::diffeoflow::ElementTypeName;
using ::diffeoflow::IsIntegerType;

struct Image {
  Grid grid;
  Eigen::VectorXd data;  // grid.voxels() values
  // Element type in the file the image was read from (after NIfTI scl_slope/scl_inter scaling,
  // which makes it kFloat32/kFloat64). Writers use it only when asked to (ImageWriteOptions).
  ElementType source_type = ElementType::kFloat64;
};

// A grid's size for messages and fingerprints: "64x48" in 2-D, "64x48x32" in 3-D.
inline std::string SizeText(const Grid& g) {
  std::string s = std::to_string(g.size[0]);
  for (int a = 1; a < g.dim; ++a) s.append("x").append(std::to_string(g.size[a]));
  return s;
}

struct VectorField {
  Grid grid;
  Eigen::VectorXd data;  // grid.dim × grid.voxels(), component-major
  auto component(int c) { return data.segment(c * grid.voxels(), grid.voxels()); }
  auto component(int c) const { return data.segment(c * grid.voxels(), grid.voxels()); }
};

}  // namespace diffeoflow::registration
