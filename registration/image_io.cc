#include "registration/image_io.h"

#include <nifti/nifti2_io.h>
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdlib>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/npy.h"
#include "solvers/read_file.h"

namespace diffeoflow::registration {
namespace {

using Index = Eigen::Index;

// Largest number of voxels (times components) a reader accepts: 2^30 doubles is 8 GiB.
constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 30;
// Deflate cannot compress by more than about 1032:1; anything claiming more is corrupt.
constexpr std::uint64_t kMaxDeflateRatio = 1100;

[[noreturn]] void Fail(const std::string& argument, const std::string& path,
                       const std::string& what) {
  throw InputError(InputPrefix(argument, path) + what);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Product of sizes with overflow and limit checks; 0 signals "too large".
std::uint64_t CheckedProduct(const std::vector<std::uint64_t>& sizes) {
  std::uint64_t product = 1;
  for (std::uint64_t s : sizes) {
    if (s == 0) return 0;
    if (product > kMaxElements / s) return 0;
    product *= s;
  }
  return product;
}

void CheckFinite(const Eigen::VectorXd& data, const ImageReadOptions& options,
                 const std::string& path) {
  if (!options.require_finite) return;
  for (Index i = 0; i < data.size(); ++i) {
    if (!std::isfinite(data[i])) {
      Fail(options.argument, path,
           "contains NaN or infinite values (first at element " + std::to_string(i) +
               "), expected finite intensities");
    }
  }
}

// The range integer type t can hold, as doubles.
std::pair<double, double> IntegerRange(ElementType t) {
  switch (t) {
    case ElementType::kUint8: return {0.0, 255.0};
    case ElementType::kInt8: return {-128.0, 127.0};
    case ElementType::kUint16: return {0.0, 65535.0};
    case ElementType::kInt16: return {-32768.0, 32767.0};
    case ElementType::kUint32: return {0.0, 4294967295.0};
    case ElementType::kInt32: return {-2147483648.0, 2147483647.0};
    case ElementType::kUint64: return {0.0, 18446744073709551615.0};
    case ElementType::kInt64: return {-9223372036854775808.0, 9223372036854775807.0};
    default: return {0.0, 1.0};
  }
}

// Values to write: rescaled to the integer type's range when asked.
Eigen::VectorXd PrepareValues(const Eigen::VectorXd& data, ElementType type, bool rescale) {
  if (!rescale || !IsIntegerType(type) || data.size() == 0) return data;
  const auto [lo, hi] = IntegerRange(type);
  const double dmin = data.minCoeff(), dmax = data.maxCoeff();
  if (!(dmax > dmin)) return Eigen::VectorXd::Constant(data.size(), lo);
  return ((data.array() - dmin) * ((hi - lo) / (dmax - dmin)) + lo).matrix();
}

void CheckImage(const Image& image, const std::string& path) {
  if (image.grid.dim != 2 && image.grid.dim != 3) {
    throw InputError(path + ": cannot write an image of dimension " + std::to_string(image.grid.dim));
  }
  for (int d = 0; d < 3; ++d) {
    if (image.grid.size[d] < 1) throw InputError(path + ": cannot write an image with an empty axis");
  }
  if (image.data.size() != image.grid.voxels()) {
    throw InputError(path + ": image data has " + std::to_string(image.data.size()) +
                     " values but its grid has " + std::to_string(image.grid.voxels()) + " voxels");
  }
}

// ---------------------------------------------------------------------------------------------
// NIfTI

struct NiftiDeleter {
  void operator()(nifti_image* nim) const { nifti_image_free(nim); }
};
using NiftiPtr = std::unique_ptr<nifti_image, NiftiDeleter>;

struct NiftiHeaderInfo {
  int version = 1;
  std::int64_t dim[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int datatype = 0;
  double vox_offset = 0.0;
};

template <typename T>
T ReadField(const unsigned char* header, std::size_t offset, bool swap) {
  unsigned char bytes[sizeof(T)];
  std::memcpy(bytes, header + offset, sizeof(T));
  if (swap) std::reverse(bytes, bytes + sizeof(T));
  T value;
  std::memcpy(&value, bytes, sizeof(T));
  return value;
}

// Reads and checks the fixed header ourselves (through zlib, which also reads uncompressed files)
// before libnifti sees the file, so that no size in it is trusted unchecked.
NiftiHeaderInfo ParseNiftiHeader(const std::string& path, const std::string& argument) {
  unsigned char header[540];
  std::memset(header, 0, sizeof header);
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) Fail(argument, path, "cannot open for reading");
  const int got = gzread(gz, header, sizeof header);
  gzclose(gz);
  if (got < 348) Fail(argument, path, "too short for a NIfTI header (expected at least 348 bytes)");

  NiftiHeaderInfo info;
  const std::int32_t size_native = ReadField<std::int32_t>(header, 0, false);
  const std::int32_t size_swapped = ReadField<std::int32_t>(header, 0, true);
  bool swap = false;
  if (size_native == 348 || size_swapped == 348) {
    swap = size_native != 348;
    if (std::memcmp(header + 344, "ni1\0", 4) == 0) {
      Fail(argument, path, "is a two-file NIfTI header (.hdr/.img); expected a single .nii file");
    }
    if (std::memcmp(header + 344, "n+1\0", 4) != 0) {
      Fail(argument, path, "is not a NIfTI-1 file (missing \"n+1\" magic; ANALYZE is not supported)");
    }
    info.version = 1;
    for (int i = 0; i < 8; ++i) info.dim[i] = ReadField<std::int16_t>(header, 40 + 2 * i, swap);
    info.datatype = ReadField<std::int16_t>(header, 70, swap);
    info.vox_offset = ReadField<float>(header, 108, swap);
  } else if (size_native == 540 || size_swapped == 540) {
    swap = size_native != 540;
    if (got < 540) Fail(argument, path, "truncated NIfTI-2 header (expected 540 bytes)");
    if (std::memcmp(header + 4, "n+2\0\r\n\032\n", 8) != 0) {
      Fail(argument, path, "is not a single-file NIfTI-2 file (missing \"n+2\" magic)");
    }
    info.version = 2;
    for (int i = 0; i < 8; ++i) info.dim[i] = ReadField<std::int64_t>(header, 16 + 8 * i, swap);
    info.datatype = ReadField<std::int16_t>(header, 12, swap);
    info.vox_offset = static_cast<double>(ReadField<std::int64_t>(header, 168, swap));
  } else {
    Fail(argument, path, "is not a NIfTI file (header size field is neither 348 nor 540)");
  }
  if (info.dim[0] < 1 || info.dim[0] > 7) {
    Fail(argument, path, "invalid NIfTI dim[0] = " + std::to_string(info.dim[0]) +
                             " (expected 1..7)");
  }
  for (int i = 1; i <= info.dim[0]; ++i) {
    if (info.dim[i] < 1) {
      Fail(argument, path, "invalid NIfTI dim[" + std::to_string(i) + "] = " +
                               std::to_string(info.dim[i]) + " (expected >= 1)");
    }
  }
  for (int i = info.dim[0] + 1; i < 8; ++i) info.dim[i] = 1;
  const double header_size = info.version == 1 ? 348.0 : 540.0;
  if (!(info.vox_offset >= header_size) || info.vox_offset > 2147483647.0) {
    Fail(argument, path, "invalid NIfTI vox_offset " + std::to_string(info.vox_offset));
  }
  return info;
}

ElementType FromNiftiType(int datatype, const std::string& argument, const std::string& path) {
  switch (datatype) {
    case DT_UINT8: return ElementType::kUint8;
    case DT_INT8: return ElementType::kInt8;
    case DT_UINT16: return ElementType::kUint16;
    case DT_INT16: return ElementType::kInt16;
    case DT_UINT32: return ElementType::kUint32;
    case DT_INT32: return ElementType::kInt32;
    case DT_UINT64: return ElementType::kUint64;
    case DT_INT64: return ElementType::kInt64;
    case DT_FLOAT32: return ElementType::kFloat32;
    case DT_FLOAT64: return ElementType::kFloat64;
    case DT_COMPLEX64: case DT_COMPLEX128: case DT_COMPLEX256:
      Fail(argument, path, "has a complex element type; expected real (integer or float) values");
    case DT_RGB24: case DT_RGBA32:
      Fail(argument, path, "is an RGB NIfTI image; expected a scalar grey-value image");
    default:
      Fail(argument, path, "has unsupported NIfTI datatype " + std::to_string(datatype));
  }
}

int ToNiftiType(ElementType t) {
  switch (t) {
    case ElementType::kUint8: return DT_UINT8;
    case ElementType::kInt8: return DT_INT8;
    case ElementType::kUint16: return DT_UINT16;
    case ElementType::kInt16: return DT_INT16;
    case ElementType::kUint32: return DT_UINT32;
    case ElementType::kInt32: return DT_INT32;
    case ElementType::kUint64: return DT_UINT64;
    case ElementType::kInt64: return DT_INT64;
    case ElementType::kFloat32: return DT_FLOAT32;
    case ElementType::kFloat64: return DT_FLOAT64;
  }
  return DT_FLOAT32;
}

// Spacing and direction from the columns of a 3×3 (i,j,k) → (x,y,z) matrix; false when a column
// is degenerate or not finite.
bool GeometryFromMatrix(const nifti_dmat44& m, Grid& grid) {
  Eigen::Matrix3d a;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) a(r, c) = m.m[r][c];
  }
  Eigen::Vector3d origin(m.m[0][3], m.m[1][3], m.m[2][3]);
  if (!a.allFinite() || !origin.allFinite()) return false;
  Eigen::Matrix3d direction;
  std::array<double, 3> spacing{};
  for (int c = 0; c < 3; ++c) {
    spacing[c] = a.col(c).norm();
    if (!(spacing[c] > 0.0)) return false;
    direction.col(c) = a.col(c) / spacing[c];
  }
  if (!(std::abs(direction.determinant()) > 1e-6)) return false;
  grid.spacing_mm = spacing;
  grid.origin_mm = {origin[0], origin[1], origin[2]};
  grid.direction = direction;
  return true;
}

void NiftiGeometry(const nifti_image& nim, Grid& grid) {
  if (nim.sform_code > 0 && GeometryFromMatrix(nim.sto_xyz, grid)) return;
  if (nim.qform_code > 0 && GeometryFromMatrix(nim.qto_xyz, grid)) return;
  for (int d = 0; d < 3; ++d) {
    const double p = std::abs(nim.pixdim[d + 1]);
    grid.spacing_mm[d] = std::isfinite(p) && p > 0.0 ? p : 1.0;
  }
  grid.origin_mm = {0.0, 0.0, 0.0};
  grid.direction = Eigen::Matrix3d::Identity();
}

// Reads a NIfTI file whose dims are (nx, ny, nz, 1, components). components == 0 means a scalar
// image (dims 4..7 must be 1).
NiftiPtr LoadNifti(const std::string& path, const ImageReadOptions& options, bool vector,
                   NiftiHeaderInfo* info_out) {
  const std::string& argument = options.argument;
  const std::uint64_t file_size = CheckedFileSize(path, argument);
  const NiftiHeaderInfo info = ParseNiftiHeader(path, argument);
  const ElementType type = FromNiftiType(info.datatype, argument, path);
  if (vector) {
    if (info.dim[0] != 5 || info.dim[4] != 1 || info.dim[5] < 2 || info.dim[5] > 3 ||
        info.dim[6] != 1 || info.dim[7] != 1) {
      Fail(argument, path, "expected a vector field with dims (nx, ny, nz, 1, 2 or 3), got dim[0] = " +
                               std::to_string(info.dim[0]));
    }
  } else {
    for (int i = 4; i < 8; ++i) {
      if (info.dim[i] != 1) {
        Fail(argument, path, "has " + std::to_string(info.dim[0]) +
                                 " dimensions (dim[" + std::to_string(i) + "] = " +
                                 std::to_string(info.dim[i]) +
                                 "); expected a 2-D or 3-D scalar image");
      }
    }
  }
  std::vector<std::uint64_t> sizes;
  for (int i = 1; i <= 7; ++i) sizes.push_back(static_cast<std::uint64_t>(info.dim[i]));
  for (int i = 1; i <= 3; ++i) {
    if (info.dim[i] > std::numeric_limits<int>::max()) Fail(argument, path, "image axis too long");
  }
  const std::uint64_t elements = CheckedProduct(sizes);
  if (elements == 0) Fail(argument, path, "image too large (more than 2^30 elements)");
  const std::uint64_t needed =
      static_cast<std::uint64_t>(info.vox_offset) + elements * ElementSize(type);
  const bool gz = EndsWith(Lower(path), ".gz");
  if (!gz && file_size < needed) {
    Fail(argument, path, "truncated: the header needs " + std::to_string(needed) +
                             " bytes, the file has " + std::to_string(file_size));
  }
  if (gz && needed > file_size * kMaxDeflateRatio + 65536) {
    Fail(argument, path, "corrupt: the header claims " + std::to_string(needed) +
                             " bytes, more than the compressed file can hold");
  }
  nifti_set_debug_level(0);
  // libnifti parses the header and the transforms; the data are read here because libnifti's
  // loader silently replaces NaN/Inf by 0, and a NaN in an input must be reported.
  NiftiPtr nim(nifti_image_read(path.c_str(), 0));
  if (!nim) Fail(argument, path, "cannot be read as NIfTI (corrupt header)");
  if (nim->datatype != info.datatype || static_cast<std::uint64_t>(nim->nvox) != elements ||
      nim->nbyper != ElementSize(type) || nim->iname_offset < 0) {
    Fail(argument, path, "inconsistent NIfTI header");
  }
  const std::uint64_t bytes = elements * static_cast<std::uint64_t>(ElementSize(type));
  nim->data = std::malloc(static_cast<std::size_t>(bytes));
  if (!nim->data) Fail(argument, path, "not enough memory for the image data");
  gzFile gzf = gzopen(path.c_str(), "rb");
  if (!gzf) Fail(argument, path, "cannot open for reading");
  bool ok = gzseek(gzf, static_cast<z_off_t>(nim->iname_offset), SEEK_SET) == nim->iname_offset;
  auto* out = static_cast<unsigned char*>(nim->data);
  std::uint64_t done = 0;
  while (ok && done < bytes) {
    const unsigned chunk = static_cast<unsigned>(std::min<std::uint64_t>(bytes - done, 1u << 30));
    const int got = gzread(gzf, out + done, chunk);
    if (got <= 0) break;
    done += static_cast<std::uint64_t>(got);
  }
  gzclose(gzf);
  if (!ok || done != bytes) {
    Fail(argument, path, "truncated or corrupt: expected " + std::to_string(bytes) +
                             " bytes of image data, read " + std::to_string(done));
  }
  const int element = ElementSize(type);
  if (nim->byteorder != nifti_short_order() && element > 1) {
    for (std::uint64_t i = 0; i < elements; ++i) std::reverse(out + i * element, out + (i + 1) * element);
  }
  if (info_out) *info_out = info;
  return nim;
}

// Converts the loaded data to double with scl_slope / scl_inter; returns the element type.
ElementType NiftiValues(const nifti_image& nim, Eigen::VectorXd& values, const std::string& argument,
                        const std::string& path) {
  ElementType type = FromNiftiType(nim.datatype, argument, path);
  const Index n = static_cast<Index>(nim.nvox);
  values.resize(n);
  const auto* bytes = static_cast<const unsigned char*>(nim.data);
  const int size = ElementSize(type);
  for (Index i = 0; i < n; ++i) values[i] = LoadElement(type, bytes + i * size);
  const double slope = nim.scl_slope, inter = nim.scl_inter;
  if (std::isfinite(slope) && slope != 0.0 && std::isfinite(inter) &&
      !(slope == 1.0 && inter == 0.0)) {
    values = (values.array() * slope + inter).matrix();
    if (type != ElementType::kFloat64) type = ElementType::kFloat32;
  }
  return type;
}

Image ReadNifti(const std::string& path, const ImageReadOptions& options) {
  NiftiHeaderInfo info;
  NiftiPtr nim = LoadNifti(path, options, false, &info);
  Image image;
  image.grid.size = {static_cast<int>(info.dim[1]), static_cast<int>(info.dim[2]),
                     static_cast<int>(info.dim[3])};
  image.grid.dim = info.dim[3] > 1 ? 3 : 2;
  NiftiGeometry(*nim, image.grid);
  image.source_type = NiftiValues(*nim, image.data, options.argument, path);
  CheckFinite(image.data, options, path);
  return image;
}

// Writes `components` blocks of grid.voxels() values (component-major) as NIfTI-1.
void WriteNifti(const std::string& path, const Grid& grid, const Eigen::VectorXd& values,
                int components, ElementType type, bool gz) {
  int64_t dims[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  if (components == 1) {
    dims[0] = grid.dim;
  } else {
    dims[0] = 5;
    dims[5] = components;
  }
  dims[1] = grid.size[0];
  dims[2] = grid.size[1];
  dims[3] = grid.dim == 3 ? grid.size[2] : 1;
  nifti_set_debug_level(0);
  NiftiPtr nim(nifti_make_new_nim(dims, ToNiftiType(type), 1));
  if (!nim || !nim->data) throw InputError(path + ": cannot allocate the NIfTI image");
  nim->nifti_type = NIFTI_FTYPE_NIFTI1_1;
  if (components > 1) {
    nim->intent_code = NIFTI_INTENT_VECTOR;
    std::snprintf(nim->intent_name, sizeof nim->intent_name, "%s", "displacement");
  }
  nim->xyz_units = NIFTI_UNITS_MM;
  nim->dx = nim->pixdim[1] = grid.spacing_mm[0];
  nim->dy = nim->pixdim[2] = grid.spacing_mm[1];
  nim->dz = nim->pixdim[3] = grid.spacing_mm[2];
  nifti_dmat44 m;
  std::memset(&m, 0, sizeof m);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) m.m[r][c] = grid.direction(r, c) * grid.spacing_mm[c];
    m.m[r][3] = grid.origin_mm[r];
  }
  m.m[3][3] = 1.0;
  nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
  nim->sto_xyz = m;
  nim->sto_ijk = nifti_dmat44_inverse(m);
  double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
  nifti_dmat44_to_quatern(m, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
  nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
  nim->quatern_b = qb;
  nim->quatern_c = qc;
  nim->quatern_d = qd;
  nim->qoffset_x = qx;
  nim->qoffset_y = qy;
  nim->qoffset_z = qz;
  nim->qfac = qfac;
  nim->pixdim[0] = qfac;
  nim->qto_xyz = nifti_quatern_to_dmat44(qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac);
  nim->qto_ijk = nifti_dmat44_inverse(nim->qto_xyz);

  auto* bytes = static_cast<unsigned char*>(nim->data);
  const int size = ElementSize(type);
  for (Index i = 0; i < values.size(); ++i) StoreElement(type, values[i], bytes + i * size);

  const std::string temporary = TemporaryPathFor(path) + (gz ? ".nii.gz" : ".nii");
  // Checked here so that an unwritable destination gets our message, not libnifti's.
  if (std::FILE* probe = std::fopen(temporary.c_str(), "wb")) {
    std::fclose(probe);
  } else {
    const std::string reason = std::strerror(errno);
    throw InputError("cannot write '" + path + "': " + reason);
  }
  if (nifti_set_filenames(nim.get(), temporary.c_str(), 0, 1) != 0) {
    throw InputError(path + ": cannot set NIfTI file names");
  }
  znzFile fp = nifti_image_write_hdr_img2(nim.get(), 3, "wb", nullptr, nullptr);
  const bool opened = !znz_isnull(fp);
  const int closed = opened ? Xznzclose(&fp) : -1;
  std::error_code ec;
  const std::uint64_t written = std::filesystem::exists(temporary, ec)
                                    ? std::filesystem::file_size(temporary, ec) : 0;
  const std::uint64_t expected =
      352 + static_cast<std::uint64_t>(values.size()) * static_cast<std::uint64_t>(size);
  if (!opened || closed != 0 || ec || written == 0 || (!gz && written < expected)) {
    std::remove(temporary.c_str());
    throw InputError("cannot write '" + path + "': NIfTI write failed (folder missing, read-only "
                     "or full?)");
  }
  CommitFile(temporary, path);
}

// ---------------------------------------------------------------------------------------------
// PNG (libpng's low-level reader; errors longjmp back into DecodePng, whose frame holds only
// trivially destructible locals, so no C++ destructor is skipped).

struct PngSource {
  const unsigned char* data;
  std::size_t size;
  std::size_t position;
};

struct PngDecoded {
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int bit_depth = 0;   // after transformations: 8 or 16
  bool colour = false;
  std::vector<unsigned char> pixels;
  std::vector<png_bytep> rows;
  char message[256] = {0};
};

void PngReadFromMemory(png_structp png, png_bytep out, png_size_t count) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (count > source->size - source->position) png_error(png, "truncated PNG data");
  std::memcpy(out, source->data + source->position, count);
  source->position += count;
}

void PngOnError(png_structp png, png_const_charp message) {
  auto* decoded = static_cast<PngDecoded*>(png_get_error_ptr(png));
  std::snprintf(decoded->message, sizeof decoded->message, "%s", message ? message : "error");
  png_longjmp(png, 1);
}

void PngOnWarning(png_structp, png_const_charp) {}

bool DecodePng(PngSource* source, PngDecoded* decoded) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, decoded, PngOnError, PngOnWarning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, source, PngReadFromMemory);
  png_set_user_limits(png, 1u << 16, 1u << 16);
  png_set_chunk_malloc_max(png, 1u << 24);
  png_read_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  const int colour_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  if (static_cast<std::uint64_t>(width) * height > kMaxElements ||
      static_cast<std::uint64_t>(width) * height >
          static_cast<std::uint64_t>(source->size) * kMaxDeflateRatio * 8) {
    png_error(png, "image dimensions larger than the data can hold");
  }
  if (colour_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (colour_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (colour_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  decoded->colour = (colour_type & PNG_COLOR_MASK_COLOR) != 0;
  if (decoded->colour) {
    png_set_rgb_to_gray(png, PNG_ERROR_ACTION_NONE, PNG_RGB_TO_GRAY_DEFAULT,
                        PNG_RGB_TO_GRAY_DEFAULT);
  }
  if (bit_depth == 16 && std::endian::native == std::endian::little) png_set_swap(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const png_size_t row_bytes = png_get_rowbytes(png, info);
  const int channels = png_get_channels(png, info);
  decoded->bit_depth = png_get_bit_depth(png, info);
  if (channels != 1 || (decoded->bit_depth != 8 && decoded->bit_depth != 16) ||
      row_bytes != static_cast<png_size_t>(width) * (decoded->bit_depth / 8)) {
    png_error(png, "unexpected pixel layout after conversion to grey");
  }
  decoded->width = width;
  decoded->height = height;
  decoded->pixels.resize(static_cast<std::size_t>(row_bytes) * height);
  decoded->rows.resize(height);
  for (png_uint_32 r = 0; r < height; ++r) decoded->rows[r] = decoded->pixels.data() + r * row_bytes;
  png_read_image(png, decoded->rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

Image ReadPng(const std::string& path, const ImageReadOptions& options) {
  const std::string bytes = ReadWholeFile(path, options.argument);
  static const unsigned char kSignature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kSignature, 8) != 0) {
    Fail(options.argument, path, "is not a PNG file (bad signature)");
  }
  PngSource source{reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), 0};
  PngDecoded decoded;
  if (!DecodePng(&source, &decoded)) {
    Fail(options.argument, path, std::string("cannot decode PNG: ") +
                                     (decoded.message[0] ? decoded.message : "libpng failed"));
  }
  Image image;
  image.grid.dim = 2;
  image.grid.size = {static_cast<int>(decoded.width), static_cast<int>(decoded.height), 1};
  image.data.resize(image.grid.voxels());
  if (decoded.bit_depth == 16) {
    image.source_type = ElementType::kUint16;
    for (Index i = 0; i < image.data.size(); ++i) {
      image.data[i] = LoadElement(ElementType::kUint16, decoded.pixels.data() + 2 * i);
    }
  } else {
    image.source_type = ElementType::kUint8;
    for (Index i = 0; i < image.data.size(); ++i) image.data[i] = decoded.pixels[i];
  }
  return image;
}

void WritePng(const std::string& path, const Image& image, ElementType type, bool rescale) {
  if (image.grid.dim == 3 && image.grid.size[2] != 1) {
    throw InputError(path + ": PNG holds 2-D images only; this image is 3-D");
  }
  if (type != ElementType::kUint8 && type != ElementType::kUint16) {
    throw InputError(path + ": PNG holds uint8 or uint16 grey values, not " +
                     std::string(ElementTypeName(type)));
  }
  const Eigen::VectorXd values = PrepareValues(image.data, type, rescale);
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.grid.size[0]);
  png.height = static_cast<png_uint_32>(image.grid.size[1]);
  png.format = type == ElementType::kUint16 ? PNG_FORMAT_LINEAR_Y : PNG_FORMAT_GRAY;
  std::vector<unsigned char> pixels(static_cast<std::size_t>(values.size()) * ElementSize(type));
  for (Index i = 0; i < values.size(); ++i) {
    StoreElement(type, values[i], pixels.data() + i * ElementSize(type));
  }
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, pixels.data(), 0, nullptr)) {
    const std::string message = png.message;
    png_image_free(&png);
    throw InputError(path + ": cannot encode PNG: " + message);
  }
  std::string encoded(size, '\0');
  if (!png_image_write_to_memory(&png, encoded.data(), &size, 0, pixels.data(), 0, nullptr)) {
    const std::string message = png.message;
    png_image_free(&png);
    throw InputError(path + ": cannot encode PNG: " + message);
  }
  encoded.resize(size);
  WriteFileAtomically(path, encoded);
}

// ---------------------------------------------------------------------------------------------
// NumPy .npy (solvers/npy.h): a 2-D (ny, nx) or 3-D (nz, ny, nx) array

Image ReadNpyImage(const std::string& path, const ImageReadOptions& options) {
  const std::string& argument = options.argument;
  NpyArray array = ReadNpy(path, argument);
  std::vector<std::uint64_t>& shape = array.shape;
  // A leading axis of length 1 on a 3-D array is a single slice: treat as 2-D.
  if (shape.size() == 3 && shape[0] == 1) shape.erase(shape.begin());
  if (shape.size() < 2 || shape.size() > 3) {
    Fail(argument, path, "has " + std::to_string(shape.size()) +
                             " dimension(s); expected a 2-D (ny, nx) or 3-D (nz, ny, nx) array");
  }
  Image image;
  image.grid.dim = static_cast<int>(shape.size());
  if (image.grid.dim == 2) {
    image.grid.size = {static_cast<int>(shape[1]), static_cast<int>(shape[0]), 1};
  } else {
    image.grid.size = {static_cast<int>(shape[2]), static_cast<int>(shape[1]),
                       static_cast<int>(shape[0])};
  }
  image.source_type = array.type;
  image.data = std::move(array.data);
  CheckFinite(image.data, options, path);
  return image;
}

void WriteNpyImage(const std::string& path, const Image& image, ElementType type, bool rescale) {
  std::vector<std::uint64_t> shape;
  if (image.grid.dim == 3) shape.push_back(static_cast<std::uint64_t>(image.grid.size[2]));
  shape.push_back(static_cast<std::uint64_t>(image.grid.size[1]));
  shape.push_back(static_cast<std::uint64_t>(image.grid.size[0]));
  WriteNpy(path, shape, PrepareValues(image.data, type, rescale), type);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

ImageFormat FormatFromPath(const std::string& path, const std::string& argument) {
  const std::string lower = Lower(path);
  if (EndsWith(lower, ".nii.gz")) return ImageFormat::kNiftiGz;
  if (EndsWith(lower, ".nii")) return ImageFormat::kNifti;
  if (EndsWith(lower, ".png")) return ImageFormat::kPng;
  if (EndsWith(lower, ".npy")) return ImageFormat::kNpy;
  Fail(argument, path, "unknown image format; expected a file name ending in .nii, .nii.gz, .png or .npy");
}

const char* ExtensionOf(ImageFormat format) {
  switch (format) {
    case ImageFormat::kNifti: return ".nii";
    case ImageFormat::kNiftiGz: return ".nii.gz";
    case ImageFormat::kPng: return ".png";
    case ImageFormat::kNpy: return ".npy";
  }
  return ".nii.gz";
}

Image ReadImage(const std::string& path, const ImageReadOptions& options) {
  const ImageFormat format = FormatFromPath(path, options.argument);
  switch (format) {
    case ImageFormat::kNifti:
    case ImageFormat::kNiftiGz: return ReadNifti(path, options);
    case ImageFormat::kPng: return ReadPng(path, options);
    case ImageFormat::kNpy: return ReadNpyImage(path, options);
  }
  Fail(options.argument, path, "unknown image format");
}

void WriteImage(const std::string& path, const Image& image, const ImageWriteOptions& options) {
  const ImageFormat format = FormatFromPath(path);
  CheckImage(image, path);
  std::optional<ElementType> type = options.type;
  if (options.keep_source_type) type = image.source_type;
  switch (format) {
    case ImageFormat::kNifti:
    case ImageFormat::kNiftiGz:
      WriteNifti(path, image.grid, PrepareValues(image.data, type.value_or(ElementType::kFloat32),
                                                 options.rescale_to_type_range),
                 1, type.value_or(ElementType::kFloat32), format == ImageFormat::kNiftiGz);
      return;
    case ImageFormat::kPng: {
      ElementType png_type = image.source_type == ElementType::kUint16 ? ElementType::kUint16
                                                                       : ElementType::kUint8;
      if (type && (*type == ElementType::kUint8 || *type == ElementType::kUint16)) png_type = *type;
      if (type && !options.keep_source_type && *type != png_type) {
        throw InputError(path + ": PNG holds uint8 or uint16 grey values, not " +
                         std::string(ElementTypeName(*type)));
      }
      WritePng(path, image, png_type, options.rescale_to_type_range);
      return;
    }
    case ImageFormat::kNpy:
      WriteNpyImage(path, image, type.value_or(ElementType::kFloat64), options.rescale_to_type_range);
      return;
  }
}

void WriteImage(const std::string& path, const Image& image, ElementType type) {
  ImageWriteOptions options;
  options.type = type;
  WriteImage(path, image, options);
}

void WriteVectorField(const std::string& path, const VectorField& field, ElementType type) {
  const ImageFormat format = FormatFromPath(path);
  if (format != ImageFormat::kNifti && format != ImageFormat::kNiftiGz) {
    throw InputError(path + ": vector fields are written as NIfTI; expected .nii or .nii.gz");
  }
  if (type != ElementType::kFloat32 && type != ElementType::kFloat64) {
    throw InputError(path + ": vector fields are written as float32 or float64");
  }
  if (field.grid.dim != 2 && field.grid.dim != 3) {
    throw InputError(path + ": vector field must be 2-D or 3-D");
  }
  if (field.data.size() != field.grid.dim * field.grid.voxels()) {
    throw InputError(path + ": vector field data size does not match its grid");
  }
  WriteNifti(path, field.grid, field.data, field.grid.dim, type, format == ImageFormat::kNiftiGz);
}

VectorField ReadVectorField(const std::string& path, const ImageReadOptions& options) {
  const ImageFormat format = FormatFromPath(path, options.argument);
  if (format != ImageFormat::kNifti && format != ImageFormat::kNiftiGz) {
    Fail(options.argument, path, "vector fields are read from NIfTI; expected .nii or .nii.gz");
  }
  NiftiHeaderInfo info;
  NiftiPtr nim = LoadNifti(path, options, true, &info);
  VectorField field;
  field.grid.size = {static_cast<int>(info.dim[1]), static_cast<int>(info.dim[2]),
                     static_cast<int>(info.dim[3])};
  field.grid.dim = info.dim[3] > 1 ? 3 : 2;
  if (info.dim[5] != field.grid.dim) {
    Fail(options.argument, path, "has " + std::to_string(info.dim[5]) + " components on a " +
                                     std::to_string(field.grid.dim) +
                                     "-D grid; expected one component per axis");
  }
  NiftiGeometry(*nim, field.grid);
  NiftiValues(*nim, field.data, options.argument, path);
  CheckFinite(field.data, options, path);
  return field;
}

}  // namespace diffeoflow::registration
