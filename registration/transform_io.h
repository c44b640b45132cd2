// Affine transform files: ITK's text transform format (what ANTs, ITK, SimpleITK and 3D Slicer
// read and write) and dipy's 4 × 4 matrix text file. In memory an affine is what
// RegistrationResult::affine holds: a 4 × 4 homogeneous matrix taking a fixed-world point x (NIfTI
// RAS+ mm) to A·x in the moving image's world.
//
// ITK text format (one transform):
//     #Insight Transform File V1.0
//     #Transform 0
//     Transform: AffineTransform_double_3_3
//     Parameters: m00 m01 m02 m10 m11 m12 m20 m21 m22 t0 t1 t2
//     FixedParameters: c0 c1 c2
// maps an ITK physical point y (LPS mm) to T(y) = M (y − c) + c + t, from the fixed (reference)
// image's space into the moving image's — the direction of our affine. ITK's physical space is
// LPS: y = F x with F = diag(−1, −1, 1) for our RAS x; so M = F L F, and t = F b + M c − c for
// A x = L x + b. In 2-D (AffineTransform_double_2_2: 4 matrix entries, 2 translations, 2 centre
// coordinates) ITK's NIfTI reader flips the two in-plane axes as well: F = diag(−1, −1).
// Read: AffineTransform, MatrixOffsetTransformBase (same layout), Euler3DTransform (angles about
// x, y, z in radians and a translation; R = R_z R_x R_y, or R_z R_y R_x when a 4th fixed parameter
// is 1, as ITK's ComputeZYX), Euler2DTransform and Rigid2DTransform (angle, translation), each
// with _double_ or _float_. Written: AffineTransform_double_D_D with the centre given.
//
// dipy: np.savetxt of AffineMap.affine, a (D + 1) × (D + 1) matrix of world coordinates (RAS mm)
// that maps static (fixed) points to moving points: taken as it is. Told apart from ITK by the
// first line: an ITK file starts with '#Insight Transform File'; anything else must be D + 1 rows
// of D + 1 numbers with a last row (0, …, 0, 1).
#pragma once

#include <string>

#include <Eigen/Core>

namespace diffeoflow::registration {

// ITK text of `affine` (fixed → moving, RAS) for `dim` 2 or 3, centre `centre_ras` (world mm;
// written in LPS as FixedParameters). Numbers with 17 significant digits (exact round trip).
std::string ItkAffineText(const Eigen::Matrix4d& affine, int dim,
                          const Eigen::Vector3d& centre_ras);

// Writes ItkAffineText to `path` atomically.
void WriteItkAffine(const std::string& path, const Eigen::Matrix4d& affine, int dim,
                    const Eigen::Vector3d& centre_ras);

enum class AffineFileFormat { kItk, kDipy };

struct AffineFile {
  Eigen::Matrix4d affine = Eigen::Matrix4d::Identity();  // fixed world → moving world, RAS
  int dim = 3;
  AffineFileFormat format = AffineFileFormat::kItk;
};

// Parses the text of an affine file (either format). InputError naming `argument` and `path`
// (e.g. "--initial-affine a.txt: ...") for anything else: unknown transform type, wrong number of
// parameters, a non-finite value, a singular matrix, a dipy matrix whose last row is not
// (0, …, 0, 1), several transforms.
AffineFile ParseAffineText(const std::string& text, const std::string& path,
                           const std::string& argument);

// Reads and parses `path` (InputError naming `argument` when it cannot be read).
AffineFile ReadAffineFile(const std::string& path,
                          const std::string& argument = "--initial-affine");

// The affine of an affine file as RegistrationResult::affine holds it (RAS, fixed → moving): the
// entry point for transform chains (a result folder's affine.txt, or a file from ITK/ANTs/dipy).
Eigen::Matrix4d ReadAffineMatrix(const std::string& path,
                                 const std::string& argument = "--transform");

}  // namespace diffeoflow::registration
