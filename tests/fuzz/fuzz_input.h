// libFuzzer harness support: the readers under test take paths, so each input is written to a
// per-process scratch file with the extension the reader dispatches on.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace diffeoflow::fuzz {

inline std::string ScratchFile(const char* extension, const std::uint8_t* data, std::size_t size) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp ? tmp : "/tmp") + "/diffeoflow-fuzz-" +
                           std::to_string(getpid()) + extension;
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, file) != size) std::abort();
  std::fclose(file);
  return path;
}

}  // namespace diffeoflow::fuzz
