#include "registration/transform_io.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <vector>

#include <Eigen/LU>

#include "solvers/atomic_file.h"
#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

constexpr char kItkHeader[] = "#Insight Transform File";

// Smallest |det| of the linear part accepted as invertible.
constexpr double kSingularDeterminant = 1e-10;

// diag(−1, −1, 1): RAS ↔ LPS (its own inverse). In 2-D the same flip of the two in-plane axes.
Eigen::Matrix3d Flip() { return Eigen::Vector3d(-1.0, -1.0, 1.0).asDiagonal(); }

std::string Trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// All numbers of `text` (whitespace separated); InputError through `fail` on anything else.
template <typename Fail>
std::vector<double> Numbers(const std::string& text, Fail fail) {
  std::vector<double> values;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    std::size_t used = 0;
    double v = 0.0;
    try {
      v = std::stod(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size()) fail("'" + word + "' is not a number");
    if (!std::isfinite(v)) fail("a value is not finite ('" + word + "')");
    values.push_back(v);
  }
  return values;
}

void CheckInvertible(const Eigen::Matrix4d& affine, int dim,
                     const std::function<void(const std::string&)>& fail) {
  const double det = affine.topLeftCorner(dim, dim).determinant();
  if (!(std::abs(det) > kSingularDeterminant)) {
    char buffer[96];
    std::snprintf(buffer, sizeof(buffer), "the matrix is singular (determinant %.3g)", det);
    fail(buffer);
  }
}

// An ITK transform in LPS (T(y) = M (y − c) + c + t) as our RAS affine.
Eigen::Matrix4d FromItk(const Eigen::Matrix3d& M, const Eigen::Vector3d& t,
                        const Eigen::Vector3d& c) {
  const Eigen::Matrix3d F = Flip();
  Eigen::Matrix4d A = Eigen::Matrix4d::Identity();
  A.topLeftCorner<3, 3>() = F * M * F;
  A.topRightCorner<3, 1>() = F * (t + c - M * c);
  return A;
}

Eigen::Matrix3d RotationX(double a) {
  Eigen::Matrix3d r;
  r << 1, 0, 0, 0, std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a);
  return r;
}
Eigen::Matrix3d RotationY(double a) {
  Eigen::Matrix3d r;
  r << std::cos(a), 0, std::sin(a), 0, 1, 0, -std::sin(a), 0, std::cos(a);
  return r;
}
Eigen::Matrix3d RotationZ(double a) {
  Eigen::Matrix3d r;
  r << std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1;
  return r;
}

AffineFile ParseItk(const std::string& text, const std::function<void(const std::string&)>& fail) {
  std::istringstream in(text);
  std::string line, type;
  std::vector<double> parameters, fixed;
  bool have_parameters = false, have_fixed = false;
  int transforms = 0;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty()) continue;
    if (StartsWith(line, "#Transform")) {
      ++transforms;
    } else if (StartsWith(line, "#")) {
      continue;
    } else if (StartsWith(line, "Transform:")) {
      if (!type.empty()) fail("holds several transforms (one affine expected)");
      type = Trim(line.substr(10));
    } else if (StartsWith(line, "Parameters:")) {
      parameters = Numbers(line.substr(11), fail);
      have_parameters = true;
    } else if (StartsWith(line, "FixedParameters:")) {
      fixed = Numbers(line.substr(16), fail);
      have_fixed = true;
    } else {
      fail("unexpected line '" + line + "' in an ITK transform file");
    }
  }
  if (transforms > 1) fail("holds " + std::to_string(transforms) + " transforms (one expected)");
  if (type.empty()) fail("has no 'Transform:' line");
  if (!have_parameters) fail("has no 'Parameters:' line");
  if (!have_fixed) fail("has no 'FixedParameters:' line");

  auto is = [&](const std::string& name) {
    return type == name + "_double_3_3" || type == name + "_float_3_3" ||
           type == name + "_double_2_2" || type == name + "_float_2_2";
  };
  auto count = [&](const std::vector<double>& values, std::size_t expected, const char* what) {
    if (values.size() != expected) {
      fail(type + " needs " + std::to_string(expected) + " " + what + ", got " +
           std::to_string(values.size()));
    }
  };
  AffineFile file;
  Eigen::Matrix3d M = Eigen::Matrix3d::Identity();
  Eigen::Vector3d t = Eigen::Vector3d::Zero(), c = Eigen::Vector3d::Zero();
  const bool two_d = type.size() > 4 && type.compare(type.size() - 4, 4, "_2_2") == 0;
  if (is("AffineTransform") || is("MatrixOffsetTransformBase")) {
    const int d = two_d ? 2 : 3;
    count(parameters, d * d + d, "parameters (matrix row by row, then translation)");
    count(fixed, d, "fixed parameters (the centre)");
    for (int r = 0; r < d; ++r) {
      for (int k = 0; k < d; ++k) M(r, k) = parameters[r * d + k];
      t[r] = parameters[d * d + r];
      c[r] = fixed[r];
    }
    file.dim = d;
  } else if (type == "Euler3DTransform_double_3_3" || type == "Euler3DTransform_float_3_3") {
    count(parameters, 6, "parameters (angles about x, y, z in radians, then translation)");
    if (fixed.size() != 3 && fixed.size() != 4) {
      fail(type + " needs 3 or 4 fixed parameters (centre, ComputeZYX), got " +
           std::to_string(fixed.size()));
    }
    const bool zyx = fixed.size() == 4 && fixed[3] != 0.0;
    const Eigen::Matrix3d X = RotationX(parameters[0]), Y = RotationY(parameters[1]),
                          Z = RotationZ(parameters[2]);
    M = zyx ? Eigen::Matrix3d(Z * Y * X) : Eigen::Matrix3d(Z * X * Y);
    t = Eigen::Vector3d(parameters[3], parameters[4], parameters[5]);
    c = Eigen::Vector3d(fixed[0], fixed[1], fixed[2]);
    file.dim = 3;
  } else if (is("Rigid2DTransform") || is("Euler2DTransform")) {
    if (!two_d) fail(type + ": a 2-D transform type with _2_2 expected");
    count(parameters, 3, "parameters (angle in radians, then translation)");
    count(fixed, 2, "fixed parameters (the centre)");
    M.topLeftCorner<2, 2>() = RotationZ(parameters[0]).topLeftCorner<2, 2>();
    t = Eigen::Vector3d(parameters[1], parameters[2], 0.0);
    c = Eigen::Vector3d(fixed[0], fixed[1], 0.0);
    file.dim = 2;
  } else {
    fail("unknown transform type '" + type +
         "' (expected AffineTransform, MatrixOffsetTransformBase, Euler3DTransform, "
         "Euler2DTransform or Rigid2DTransform, _double_ or _float_)");
  }
  file.affine = FromItk(M, t, c);
  file.format = AffineFileFormat::kItk;
  CheckInvertible(file.affine, file.dim, fail);
  return file;
}

AffineFile ParseDipy(const std::string& text, const std::function<void(const std::string&)>& fail) {
  std::istringstream in(text);
  std::string line;
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    rows.push_back(Numbers(line, fail));
  }
  const std::size_t n = rows.size();
  if (n != 3 && n != 4) {
    fail("neither an ITK transform file (first line '#Insight Transform File V1.0') nor a 3x3 "
         "or 4x4 matrix of numbers (dipy's affine.txt); found " + std::to_string(n) +
         " rows of numbers");
  }
  for (const auto& row : rows) {
    if (row.size() != n) {
      fail("a " + std::to_string(n) + "x" + std::to_string(n) + " matrix (dipy's affine.txt) " +
           "needs " + std::to_string(n) + " numbers a row, a row has " +
           std::to_string(row.size()));
    }
  }
  for (std::size_t k = 0; k < n; ++k) {
    if (rows[n - 1][k] != (k + 1 == n ? 1.0 : 0.0)) {
      fail("the last row of the matrix must be (0, ..., 0, 1) (a homogeneous affine)");
    }
  }
  AffineFile file;
  file.dim = static_cast<int>(n) - 1;
  file.format = AffineFileFormat::kDipy;
  for (int r = 0; r < file.dim; ++r) {
    for (int k = 0; k < file.dim; ++k) file.affine(r, k) = rows[r][k];
    file.affine(r, 3) = rows[r][file.dim];
  }
  CheckInvertible(file.affine, file.dim, fail);
  return file;
}

std::string Number(double v) {
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "%.17g", v == 0.0 ? 0.0 : v);
  return buffer;
}

}  // namespace

std::string ItkAffineText(const Eigen::Matrix4d& affine, int dim,
                          const Eigen::Vector3d& centre_ras) {
  const Eigen::Matrix3d F = Flip();
  const Eigen::Matrix3d M = F * affine.topLeftCorner<3, 3>() * F;
  const Eigen::Vector3d c = F * centre_ras;
  const Eigen::Vector3d t = F * affine.topRightCorner<3, 1>() + M * c - c;
  std::string s = "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_";
  s += std::to_string(dim) + "_" + std::to_string(dim) + "\nParameters:";
  for (int r = 0; r < dim; ++r) {
    for (int k = 0; k < dim; ++k) s.append(" ").append(Number(M(r, k)));
  }
  for (int r = 0; r < dim; ++r) s.append(" ").append(Number(t[r]));
  s += "\nFixedParameters:";
  for (int r = 0; r < dim; ++r) s.append(" ").append(Number(c[r]));
  s += "\n";
  return s;
}

void WriteItkAffine(const std::string& path, const Eigen::Matrix4d& affine, int dim,
                    const Eigen::Vector3d& centre_ras) {
  WriteFileAtomically(path, ItkAffineText(affine, dim, centre_ras));
}

AffineFile ParseAffineText(const std::string& text, const std::string& path,
                           const std::string& argument) {
  const std::function<void(const std::string&)> fail = [&](const std::string& what) {
    throw InputError(argument + " " + path + ": " + what);
  };
  std::istringstream in(text);
  std::string first;
  while (std::getline(in, first) && Trim(first).empty()) {
  }
  if (StartsWith(Trim(first), kItkHeader)) return ParseItk(text, fail);
  if (StartsWith(Trim(first), "#") || StartsWith(Trim(first), "Transform:")) {
    fail("not an ITK transform file (its first line must be '#Insight Transform File V1.0')");
  }
  return ParseDipy(text, fail);
}

AffineFile ReadAffineFile(const std::string& path, const std::string& argument) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(argument + " " + path + ": cannot be read (missing file?)");
  std::ostringstream text;
  text << in.rdbuf();
  const std::string contents = text.str();
  if (contents.size() > (1u << 20)) {
    throw InputError(argument + " " + path + ": too large for an affine transform file");
  }
  if (contents.find('\0') != std::string::npos) {
    throw InputError(argument + " " + path +
                     ": a binary file (expected an ITK text transform or a dipy 4x4 matrix; "
                     "convert ANTs .mat files with ConvertTransformFile)");
  }
  return ParseAffineText(contents, path, argument);
}

Eigen::Matrix4d ReadAffineMatrix(const std::string& path, const std::string& argument) {
  return ReadAffineFile(path, argument).affine;
}

}  // namespace diffeoflow::registration
