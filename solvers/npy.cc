#include "solvers/npy.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>

#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/read_file.h"

namespace diffeoflow {
namespace {

// Largest number of elements the reader accepts: 2^30 doubles is 8 GiB.
constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 30;
constexpr std::size_t kMaxRank = 8;

[[noreturn]] void Fail(const std::string& argument, const std::string& path,
                       const std::string& what) {
  throw InputError(InputPrefix(argument, path) + what);
}

struct NpyDescr {
  ElementType type;
  bool swap;
  bool half = false;  // IEEE binary16 on disk, read as float32 (every half is a float)
};

// An IEEE 754 binary16 value: sign, 5 exponent bits (bias 15), 10 fraction bits.
double HalfToDouble(std::uint16_t h) {
  const int exponent = (h >> 10) & 0x1f;
  const double fraction = h & 0x3ff;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exponent == 0) return sign * std::ldexp(fraction, -24);  // zero and subnormals
  if (exponent == 31) {
    return fraction == 0 ? sign * std::numeric_limits<double>::infinity()
                         : std::numeric_limits<double>::quiet_NaN();
  }
  return sign * std::ldexp(1024.0 + fraction, exponent - 25);
}

NpyDescr ParseDescr(const std::string& descr, const std::string& argument, const std::string& path) {
  if (descr.size() < 3) Fail(argument, path, "unsupported .npy dtype '" + descr + "'");
  const char order = descr[0];
  const std::string code = descr.substr(1);
  const bool native_little = std::endian::native == std::endian::little;
  bool swap = false;
  if (order == '<') swap = !native_little;
  else if (order == '>') swap = native_little;
  else if (order != '|' && order != '=') Fail(argument, path, "unsupported .npy dtype '" + descr + "'");
  if (code[0] == 'c') {
    Fail(argument, path, "has a complex dtype '" + descr + "'; expected real float or integer values");
  }
  ElementType type;
  if (code == "u1") type = ElementType::kUint8;
  else if (code == "i1") type = ElementType::kInt8;
  else if (code == "u2") type = ElementType::kUint16;
  else if (code == "i2") type = ElementType::kInt16;
  else if (code == "u4") type = ElementType::kUint32;
  else if (code == "i4") type = ElementType::kInt32;
  else if (code == "u8") type = ElementType::kUint64;
  else if (code == "i8") type = ElementType::kInt64;
  else if (code == "f4") type = ElementType::kFloat32;
  else if (code == "f8") type = ElementType::kFloat64;
  else if (code == "f2") return {ElementType::kFloat32, swap, true};
  else if (code == "b1") type = ElementType::kUint8;
  else Fail(argument, path, "unsupported .npy dtype '" + descr + "' (expected float16/32/64 or an integer type)");
  return {type, swap && ElementSize(type) > 1, false};
}

// The text after `key` and its colon in the header dictionary, or npos.
std::size_t FindValue(const std::string& header, const std::string& key) {
  for (const char quote : {'\'', '"'}) {
    const std::string quoted = std::string(1, quote) + key + std::string(1, quote);
    std::size_t at = header.find(quoted);
    if (at == std::string::npos) continue;
    at = header.find(':', at + quoted.size());
    if (at == std::string::npos) return at;
    ++at;
    while (at < header.size() && std::isspace(static_cast<unsigned char>(header[at]))) ++at;
    return at;
  }
  return std::string::npos;
}

std::string DescrOf(ElementType t) {
  const std::string order = std::endian::native == std::endian::little ? "<" : ">";
  switch (t) {
    case ElementType::kUint8: return "|u1";
    case ElementType::kInt8: return "|i1";
    case ElementType::kUint16: return order + "u2";
    case ElementType::kInt16: return order + "i2";
    case ElementType::kUint32: return order + "u4";
    case ElementType::kInt32: return order + "i4";
    case ElementType::kUint64: return order + "u8";
    case ElementType::kInt64: return order + "i8";
    case ElementType::kFloat32: return order + "f4";
    case ElementType::kFloat64: return order + "f8";
  }
  return "<f8";
}

}  // namespace

NpyArray ReadNpy(const std::string& path, const std::string& argument) {
  const std::string bytes = ReadWholeFile(path, argument);
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) {
    Fail(argument, path, "is not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) Fail(argument, path, "truncated .npy header");
    header_len = 0;
    for (int b = 3; b >= 0; --b) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + b]);
    header_start = 12;
  } else {
    Fail(argument, path, "unsupported .npy format version " + std::to_string(major));
  }
  if (header_len > bytes.size() - header_start) Fail(argument, path, "truncated .npy header");
  const std::string header = bytes.substr(header_start, header_len);
  const std::size_t data_start = header_start + header_len;

  // descr
  std::size_t at = FindValue(header, "descr");
  if (at == std::string::npos || at >= header.size() || (header[at] != '\'' && header[at] != '"')) {
    if (at != std::string::npos && at < header.size() && header[at] == '[') {
      Fail(argument, path, "has a structured dtype; expected a plain numeric array");
    }
    Fail(argument, path, "malformed .npy header (no 'descr')");
  }
  const char quote = header[at];
  const std::size_t end = header.find(quote, at + 1);
  if (end == std::string::npos) Fail(argument, path, "malformed .npy header (descr)");
  const NpyDescr descr = ParseDescr(header.substr(at + 1, end - at - 1), argument, path);

  // fortran_order
  at = FindValue(header, "fortran_order");
  if (at == std::string::npos) Fail(argument, path, "malformed .npy header (no 'fortran_order')");
  if (header.compare(at, 4, "True") == 0) {
    Fail(argument, path, "is stored in Fortran order; expected a C-ordered array "
                         "(save np.ascontiguousarray(a))");
  }
  if (header.compare(at, 5, "False") != 0) Fail(argument, path, "malformed .npy header (fortran_order)");

  // shape
  at = FindValue(header, "shape");
  if (at == std::string::npos || at >= header.size() || header[at] != '(') {
    Fail(argument, path, "malformed .npy header (no 'shape')");
  }
  const std::size_t close = header.find(')', at);
  if (close == std::string::npos) Fail(argument, path, "malformed .npy header (shape)");
  NpyArray array;
  array.type = descr.type;
  std::size_t p = at + 1;
  while (p < close) {
    while (p < close && (std::isspace(static_cast<unsigned char>(header[p])) || header[p] == ',')) ++p;
    if (p >= close) break;
    if (!std::isdigit(static_cast<unsigned char>(header[p]))) {
      Fail(argument, path, "malformed .npy header (shape)");
    }
    std::uint64_t v = 0;
    while (p < close && std::isdigit(static_cast<unsigned char>(header[p]))) {
      if (v > (kMaxElements * 16) / 10) Fail(argument, path, "array too large");
      v = v * 10 + static_cast<std::uint64_t>(header[p] - '0');
      ++p;
    }
    while (p < close && (header[p] == 'L' || std::isspace(static_cast<unsigned char>(header[p])))) ++p;
    array.shape.push_back(v);
    if (array.shape.size() > kMaxRank) Fail(argument, path, "too many dimensions");
  }
  std::uint64_t count = 1;
  for (std::uint64_t s : array.shape) {
    if (s == 0) Fail(argument, path, "is an empty array; expected at least one element per axis");
    if (s > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
      Fail(argument, path, "array too large (an axis is longer than 2^31 - 1)");
    }
    if (count > kMaxElements / s) Fail(argument, path, "array too large (more than 2^30 elements)");
    count *= s;
  }
  const int size = descr.half ? 2 : ElementSize(descr.type);
  if (bytes.size() - data_start < count * size) {
    Fail(argument, path, "truncated: the header needs " + std::to_string(count * size) +
                             " data bytes, the file has " + std::to_string(bytes.size() - data_start));
  }
  array.data.resize(static_cast<Eigen::Index>(count));
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data()) + data_start;
  unsigned char element[8];
  for (Eigen::Index i = 0; i < array.data.size(); ++i) {
    std::memcpy(element, data + i * size, size);
    if (descr.swap) std::reverse(element, element + size);
    if (descr.half) {
      std::uint16_t h;
      std::memcpy(&h, element, 2);
      array.data[i] = HalfToDouble(h);
    } else {
      array.data[i] = LoadElement(descr.type, element);
    }
  }
  return array;
}

void WriteNpy(const std::string& path, const std::vector<std::uint64_t>& shape,
              const Eigen::Ref<const Eigen::VectorXd>& data, ElementType type) {
  std::uint64_t count = 1;
  std::string dims;
  for (std::uint64_t d : shape) {
    count *= d;
    dims += std::to_string(d) + ", ";
  }
  if (count != static_cast<std::uint64_t>(data.size())) {
    throw InputError(path + ": .npy shape does not match the number of values");
  }
  if (shape.size() > 1) dims.erase(dims.size() - 2);  // (n,) keeps its comma
  std::string dict = "{'descr': '" + DescrOf(type) + "', 'fortran_order': False, 'shape': (" +
                     dims + "), }";
  // Pad with spaces so that the data starts at a multiple of 64 bytes; the header ends in '\n'.
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>((dict.size() >> 8) & 0xff));
  out += dict;
  const int size = ElementSize(type);
  const std::size_t start = out.size();
  out.resize(start + static_cast<std::size_t>(data.size()) * size);
  auto* bytes = reinterpret_cast<unsigned char*>(out.data()) + start;
  for (Eigen::Index i = 0; i < data.size(); ++i) StoreElement(type, data[i], bytes + i * size);
  WriteFileAtomically(path, out);
}

}  // namespace diffeoflow
