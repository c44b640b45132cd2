// Ctrl-C through the CLI: `register`, `compare` and `train` stop at the next iteration when SIGINT
// or SIGTERM arrives, leave only their checkpoint (no result file), print one line saying how to
// resume, exit with 128 + signal; `--resume` then gives the uninterrupted result.
//
// The signal is raised deterministically inside the run, through the installed handler, by
// DIFFEOFLOW_TEST_SIGNAL_AFTER=k[:signal] (after the k-th iteration / epoch report).
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "solvers/hdf5.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;

using diffeoflow::testing::CliRun;

class ResumeCli : public diffeoflow::testing::CliTest {
 protected:
  ResumeCli() : CliTest("", "diffeoflow_resume_cli_") {}

  // Runs with DIFFEOFLOW_TEST_SIGNAL_AFTER set (empty: unset).
  CliRun RunWithSignal(const std::string& args, const std::string& signal_after) {
    if (!signal_after.empty()) ::setenv("DIFFEOFLOW_TEST_SIGNAL_AFTER", signal_after.c_str(), 1);
    const CliRun run = Run(args);
    ::unsetenv("DIFFEOFLOW_TEST_SIGNAL_AFTER");
    return run;
  }
  static std::set<std::string> Files(const fs::path& dir) {
    std::set<std::string> names;
    if (!fs::exists(dir)) return names;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
      names.insert(fs::relative(entry.path(), dir).string());
    }
    return names;
  }
  static nlohmann::json Json(const fs::path& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in);
  }
  static std::string Bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // Removes the keys that measure time.
  static void DropTimes(nlohmann::json& j) {
    if (j.is_object()) {
      for (const char* key : {"wall_seconds", "elapsed_seconds", "inverse_seconds",
                              "samples_per_second", "resumed_from_epoch"}) {
        j.erase(key);
      }
      for (auto& [key, value] : j.items()) DropTimes(value);
    } else if (j.is_array()) {
      for (auto& value : j) DropTimes(value);
    }
  }
  // The interrupted run: exit 128 + signal, one stderr line naming the checkpoint and --resume,
  // and nothing in `out` but the checkpoint(s).
  void ExpectInterrupted(const CliRun& run, int signal, const fs::path& out,
                         const std::set<std::string>& checkpoints) {
    EXPECT_EQ(run.status, 128 + signal) << run.output();
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_NE(run.err.find("interrupted"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("--resume"), std::string::npos) << run.err;
    EXPECT_EQ(run.err.find("terminate called"), std::string::npos) << run.err;
    EXPECT_EQ(Files(out), checkpoints);
  }

  void SetUp() override {
    CliTest::SetUp();
    const CliRun pair = Run("shapes --out " + (dir_ / "pair").string() + " --size 32 --quiet");
    ASSERT_EQ(pair.status, 0) << pair.output();
  }
  std::string Images() const {
    return " --fixed " + (dir_ / "pair" / "fixed.png").string() + " --moving " +
           (dir_ / "pair" / "moving.png").string();
  }
  static constexpr const char* kFast = " --levels 2 --iterations 10 --steps 4 --quiet";
};

TEST_F(ResumeCli, RegisterInterruptedThenResumedEqualsTheUninterruptedRun) {
  const fs::path straight = dir_ / "straight";
  for (const std::string method : {"shooting", "lddmm"}) {
    const std::string options = Images() + kFast + " --method " + method;
    fs::remove_all(straight);
    ASSERT_EQ(Run("register" + options + " --out " + straight.string()).status, 0);
    nlohmann::json expected = Json(straight / "metrics.json");
    DropTimes(expected);
    // k = 4: in the first level (SIGINT); k = 15: in the second (SIGTERM).
    for (const auto& [after, signal] : {std::pair{4, SIGINT}, std::pair{15, SIGTERM}}) {
      const fs::path out = dir_ / ("run_" + method + std::to_string(after));
      const CliRun stopped = RunWithSignal("register" + options + " --out " + out.string(),
                                           std::to_string(after) + ":" + std::to_string(signal));
      ExpectInterrupted(stopped, signal, out, {"checkpoint.h5"});
      const CliRun resumed = Run("register" + options + " --out " + out.string() + " --resume");
      ASSERT_EQ(resumed.status, 0) << resumed.output();
      nlohmann::json metrics = Json(out / "metrics.json");
      DropTimes(metrics);
      EXPECT_EQ(metrics, expected) << method << " after " << after;
      for (const char* file : {"displacement.nii.gz", "jacobian.nii.gz", "warped.png"}) {
        EXPECT_EQ(Bytes(out / file), Bytes(straight / file)) << file;
      }
      EXPECT_FALSE(fs::exists(out / "checkpoint.h5"));  // removed once the results are written
    }
  }
}

TEST_F(ResumeCli, ResumeWithOtherOptionsIsRefusedNamingTheCheckpoint) {
  const fs::path out = dir_ / "run";
  const std::string options = Images() + kFast + " --out " + out.string();
  ExpectInterrupted(RunWithSignal("register" + options, "3"), SIGINT, out, {"checkpoint.h5"});
  const CliRun other = Run("register" + options + " --sigma 0.05 --resume");
  EXPECT_EQ(other.status, 2) << other.output();
  EXPECT_NE(other.err.find("checkpoint.h5"), std::string::npos) << other.err;
  EXPECT_EQ(Files(out), std::set<std::string>{"checkpoint.h5"});
}

TEST_F(ResumeCli, CompareInterruptedInEitherMethodResumesToTheSameComparison) {
  const fs::path straight = dir_ / "straight";
  const std::string options = Images() + kFast;
  ASSERT_EQ(Run("compare" + options + " --out " + straight.string()).status, 0);
  nlohmann::json expected = Json(straight / "comparison.json");
  DropTimes(expected);
  // 5: during LDDMM; 30: during shooting (LDDMM's checkpoint then holds all its levels).
  for (const auto& [after, files] :
       {std::pair<int, std::set<std::string>>{5, {"checkpoint-lddmm.h5"}},
        std::pair<int, std::set<std::string>>{30, {"checkpoint-lddmm.h5", "checkpoint-shooting.h5"}}}) {
    const fs::path out = dir_ / ("run" + std::to_string(after));
    const CliRun stopped =
        RunWithSignal("compare" + options + " --out " + out.string(), std::to_string(after));
    ExpectInterrupted(stopped, SIGINT, out, files);
    const CliRun resumed = Run("compare" + options + " --out " + out.string() + " --resume");
    ASSERT_EQ(resumed.status, 0) << resumed.output();
    nlohmann::json comparison = Json(out / "comparison.json");
    DropTimes(comparison);
    EXPECT_EQ(comparison, expected) << "after " << after;
    EXPECT_FALSE(fs::exists(out / "checkpoint-lddmm.h5"));
    EXPECT_FALSE(fs::exists(out / "checkpoint-shooting.h5"));
  }
}

TEST_F(ResumeCli, TrainInterruptedThenResumedEqualsTheUninterruptedRun) {
  const std::string options =
      "train --dataset spirals --samples 200 --steps 2 --channels 4 --hidden 8 --epochs 5 "
      "--batch 40 --quiet";
  const fs::path straight = dir_ / "straight";
  ASSERT_EQ(Run(options + " --out " + straight.string()).status, 0);
  nlohmann::json expected = Json(straight / "metrics.json");
  DropTimes(expected);
  const fs::path out = dir_ / "run";
  const CliRun stopped = RunWithSignal(options + " --out " + out.string(), "2");
  ExpectInterrupted(stopped, SIGINT, out, {"checkpoint.h5"});
  const CliRun resumed = Run(options + " --out " + out.string() + " --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.output();
  nlohmann::json metrics = Json(out / "metrics.json");
  EXPECT_EQ(metrics["resumed_from_epoch"].get<int>(), 2);
  DropTimes(metrics);
  // The history of a resumed run starts at the resumed epoch; the rest must match exactly.
  nlohmann::json tail = expected["history"];
  tail.erase(tail.begin(), tail.begin() + 2);
  EXPECT_EQ(metrics["history"], tail);
  metrics.erase("history");
  expected.erase("history");
  EXPECT_EQ(metrics, expected);
  const diffeoflow::h5::Reader a((straight / "model.h5").string()), b((out / "model.h5").string());
  EXPECT_EQ(a.ReadDoubles("theta"), b.ReadDoubles("theta"));
}

}  // namespace
