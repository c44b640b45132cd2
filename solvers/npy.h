// NumPy .npy arrays (format versions 1.0, 2.0, 3.0) of any rank: the reader and writer behind the
// image reader (registration/image_io.h) and the classifiers' own data (flows/own_data.h).
//
// Layout: magic "\x93NUMPY", version, header length, a Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (N, D), } padded with spaces to a multiple of
// 64 bytes and ended by '\n', then the data in C order (last axis fastest).
//
// Read: dtypes |u1 |i1 <u2 <i2 <u4 <i4 <u8 <i8 <f2 <f4 <f8 |b1 (and big-endian variants);
// float16 arrays are reported as kFloat32 (the values are exact in it). Every bad
// input — missing, empty or truncated file, bad magic, unsupported version, complex or structured
// dtypes, Fortran order, a zero-length axis, more than 8 axes or 2^30 elements — throws InputError
// whose message starts with "argument: path: " and says what was expected. Sizes are checked
// against the file's size before any allocation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "solvers/element_type.h"

namespace diffeoflow {

struct NpyArray {
  std::vector<std::uint64_t> shape;  // C order; empty for a 0-d array (one element)
  ElementType type = ElementType::kFloat64;
  Eigen::VectorXd data;              // all elements in C order, as double
};

NpyArray ReadNpy(const std::string& path, const std::string& argument = "");

// Writes `data` (C order, product of `shape` elements) as `type`, atomically (solvers/atomic_file.h).
// Integer types round and clamp (StoreElement).
void WriteNpy(const std::string& path, const std::vector<std::uint64_t>& shape,
              const Eigen::Ref<const Eigen::VectorXd>& data, ElementType type);

}  // namespace diffeoflow
