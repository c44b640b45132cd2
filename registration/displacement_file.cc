#include "registration/displacement_file.h"

#include <cmath>

#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

// Largest z component a 2-D grid's in-plane axes may have (float rounding of NIfTI headers).
constexpr double kPlaneTolerance = 1e-6;

// The block of the direction matrix that takes axis components to the world components stored in
// the file: 3×3 in 3-D; in 2-D the top-left 2×2 (world x, y from axes 0, 1).
Eigen::Matrix3d AxesToWorld(const Grid& grid, const std::string& path, const std::string& what) {
  Eigen::Matrix3d m = grid.direction;
  if (grid.dim == 2) {
    if (std::abs(m(2, 0)) > kPlaneTolerance || std::abs(m(2, 1)) > kPlaneTolerance) {
      throw InputError(path + ": " + what + " a 2-D displacement field whose plane is not the "
                       "world x-y plane (ITK's 2-D warps lie in that plane)");
    }
    m.row(2) << 0.0, 0.0, 1.0;
    m.col(2) << 0.0, 0.0, 1.0;
  }
  if (!(std::abs(m.determinant()) > 1e-12)) {
    throw InputError(path + ": " + what + " a displacement field with a singular direction");
  }
  return m;
}

const Eigen::Vector3d kRasToLps(-1.0, -1.0, 1.0);

}  // namespace

void WriteDisplacementFile(const std::string& path, const VectorField& displacement_mm) {
  const Grid& g = displacement_mm.grid;
  const Eigen::Index n = g.voxels();
  if (displacement_mm.data.size() != g.dim * n) {
    throw InputError(path + ": displacement data size does not match its grid");
  }
  const Eigen::Matrix3d to_lps = kRasToLps.asDiagonal() * AxesToWorld(g, path, "cannot write");
  VectorField out{g, Eigen::VectorXd(g.dim * n)};
  for (Eigen::Index x = 0; x < n; ++x) {
    Eigen::Vector3d u = Eigen::Vector3d::Zero();
    for (int c = 0; c < g.dim; ++c) u[c] = displacement_mm.data[c * n + x];
    const Eigen::Vector3d d = to_lps * u;
    for (int c = 0; c < g.dim; ++c) out.data[c * n + x] = d[c];
  }
  WriteVectorField(path, out);
}

VectorField ReadDisplacementFile(const std::string& path, const ImageReadOptions& options) {
  VectorField field = ReadVectorField(path, options);
  const Grid& g = field.grid;
  const Eigen::Index n = g.voxels();
  const std::string name = options.argument.empty() ? path : options.argument + ": " + path;
  const Eigen::Matrix3d to_axes =
      (kRasToLps.asDiagonal() * AxesToWorld(g, name, "cannot use")).inverse();
  for (Eigen::Index x = 0; x < n; ++x) {
    Eigen::Vector3d d = Eigen::Vector3d::Zero();
    for (int c = 0; c < g.dim; ++c) d[c] = field.data[c * n + x];
    const Eigen::Vector3d u = to_axes * d;
    for (int c = 0; c < g.dim; ++c) field.data[c * n + x] = u[c];
  }
  return field;
}

}  // namespace diffeoflow::registration
