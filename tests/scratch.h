// Shared by the tests that write files: a fresh folder per test (removed afterwards) and the
// expectation that a call throws InputError with a message naming what was wrong.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "solvers/errors.h"

namespace diffeoflow::testing {

// <temp>/<prefix><pid>_<test name>: unique per process and test, so suites may run in parallel.
inline std::filesystem::path ScratchPath(const std::string& prefix) {
  return std::filesystem::temp_directory_path() /
         (prefix + std::to_string(::getpid()) + "_" +
          ::testing::UnitTest::GetInstance()->current_test_info()->name());
}

class ScratchTest : public ::testing::Test {
 protected:
  explicit ScratchTest(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    dir_ = ScratchPath(prefix_);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  // The names of the files in the scratch folder.
  std::set<std::string> Files() const {
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      names.insert(entry.path().filename().string());
    }
    return names;
  }
  static std::string ReadBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  static void WriteBytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  std::filesystem::path dir_;

 private:
  std::string prefix_;
};

// Expects `call` to throw InputError whose message contains every string of `needles`.
template <typename Call>
void ExpectInputError(Call call, const std::vector<std::string>& needles) {
  try {
    call();
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    for (const std::string& needle : needles) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << "message '" << e.what() << "' does not contain '" << needle << "'";
    }
  }
}

}  // namespace diffeoflow::testing
