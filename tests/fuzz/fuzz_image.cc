// Fuzzes the image readers (NIfTI, gzipped NIfTI, PNG, .npy) and the vector-field reader. The
// first byte picks the format; the rest is the file. Only InputError may escape a reader.
#include <cstdint>

#include "registration/image_io.h"
#include "solvers/errors.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const char* const kExtensions[] = {".nii", ".nii.gz", ".png", ".npy"};
  const unsigned choice = data[0] % 5;
  const char* extension = kExtensions[choice % 4];
  const std::string path = diffeoflow::fuzz::ScratchFile(extension, data + 1, size - 1);
  try {
    if (choice == 4) {
      (void)diffeoflow::registration::ReadVectorField(path);
    } else {
      (void)diffeoflow::registration::ReadImage(path);
    }
  } catch (const diffeoflow::InputError&) {
  }
  std::remove(path.c_str());
  return 0;
}
