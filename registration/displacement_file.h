// Displacement files in the ITK/ANTs convention (docs/transforms.md): what `register` writes as
// displacement.nii.gz and inverse_displacement.nii.gz, and what `apply` reads as a warp.
//
// In memory a displacement u lives on a grid with components in mm along the grid's axes
// (image.h): the map is φ(x) = x + u(x)/spacing in voxel coordinates, and the world displacement
// at voxel x is
//     w(x) = D · u(x)                (D = grid.direction, NIfTI's RAS+ world, mm)
// On disk it is what ITK's DisplacementFieldTransform reads: a NIfTI of dims (nx, ny, nz, 1, 3)
// (2-D: (nx, ny, 1, 1, 2)), intent vector, with the grid's qform/sform, whose vector at voxel x is
// the displacement in ITK's physical space, LPS:
//     3-D:  d(x) = F · w(x),  F = diag(−1, −1, 1)
//     2-D:  d(x) = (−w_x, −w_y)   (ITK reads a 2-D NIfTI's plane as the first two LPS axes)
// so that the ITK point p_LPS = F · A(x) of voxel x maps to p_LPS + d(x). In 2-D the grid's plane
// must be the world x–y plane (its first two axes without z components), as it is for every 2-D
// NIfTI, PNG and .npy this project reads; anything else is refused.
#pragma once

#include <string>

#include "registration/image.h"
#include "registration/image_io.h"

namespace diffeoflow::registration {

// Writes u (mm along the grid's axes) as an ITK/ANTs displacement file (.nii or .nii.gz, float32).
// InputError naming the path for a 2-D grid whose plane is not the world x–y plane.
void WriteDisplacementFile(const std::string& path, const VectorField& displacement_mm);

// Reads an ITK/ANTs displacement file (this project's or one ANTs/ITK wrote) and returns u in mm
// along its grid's axes (the inverse of WriteDisplacementFile). InputError naming the path (and
// options.argument) for anything else: not NIfTI, not a vector field of dim components on a 2-D
// or 3-D grid, non-finite values, a 2-D grid outside the x–y plane.
VectorField ReadDisplacementFile(const std::string& path, const ImageReadOptions& options = {});

}  // namespace diffeoflow::registration
