// Element types of arrays on disk (NIfTI voxels, .npy arrays, PNG samples). Values are held as
// double in memory; the type says how they were (or are to be) stored.
#pragma once

#include <cstdint>

namespace diffeoflow {

enum class ElementType : std::uint8_t {
  kUint8, kInt8, kUint16, kInt16, kUint32, kInt32, kUint64, kInt64, kFloat32, kFloat64
};

// "uint8", "int16", "float32", ... (the NumPy spelling).
const char* ElementTypeName(ElementType t);

inline bool IsIntegerType(ElementType t) {
  return t != ElementType::kFloat32 && t != ElementType::kFloat64;
}

// Bytes of one element.
int ElementSize(ElementType t);

// The native-endian element at `in`, as double.
double LoadElement(ElementType t, const unsigned char* in);

// Stores v at `out` in native byte order: floating types by conversion, integer types rounded to
// the nearest integer and clamped to the type's range (NaN becomes 0).
void StoreElement(ElementType t, double v, unsigned char* out);

}  // namespace diffeoflow
