// Fuzzes the IDX (MNIST-format) reader, plain and gzipped (inputs starting with the gzip magic).
#include <cstdint>

#include "flows/datasets.h"
#include "solvers/errors.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const std::string path = diffeoflow::fuzz::ScratchFile(gzip ? ".idx.gz" : ".idx", data, size);
  try {
    (void)diffeoflow::flows::ReadIdx(path);
  } catch (const diffeoflow::InputError&) {
  }
  std::remove(path.c_str());
  return 0;
}
