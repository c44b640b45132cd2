#include "solvers/element_type.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

namespace diffeoflow {
namespace {

template <typename T>
T ToInteger(double v) {
  if (std::isnan(v)) return T{0};
  v = std::round(v);
  constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
  constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());
  if (v <= lo) return std::numeric_limits<T>::min();
  if (v >= hi) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

template <typename T>
void Store(double v, unsigned char* out) {
  T t;
  if constexpr (std::is_floating_point_v<T>) {
    t = static_cast<T>(v);
  } else {
    t = ToInteger<T>(v);
  }
  std::memcpy(out, &t, sizeof(T));
}

template <typename T>
double Load(const unsigned char* in) {
  T t;
  std::memcpy(&t, in, sizeof(T));
  return static_cast<double>(t);
}

}  // namespace

const char* ElementTypeName(ElementType t) {
  switch (t) {
    case ElementType::kUint8: return "uint8";
    case ElementType::kInt8: return "int8";
    case ElementType::kUint16: return "uint16";
    case ElementType::kInt16: return "int16";
    case ElementType::kUint32: return "uint32";
    case ElementType::kInt32: return "int32";
    case ElementType::kUint64: return "uint64";
    case ElementType::kInt64: return "int64";
    case ElementType::kFloat32: return "float32";
    case ElementType::kFloat64: return "float64";
  }
  return "unknown";
}

int ElementSize(ElementType t) {
  switch (t) {
    case ElementType::kUint8: case ElementType::kInt8: return 1;
    case ElementType::kUint16: case ElementType::kInt16: return 2;
    case ElementType::kUint32: case ElementType::kInt32: case ElementType::kFloat32: return 4;
    case ElementType::kUint64: case ElementType::kInt64: case ElementType::kFloat64: return 8;
  }
  return 8;
}

double LoadElement(ElementType t, const unsigned char* in) {
  switch (t) {
    case ElementType::kUint8: return Load<std::uint8_t>(in);
    case ElementType::kInt8: return Load<std::int8_t>(in);
    case ElementType::kUint16: return Load<std::uint16_t>(in);
    case ElementType::kInt16: return Load<std::int16_t>(in);
    case ElementType::kUint32: return Load<std::uint32_t>(in);
    case ElementType::kInt32: return Load<std::int32_t>(in);
    case ElementType::kUint64: return Load<std::uint64_t>(in);
    case ElementType::kInt64: return Load<std::int64_t>(in);
    case ElementType::kFloat32: return Load<float>(in);
    case ElementType::kFloat64: return Load<double>(in);
  }
  return 0.0;
}

void StoreElement(ElementType t, double v, unsigned char* out) {
  switch (t) {
    case ElementType::kUint8: return Store<std::uint8_t>(v, out);
    case ElementType::kInt8: return Store<std::int8_t>(v, out);
    case ElementType::kUint16: return Store<std::uint16_t>(v, out);
    case ElementType::kInt16: return Store<std::int16_t>(v, out);
    case ElementType::kUint32: return Store<std::uint32_t>(v, out);
    case ElementType::kInt32: return Store<std::int32_t>(v, out);
    case ElementType::kUint64: return Store<std::uint64_t>(v, out);
    case ElementType::kInt64: return Store<std::int64_t>(v, out);
    case ElementType::kFloat32: return Store<float>(v, out);
    case ElementType::kFloat64: return Store<double>(v, out);
  }
}

}  // namespace diffeoflow
