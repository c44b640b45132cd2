#include "solvers/read_file.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "solvers/errors.h"

namespace diffeoflow {
namespace {

[[noreturn]] void Fail(const std::string& argument, const std::string& path,
                       const std::string& what) {
  throw InputError(InputPrefix(argument, path) + what);
}

}  // namespace

std::string InputPrefix(const std::string& argument, const std::string& path) {
  return argument.empty() ? path + ": " : argument + ": " + path + ": ";
}

std::uint64_t CheckedFileSize(const std::string& path, const std::string& argument) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    throw MissingFileError(InputPrefix(argument, path) + "no such file");
  }
  if (std::filesystem::is_directory(status)) Fail(argument, path, "is a directory, expected a file");
  if (!std::filesystem::is_regular_file(status)) Fail(argument, path, "is not a regular file");
  const std::uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) Fail(argument, path, "cannot read the file size: " + ec.message());
  if (size == 0) Fail(argument, path, "is empty");
  return size;
}

std::string ReadWholeFile(const std::string& path, const std::string& argument) {
  const std::uint64_t size = CheckedFileSize(path, argument);
  if (size > (std::uint64_t{1} << 34)) Fail(argument, path, "file too large");
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(argument, path, "cannot open for reading");
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<std::uint64_t>(in.gcount()) != size) Fail(argument, path, "short read");
  return bytes;
}

}  // namespace diffeoflow
