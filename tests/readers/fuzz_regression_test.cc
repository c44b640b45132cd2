// Replays the fuzzing corpora through the readers in every build (including ASan/UBSan):
//  - tests/fuzz/seeds/<target>/: valid files our writers made; they must read without error;
//  - tests/data/fuzz/<target>/: inputs that once crashed or hung a reader; each must now either
//    read or raise InputError naming the file. Nothing else may escape.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "flows/datasets.h"
#include "registration/image_io.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"
#include "solvers/trajectory.h"

namespace diffeoflow {
namespace {

namespace fs = std::filesystem;

const fs::path kSeeds = fs::path(DIFFEOFLOW_TEST_DATA_DIR) / ".." / "fuzz" / "seeds";
const fs::path kRegressions = fs::path(DIFFEOFLOW_TEST_DATA_DIR) / "fuzz";

std::vector<unsigned char> Bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string Scratch(const std::string& extension, const unsigned char* data, std::size_t size) {
  const fs::path path = fs::temp_directory_path() /
                        ("diffeoflow-regression-" + std::to_string(::getpid()) + extension);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path.string();
}

// The same dispatch as tests/fuzz/fuzz_image.cc: the first byte picks the reader.
void ReadImageInput(const std::vector<unsigned char>& bytes) {
  if (bytes.empty()) return;
  static const char* const kExtensions[] = {".nii", ".nii.gz", ".png", ".npy"};
  const unsigned choice = bytes[0] % 5;
  const std::string path = Scratch(kExtensions[choice % 4], bytes.data() + 1, bytes.size() - 1);
  try {
    if (choice == 4) {
      registration::ReadVectorField(path);
    } else {
      registration::ReadImage(path);
    }
  } catch (...) {
    fs::remove(path);
    throw;
  }
  fs::remove(path);
}

void ReadIdxInput(const std::vector<unsigned char>& bytes) {
  const bool gzip = bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
  const std::string path = Scratch(gzip ? ".idx.gz" : ".idx", bytes.data(), bytes.size());
  try {
    flows::ReadIdx(path);
  } catch (...) {
    fs::remove(path);
    throw;
  }
  fs::remove(path);
}

void ReadHdf5Input(const std::vector<unsigned char>& bytes) {
  const std::string path = Scratch(".h5", bytes.data(), bytes.size());
  try {
    ReadTrajectory(path);
  } catch (...) {
    fs::remove(path);
    throw;
  }
  fs::remove(path);
}

using Reader = void (*)(const std::vector<unsigned char>&);

std::vector<fs::path> FilesIn(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  return files;
}

struct Target {
  const char* name;
  Reader read;
};

const Target kTargets[] = {{"fuzz_image", ReadImageInput},
                           {"fuzz_idx", ReadIdxInput},
                           {"fuzz_hdf5", ReadHdf5Input}};

TEST(FuzzRegression, SeedsAreValidFilesOfEveryFormat) {
  int seen = 0;
  for (const Target& target : kTargets) {
    const auto files = FilesIn(kSeeds / target.name);
    EXPECT_FALSE(files.empty()) << "no seeds for " << target.name;
    for (const fs::path& file : files) {
      EXPECT_NO_THROW(target.read(Bytes(file))) << file;
      ++seen;
    }
  }
  EXPECT_GE(seen, 8);
}

TEST(FuzzRegression, OnceCrashingInputsNowFailCleanly) {
  for (const Target& target : kTargets) {
    for (const fs::path& file : FilesIn(kRegressions / target.name)) {
      try {
        target.read(Bytes(file));
      } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("diffeoflow-regression-"), std::string::npos)
            << file << ": the message must name the file: " << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace diffeoflow
