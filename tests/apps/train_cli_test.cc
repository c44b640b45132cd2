// `diffeoflow train`: the files and metrics.json keys of ../shared/CLI.md on a small 2-D run,
// resuming from the checkpoint, and bad arguments that exit non-zero naming the flag or file.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "solvers/hdf5.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;
using CliRun = diffeoflow::testing::CliRun;

class TrainCli : public diffeoflow::testing::CliTest {
 protected:
  TrainCli() : CliTest("train", "diffeoflow_train_cli_") {}

  nlohmann::json Metrics(const fs::path& dir) {
    std::ifstream in(dir / "metrics.json");
    return nlohmann::json::parse(in);
  }
};

TEST_F(TrainCli, WritesModelMetricsTrajectoriesAndFigure) {
  const fs::path out = dir_ / "run";
  const CliRun run = Run("--dataset moons --out " + out.string() +
                           " --samples 300 --epochs 5 --steps 4 --channels 8 --hidden 16 --quiet");
  ASSERT_EQ(run.status, 0) << run.err;
  for (const char* file : {"model.h5", "metrics.json", "trajectories.h5", "summary.png"}) {
    EXPECT_TRUE(fs::exists(out / file)) << file;
  }
  const auto m = Metrics(out);
  for (const char* key : {"train_accuracy", "test_accuracy", "epochs", "samples_per_second",
                          "nfe_forward", "nfe_backward", "wall_seconds", "parameters"}) {
    EXPECT_TRUE(m.contains(key)) << key;
  }
  EXPECT_EQ(m["epochs"].get<int>(), 5);
  EXPECT_EQ(m["nfe_forward"].get<double>(), 16.0);  // RK4, 4 steps
  EXPECT_GT(m["test_accuracy"].get<double>(), 0.5);
  diffeoflow::h5::Reader model((out / "model.h5").string());
  EXPECT_EQ(model.StringAttribute("/", "model"), "odenet");
  EXPECT_EQ(static_cast<long>(model.ReadDoubles("theta").size()), m["parameters"].get<long>());
  diffeoflow::h5::Reader paths((out / "trajectories.h5").string());
  diffeoflow::h5::Shape shape = paths.DatasetShape("states");
  ASSERT_EQ(shape.size(), 3u);
  EXPECT_EQ(shape[1], 60u);  // the 20% test split of 300 points
  EXPECT_EQ(shape[2], 8u);
}

// RNODE's kinetic regulariser: λ₁ is recorded in metrics.json and model.h5, and the run trains.
TEST_F(TrainCli, KineticEnergyIsRecorded) {
  const fs::path out = dir_ / "rnode";
  const CliRun run = Run("--dataset moons --out " + out.string() +
                         " --samples 300 --epochs 3 --steps 4 --channels 8 --hidden 16" +
                         " --kinetic-energy 0.25 --quiet");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(Metrics(out)["kinetic_energy"].get<double>(), 0.25);
  diffeoflow::h5::Reader model((out / "model.h5").string());
  EXPECT_EQ(model.DoubleAttribute("/", "kinetic_energy"), 0.25);
}

// A time budget without --epochs is the length of the run: training goes on past the default
// 100 epochs of a 2-D data set until the budget is spent, and the log gives no epoch total.
// metrics.json records that --flip, --shift and --label-smoothing (off by default) did nothing.
TEST_F(TrainCli, ATimeBudgetWithoutEpochsRunsUntilItIsSpent) {
  const fs::path out = dir_ / "budget";
  // 20 batches an epoch: the budget counts training time only, so with a batch or two an epoch
  // the per-epoch evaluation and checkpoint would take most of the wall time.
  const CliRun run = Run("--dataset moons --samples 2000 --steps 1 --channels 2 --hidden 4 "
                         "--solver euler --batch 80 --time-budget 3 --out " + out.string());
  ASSERT_EQ(run.status, 0) << run.err;
  const auto m = Metrics(out);
  EXPECT_GT(m["epochs"].get<int>(), 100) << run.err.substr(0, 400);
  EXPECT_EQ(m["termination"].get<std::string>(), "time budget");
  EXPECT_EQ(m["horizontal_flip"].get<bool>(), false);
  EXPECT_EQ(m["shift"].get<int>(), 0);
  EXPECT_EQ(m["label_smoothing"].get<double>(), 0.0);
  EXPECT_NE(run.err.find("epoch 101  loss "), std::string::npos) << run.err.substr(0, 400);

  // With --epochs the budget only cuts the run short.
  const fs::path capped = dir_ / "capped";
  ASSERT_EQ(Run("--dataset moons --samples 100 --steps 1 --channels 2 --hidden 4 --solver euler "
                "--epochs 7 --time-budget 30 --quiet --out " + capped.string()).status, 0);
  EXPECT_EQ(Metrics(capped)["epochs"].get<int>(), 7);
}

// Without a terminal (a batch job's log) training prints one line per epoch; --quiet none.
TEST_F(TrainCli, LogsOneLinePerEpochWhenStderrIsNotATerminal) {
  const std::string args = "--dataset moons --samples 200 --epochs 3 --steps 2 --hidden 8 --out ";
  const CliRun logged = Run(args + (dir_ / "logged").string());
  ASSERT_EQ(logged.status, 0) << logged.err;
  for (int epoch = 1; epoch <= 3; ++epoch) {
    const std::string line = "epoch " + std::to_string(epoch) + "/3  loss ";
    const auto at = logged.err.find(line);
    ASSERT_NE(at, std::string::npos) << logged.err;
    EXPECT_TRUE(at == 0 || logged.err[at - 1] == '\n') << logged.err;
    EXPECT_NE(logged.err.find("samples/s", at), std::string::npos);
  }
  EXPECT_EQ(logged.err.find('\r'), std::string::npos) << logged.err;
  const CliRun quiet = Run(args + (dir_ / "quiet").string() + " --quiet");
  ASSERT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("epoch "), std::string::npos) << quiet.err;
}

TEST_F(TrainCli, EveryModelTrains) {
  for (const char* model : {"resnet", "c2", "mlp", "anode"}) {
    const fs::path out = dir_ / model;
    const CliRun run = Run(std::string("--dataset circles --model ") + model + " --out " +
                             out.string() + " --samples 200 --epochs 2 --steps 3 --quiet");
    ASSERT_EQ(run.status, 0) << model << ": " << run.err;
    EXPECT_EQ(Metrics(out)["model"], model);
  }
}

TEST_F(TrainCli, ShootingModelTrainsOnlyMomentaAndReadOut) {
  const fs::path out = dir_ / "shooting";
  const CliRun run = Run("--dataset moons --model shooting --out " + out.string() +
                           " --samples 200 --epochs 15 --quiet");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(fs::exists(out / "model.h5"));
  const auto m = Metrics(out);
  for (const char* key : {"train_accuracy", "test_accuracy", "epochs", "samples_per_second",
                          "nfe_forward", "nfe_backward", "wall_seconds", "parameters"}) {
    EXPECT_TRUE(m.contains(key)) << key;
  }
  EXPECT_GT(m["test_accuracy"].get<double>(), 0.5);
  const CliRun images = Run("--dataset fashion-mnist --model shooting --out " +
                              (dir_ / "x").string() + " --quiet");
  EXPECT_NE(images.status, 0);
  EXPECT_NE(images.err.find("--model shooting"), std::string::npos) << images.err;
}

TEST_F(TrainCli, ResumesFromTheCheckpoint) {
  const fs::path out = dir_ / "run";
  const std::string common = "--dataset spirals --out " + out.string() +
                             " --samples 200 --steps 2 --channels 4 --hidden 8 --quiet";
  ASSERT_EQ(Run(common + " --epochs 3").status, 0);
  const CliRun run = Run(common + " --epochs 5 --resume");
  ASSERT_EQ(run.status, 0) << run.err;
  const auto m = Metrics(out);
  EXPECT_EQ(m["resumed_from_epoch"].get<int>(), 3);
  EXPECT_EQ(m["epochs"].get<int>(), 5);
}

TEST_F(TrainCli, BadArgumentsExitNonZeroNamingTheFlag) {
  struct Case {
    std::string args, fragment;
  };
  const std::string out = (dir_ / "o").string();
  const Case cases[] = {
      {"--dataset cifar --out " + out, "--dataset"},
      {"--dataset spirals", "--out"},
      {"--dataset spirals --out " + out + " --model transformer", "--model"},
      {"--dataset spirals --out " + out + " --solver leapfrog", "--solver"},
      {"--dataset spirals --out " + out + " --gradient magic", "--gradient"},
      {"--dataset spirals --out " + out + " --optimizer rmsprop", "--optimizer"},
      {"--dataset spirals --out " + out + " --batch 0", "--batch"},
      {"--dataset spirals --out " + out + " --model resnet --channels 0", "--channels"},
      {"--dataset spirals --out " + out + " --kinetic-energy -0.5", "--kinetic-energy"},
      {"--dataset spirals --out " + out + " --model resnet --kinetic-energy 0.1",
       "--kinetic-energy"},
      {"--dataset fashion-mnist --out " + out + " --data-dir " + (dir_ / "nowhere").string(),
       "nowhere"},
  };
  for (const Case& c : cases) {
    const CliRun run = Run(c.args);
    EXPECT_NE(run.status, 0) << c.args;
    EXPECT_NE(run.err.find(c.fragment), std::string::npos) << c.args << " -> " << run.err;
  }
}

}  // namespace
