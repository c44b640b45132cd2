// The `register`, `apply`, `compare` and `shapes` subcommands against CLI.md: every promised file,
// the metrics.json keys, and clear errors without output on bad input.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <nlohmann/json.hpp>

#include "registration/image_io.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;

using diffeoflow::testing::CliRun;

class RegisterCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::path(::testing::TempDir()) / ("diffeoflow_register_cli_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    const CliRun small = RunCli("shapes --out " + (root_ / "pair").string() + " --size 32 --quiet");
    ASSERT_EQ(small.status, 0) << small.output();
    // The moving image 1 m away in the world (.png has no affine: a NIfTI copy with an origin).
    diffeoflow::registration::Image far = diffeoflow::registration::ReadImage(Pair("moving.png"));
    far.grid.origin_mm = {1000.0, 1000.0, 0.0};
    diffeoflow::registration::WriteImage(Pair("far.nii.gz"), far);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  // Every run of the suite shares one scratch folder (the image pair is drawn once).
  static CliRun RunCli(const std::string& arguments) {
    return diffeoflow::testing::RunDiffeoflow(arguments, root_);
  }
  static std::string Pair(const std::string& name) { return (root_ / "pair" / name).string(); }
  static inline fs::path root_;
  static constexpr const char* kFast = " --levels 1 --iterations 15 --steps 4 --quiet";
};

TEST_F(RegisterCliTest, RegisterWritesEveryFileWithTheMetricsKeys) {
  const fs::path out = root_ / "register";
  const CliRun run = RunCli("register --fixed " + Pair("fixed.png") + " --moving " +
                         Pair("moving.png") + " --out " + out.string() + kFast);
  ASSERT_EQ(run.status, 0) << run.output();
  for (const char* file : {"warped.png", "displacement.nii.gz", "jacobian.nii.gz",
                           "trajectory.h5", "metrics.json", "summary.png"}) {
    EXPECT_TRUE(fs::exists(out / file)) << file;
    EXPECT_GT(fs::file_size(out / file), 0u) << file;
  }
  std::ifstream in(out / "metrics.json");
  const nlohmann::json metrics = nlohmann::json::parse(in);
  for (const char* key : {"method", "ssd_initial", "ssd_final", "ssd_reduction", "kinetic_energy",
                          "velocity_norm_per_time", "min_jacobian", "max_jacobian", "iterations",
                          "wall_seconds", "parameters"}) {
    EXPECT_TRUE(metrics.contains(key)) << key;
  }
  EXPECT_EQ(metrics["method"], "shooting");
  EXPECT_EQ(metrics["velocity_norm_per_time"].size(), 5u);
  EXPECT_GT(metrics["ssd_reduction"].get<double>(), 0.5);
  EXPECT_GT(metrics["min_jacobian"].get<double>(), 0.0);
  // One initial momentum (2 components) on the flow mesh, at most the image grid.
  EXPECT_GT(metrics["parameters"].get<long>(), 0);
  EXPECT_LE(metrics["parameters"].get<long>(), 2 * 32 * 32);
  // No temporary files are left behind.
  for (const auto& entry : fs::directory_iterator(out)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos)
        << entry.path();
  }

  const fs::path labels = root_ / "apply_nearest.nii.gz";
  const CliRun apply = RunCli("apply --transform " + out.string() + " --image " + Pair("moving.png") +
                           " --out " + labels.string() + " --interpolation nearest --quiet");
  ASSERT_EQ(apply.status, 0) << apply.output();
  EXPECT_TRUE(fs::exists(labels));
}

TEST_F(RegisterCliTest, LddmmMethodAndCompareWriteTheirFiles) {
  const fs::path out = root_ / "compare";
  const CliRun run = RunCli("compare --fixed " + Pair("fixed.png") + " --moving " +
                         Pair("moving.png") + " --out " + out.string() + kFast);
  ASSERT_EQ(run.status, 0) << run.output();
  for (const char* file : {"comparison.json", "comparison.md", "comparison.png",
                           "lddmm/metrics.json", "shooting/metrics.json", "lddmm/trajectory.h5",
                           "shooting/summary.png"}) {
    EXPECT_TRUE(fs::exists(out / file)) << file;
  }
  std::ifstream in(out / "comparison.json");
  const nlohmann::json comparison = nlohmann::json::parse(in);
  EXPECT_EQ(comparison["lddmm"]["method"], "lddmm");
  EXPECT_EQ(comparison["shooting"]["method"], "shooting");
  // Gradient descent on v_t has T + 1 velocity fields, shooting one momentum.
  EXPECT_EQ(comparison["lddmm"]["parameters"].get<long>(),
            5 * comparison["shooting"]["parameters"].get<long>());
}

// A method that fails numerically does not cost the other its results: compare runs both, writes
// the working method's folder and the comparison with the failure in it, and exits with 3.
// DIFFEOFLOW_TEST_FAIL_METHOD (apps/cmd_compare.cc) makes exactly one method fail.
TEST_F(RegisterCliTest, CompareKeepsTheMethodThatWorkedWhenTheOtherFails) {
  for (const std::string failing : {"lddmm", "shooting"}) {
    const std::string working = failing == "lddmm" ? "shooting" : "lddmm";
    const fs::path out = root_ / ("compare_without_" + failing);
    ::setenv("DIFFEOFLOW_TEST_FAIL_METHOD", failing.c_str(), 1);
    const CliRun run = RunCli("compare --fixed " + Pair("fixed.png") + " --moving " +
                              Pair("moving.png") + " --out " + out.string() + kFast);
    ::unsetenv("DIFFEOFLOW_TEST_FAIL_METHOD");
    EXPECT_EQ(run.status, 3) << run.output();
    EXPECT_NE(run.err.find("numerical failure: " + failing + ": "), std::string::npos) << run.err;

    for (const char* file : {"warped.png", "displacement.nii.gz", "jacobian.nii.gz",
                             "trajectory.h5", "metrics.json", "summary.png"}) {
      EXPECT_TRUE(fs::exists(out / working / file)) << working << "/" << file;
    }
    EXPECT_FALSE(fs::exists(out / failing)) << failing;
    for (const char* file : {"comparison.json", "comparison.md", "comparison.png"}) {
      EXPECT_TRUE(fs::exists(out / file)) << file;
    }
    EXPECT_FALSE(fs::exists(out / "checkpoint-lddmm.h5"));
    EXPECT_FALSE(fs::exists(out / "checkpoint-shooting.h5"));

    std::ifstream comparison_file(out / "comparison.json");
    const nlohmann::json comparison = nlohmann::json::parse(comparison_file);
    const nlohmann::json& failed = comparison[failing];
    EXPECT_EQ(failed["method"], failing);
    EXPECT_EQ(failed["status"], "failed");
    EXPECT_NE(failed["error"].get<std::string>().find("DIFFEOFLOW_TEST_FAIL_METHOD"),
              std::string::npos)
        << failed;
    EXPECT_FALSE(failed.contains("ssd_final"));
    // The working method's entry is its metrics.json, with "status": "ok".
    nlohmann::json worked = comparison[working];
    EXPECT_EQ(worked["status"], "ok");
    worked.erase("status");
    std::ifstream metrics_file(out / working / "metrics.json");
    EXPECT_EQ(worked, nlohmann::json::parse(metrics_file));

    std::ifstream table_file(out / "comparison.md");
    const std::string table((std::istreambuf_iterator<char>(table_file)),
                            std::istreambuf_iterator<char>());
    EXPECT_NE(table.find("| final SSD | "), std::string::npos) << table;
    EXPECT_NE(table.find("failed** (numerical failure; no " + failing + "/ results): " +
                         failed["error"].get<std::string>()),
              std::string::npos)
        << table;
  }
}

TEST_F(RegisterCliTest, BadInputsFailWithAMessageAndLeaveNoOutput) {
  struct Case {
    std::string arguments;
    std::string expected;  // named in the message
  };
  const std::string out = (root_ / "bad").string();
  const Case cases[] = {
      {"--fixed " + Pair("missing.png") + " --moving " + Pair("moving.png"), "missing.png"},
      {"--fixed " + Pair("fixed.png") + " --moving " + Pair("far.nii.gz"), "do not overlap"},
      {"--fixed " + Pair("fixed.png") + " --moving " + Pair("moving.png") + " --sigma -1",
       "--sigma"},
      {"--fixed " + Pair("fixed.png") + " --moving " + Pair("moving.png") + " --method newton",
       "--method"},
      {"--fixed " + Pair("fixed.txt") + " --moving " + Pair("moving.png"), "--fixed"},
  };
  for (const Case& c : cases) {
    const CliRun run = RunCli("register " + c.arguments + " --out " + out + kFast);
    EXPECT_NE(run.status, 0) << c.arguments;
    EXPECT_NE(run.output().find(c.expected), std::string::npos)
        << c.arguments << " -> " << run.output();
    EXPECT_FALSE(fs::exists(out)) << c.arguments;
  }
  const CliRun apply = RunCli("apply --transform " + (root_ / "nothing").string() + " --image " +
                           Pair("moving.png") + " --out " + (root_ / "x.png").string());
  EXPECT_NE(apply.status, 0);
  EXPECT_NE(apply.output().find("--transform"), std::string::npos) << apply.output();
  EXPECT_FALSE(fs::exists(root_ / "x.png"));
}

}  // namespace
