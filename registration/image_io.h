// Reading and writing images and vector fields: NIfTI-1/2 (.nii, .nii.gz, through the NIfTI
// reference library libnifti2), PNG (8/16-bit grey, libpng) and NumPy .npy.
//
// The format is chosen by the file name's extension (case-insensitive): ".nii", ".nii.gz", ".png",
// ".npy". Anything else is an InputError.
//
// Geometry:
//  - NIfTI: spacing, origin and direction come from the sform when sform_code > 0, else from the
//    qform when qform_code > 0, else spacing = |pixdim|, origin 0, direction I. Coordinates are
//    NIfTI's (RAS+ world mm); nothing is flipped to ITK's LPS. A 2-D image is a NIfTI file with
//    dim[3] = 1 (dim[0] = 2 or 3); a 3-D image has nz > 1.
//    Header fields are single precision in NIfTI-1, so a round trip keeps geometry to float
//    precision (exactly for values representable as float, e.g. 0.5 mm, −90 mm).
//    scl_slope / scl_inter are applied when scl_slope is finite and non-zero and not (1, 0).
//  - PNG and .npy carry no geometry: unit spacing, origin 0, direction I.
//  - .npy: a C-ordered array of shape (ny, nx) or (nz, ny, nx) — numpy's row-major order with the
//    last axis fastest is exactly our x-fastest layout, so a[j, i] is voxel (i, j). A shape
//    (1, ny, nx) is read as 2-D.
//  - NIfTI headers (and qform/sform) are parsed by libnifti2 after our own size checks; the voxel
//    data are read here through zlib, because libnifti's loader silently replaces NaN/Inf by 0.
//
// Element types read: NIfTI uint8/int8/uint16/int16/uint32/int32/uint64/int64/float32/float64;
// PNG 1/2/4/8/16-bit grey (with or without alpha, alpha dropped; palette and colour images are
// converted to grey with libpng's default weights); .npy |u1 |i1 <u2 <i2 <u4 <i4 <u8 <i8 <f4 <f8
// (and big-endian variants). Everything is held as double; Image::source_type records the type.
//
// Errors: every bad input — missing file, a directory, empty, truncated, random bytes with a
// plausible extension, sizes whose product overflows or exceeds the bytes present, unsupported
// element types (complex, RGB NIfTI, fortran_order .npy), 1-D or 4-D+ arrays, and NaN/Inf values
// when ImageReadOptions::require_finite — throws diffeoflow::InputError whose message starts with
// the path and says what was expected. Readers never crash or allocate more than the file can
// justify (sizes are checked against the file size before any allocation).
//
// Writes are atomic (solvers/atomic_file.h): a temporary beside the target, renamed when complete.
#pragma once

#include <optional>
#include <string>

#include "registration/image.h"

namespace diffeoflow::registration {

enum class ImageFormat { kNifti, kNiftiGz, kPng, kNpy };

// The format for `path` from its extension; throws InputError naming the path for anything else.
// `argument` (e.g. "--fixed") is prefixed to the message when given.
ImageFormat FormatFromPath(const std::string& path, const std::string& argument = "");

// The file name extension for a format, with the dot: ".nii", ".nii.gz", ".png", ".npy".
const char* ExtensionOf(ImageFormat format);

struct ImageReadOptions {
  // Reject images containing NaN or ±Inf (after scaling) with an InputError.
  bool require_finite = true;
  // Prefixed to error messages, e.g. "--fixed": "--fixed: a.nii: ...".
  std::string argument;
};

// Reads a 2-D or 3-D scalar image. 4-D NIfTI files with dim[4] = 1 are accepted as 3-D.
Image ReadImage(const std::string& path, const ImageReadOptions& options = {});

struct ImageWriteOptions {
  // Element type on disk. Unset: NIfTI float32, .npy float64, PNG uint16 when the image's
  // source_type is uint16 and uint8 otherwise. For integer types values are rounded to the nearest
  // integer and clamped to the type's range (PNG accepts only uint8 and uint16).
  std::optional<ElementType> type;
  // Use image.source_type as the element type (overrides `type`), e.g. for label maps that must
  // keep the type they came in. For PNG a non-8/16-bit source type falls back to the default.
  bool keep_source_type = false;
  // Integer types only: map [min, max] of the data linearly onto the type's full range (for
  // writing a [0, 1] float image as a viewable PNG) instead of rounding and clamping.
  bool rescale_to_type_range = false;
};

// Writes a 2-D or 3-D image (.png needs 2-D). Throws InputError naming the path when the folder is
// missing or read-only, or the format cannot hold the image.
void WriteImage(const std::string& path, const Image& image, const ImageWriteOptions& options = {});

// Shorthand: WriteImage with the element type given.
void WriteImage(const std::string& path, const Image& image, ElementType type);

// Vector fields (displacements u with φ(x) = x + u(x), velocities, momenta) as NIfTI with
// intent_code NIFTI_INTENT_VECTOR and dims (nx, ny, nz, 1, dim) — "vector last", the layout ITK and
// ANTs use for displacement files. Components are written as stored (physical units along the
// image axes, see image.h); for an identity direction this is the displacement in world mm.
// Values are written as float32 unless `type` is kFloat64. Only .nii and .nii.gz.
void WriteVectorField(const std::string& path, const VectorField& field,
                      ElementType type = ElementType::kFloat32);

// Reads a vector field written by WriteVectorField (or ITK/ANTs): dims (nx, ny, nz, 1, c) with
// c = 2 for 2-D (nz = 1) or c = 3 for 3-D. Throws InputError otherwise.
VectorField ReadVectorField(const std::string& path, const ImageReadOptions& options = {});

}  // namespace diffeoflow::registration
