// Fuzzes the HDF5 layer through the trajectory reader and the model-style dataset reads.
#include <cstdint>

#include "solvers/errors.h"
#include "solvers/hdf5.h"
#include "solvers/trajectory.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = diffeoflow::fuzz::ScratchFile(".h5", data, size);
  try {
    (void)diffeoflow::ReadTrajectory(path);
  } catch (const diffeoflow::InputError&) {
  }
  try {
    diffeoflow::h5::Reader reader(path);
    for (const std::string& name : reader.List("/")) {
      if (reader.Has(name)) {
        try {
          (void)reader.ReadDoubles(name);
        } catch (const diffeoflow::InputError&) {
        }
      }
    }
  } catch (const diffeoflow::InputError&) {
  }
  std::remove(path.c_str());
  return 0;
}
