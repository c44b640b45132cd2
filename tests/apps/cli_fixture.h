// Shared by the CLI tests: a scratch folder per test and a way to run the `diffeoflow` binary
// (DIFFEOFLOW_CLI) with a subcommand, capturing exit status, stdout and stderr.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/scratch.h"

namespace diffeoflow::testing {

struct CliRun {
  int status = -1;
  std::string out, err;
  std::string output() const { return out + err; }
};

// Runs a shell command line; stdout and stderr go through files in `scratch` (which must exist).
inline CliRun RunCommand(const std::string& line, const std::filesystem::path& scratch) {
  const std::filesystem::path out = scratch / "stdout.txt", err = scratch / "stderr.txt";
  const std::string command = line + " > " + out.string() + " 2> " + err.string();
  CliRun run;
  const int raw = std::system(command.c_str());
  run.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  std::stringstream o, e;
  o << std::ifstream(out).rdbuf();
  e << std::ifstream(err).rdbuf();
  run.out = o.str();
  run.err = e.str();
  return run;
}

// The whole content of a file ("" when it cannot be read), for byte-for-byte comparisons.
inline std::string FileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// As root (CI, containers) Open MPI's mpirun wants both of these besides --allow-run-as-root.
// Call it before starting mpirun; true when the environment is set.
inline bool AllowOpenMpiAsRoot() {
  return setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0) == 0 &&
         setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0) == 0;
}

// Runs `diffeoflow <args>` (RunCommand).
inline CliRun RunDiffeoflow(const std::string& args, const std::filesystem::path& scratch) {
  return RunCommand(std::string(DIFFEOFLOW_CLI) + " " + args, scratch);
}

class CliTest : public ::testing::Test {
 protected:
  // `subcommand` is put before the arguments of every Run; `prefix` names the scratch folder.
  CliTest(std::string subcommand, std::string prefix)
      : subcommand_(std::move(subcommand)), prefix_(std::move(prefix)) {}

  void SetUp() override {
    dir_ = ScratchPath(prefix_);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  CliRun Run(const std::string& args) { return RunDiffeoflow(subcommand_ + " " + args, dir_); }

  std::filesystem::path dir_;

 private:
  std::string subcommand_, prefix_;
};

}  // namespace diffeoflow::testing
