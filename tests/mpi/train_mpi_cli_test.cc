// `mpirun -np 2 diffeoflow train` (data-parallel training, flows/train.h) against the serial
// command on the same seed, the time budget and resuming under mpirun, a signal on one rank
// stopping both (and resuming to the uninterrupted result), and an error on one rank stopping
// both with its message and exit status 2. The tolerance is docs/parallel.md's.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "solvers/hdf5.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;
using diffeoflow::testing::CliRun;

const bool kRootAllowed = diffeoflow::testing::AllowOpenMpiAsRoot();

// Relative tolerance of data-parallel training against the serial run (docs/parallel.md): the
// slices' gradients are added in another order than the whole batch's, a round-off difference
// (~1e-16) per step that 20 epochs of Adam carry to 5e-15 in θ here.
constexpr double kTolerance = 1e-9;

class TrainMpi : public diffeoflow::testing::CliTest {
 protected:
  TrainMpi() : CliTest("train", "diffeoflow_train_mpi_") {}

  // `diffeoflow train <args>` on two ranks.
  CliRun RunMpi(const std::string& args) {
    return RunRaw(std::string(DIFFEOFLOW_MPIEXEC_NP) + " 2 " + DIFFEOFLOW_CLI + " train " + args);
  }
  CliRun RunRaw(const std::string& command) {
    return diffeoflow::testing::RunCommand(command, dir_);
  }
  static nlohmann::json Metrics(const fs::path& dir) {
    std::ifstream in(dir / "metrics.json");
    return nlohmann::json::parse(in);
  }
  static std::vector<double> Theta(const fs::path& dir) {
    return diffeoflow::h5::Reader((dir / "model.h5").string()).ReadDoubles("theta");
  }
};

// 320 training points in batches of 45: the last batch of 5 splits 2 + 3, the others 22 + 23.
const std::string kSmallRun =
    "--dataset spirals --samples 400 --epochs 20 --batch 45 --steps 4 --channels 8 --hidden 16 "
    "--threads 1 --seed 3";

TEST_F(TrainMpi, TwoRanksMatchTheSerialRunWithinTheTolerance) {
  ASSERT_TRUE(kRootAllowed);
  const fs::path serial = dir_ / "serial", parallel = dir_ / "parallel";
  const CliRun one = Run(kSmallRun + " --quiet --out " + serial.string());
  ASSERT_EQ(one.status, 0) << one.err;
  const CliRun two = RunMpi(kSmallRun + " --out " + parallel.string());
  ASSERT_EQ(two.status, 0) << two.err;
  // Only rank 0 prints progress: one line per epoch, not two.
  std::size_t lines = 0;
  for (std::size_t at = two.err.find("epoch 1/20 "); at != std::string::npos;
       at = two.err.find("epoch 1/20 ", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << two.err;

  const auto a = Metrics(serial), b = Metrics(parallel);
  EXPECT_EQ(a["ranks"], 1);
  EXPECT_EQ(b["ranks"], 2);
  EXPECT_EQ(a["epochs"], b["epochs"]);
  EXPECT_EQ(a["nfe_forward"], b["nfe_forward"]);  // RK4, 4 steps, on each slice as on the batch
  EXPECT_NEAR(a["test_loss"].get<double>(), b["test_loss"].get<double>(),
              kTolerance * a["test_loss"].get<double>());
  EXPECT_EQ(a["test_accuracy"], b["test_accuracy"]);
  EXPECT_EQ(a["train_accuracy"], b["train_accuracy"]);
  ASSERT_EQ(a["history"].size(), b["history"].size());
  for (std::size_t e = 0; e < a["history"].size(); ++e) {
    const double la = a["history"][e]["train_loss"], lb = b["history"][e]["train_loss"];
    EXPECT_NEAR(la, lb, kTolerance * la) << "epoch " << e + 1;
  }
  const std::vector<double> ta = Theta(serial), tb = Theta(parallel);
  ASSERT_EQ(ta.size(), tb.size());
  double scale = 0.0, difference = 0.0;
  for (std::size_t i = 0; i < ta.size(); ++i) {
    scale = std::max(scale, std::abs(ta[i]));
    difference = std::max(difference, std::abs(ta[i] - tb[i]));
  }
  EXPECT_LE(difference, kTolerance * scale) << "max |Δθ| " << difference << ", max |θ| " << scale;
  std::cout << "max |θ_serial − θ_2 ranks| / max |θ| = " << difference / scale << "\n";
  // Training moved θ far beyond the tolerance, so the comparison is not of two untrained models.
  EXPECT_GT(a["train_accuracy"].get<double>(), 0.6);
}

// Full-batch L-BFGS: the ranks evaluate alternate batches of the objective and add them, so Ceres
// takes the same iterations as the serial run up to round-off; rank 0's clock ends a budget.
TEST_F(TrainMpi, LbfgsOnTwoRanksMatchesTheSerialRunAndStopsOnTheBudget) {
  const fs::path serial = dir_ / "serial", parallel = dir_ / "parallel";
  const std::string args = "--dataset spirals --samples 400 --epochs 15 --batch 45 --steps 4 "
                           "--channels 8 --hidden 16 --threads 1 --seed 3 --optimizer lbfgs "
                           "--quiet --out ";
  const CliRun one = Run(args + serial.string());
  ASSERT_EQ(one.status, 0) << one.err;
  const CliRun two = RunMpi(args + parallel.string());
  ASSERT_EQ(two.status, 0) << two.err;
  const auto a = Metrics(serial), b = Metrics(parallel);
  EXPECT_EQ(a["epochs"], b["epochs"]);
  EXPECT_NEAR(a["test_loss"].get<double>(), b["test_loss"].get<double>(),
              kTolerance * a["test_loss"].get<double>());
  EXPECT_EQ(a["test_accuracy"], b["test_accuracy"]);
  const std::vector<double> ta = Theta(serial), tb = Theta(parallel);
  ASSERT_EQ(ta.size(), tb.size());
  for (std::size_t i = 0; i < ta.size(); ++i) {
    EXPECT_NEAR(ta[i], tb[i], kTolerance * (1.0 + std::abs(ta[i]))) << "θ[" << i << "]";
  }
  const fs::path budget = dir_ / "budget";
  const CliRun timed = RunMpi("--dataset moons --samples 2000 --epochs 100000 --threads 1 "
                              "--optimizer lbfgs --time-budget 0.5 --quiet --out " +
                              budget.string());
  ASSERT_EQ(timed.status, 0) << timed.err;
  EXPECT_EQ(Metrics(budget)["termination"], "time budget");
}

TEST_F(TrainMpi, TheTimeBudgetStopsBothRanksAndRank0sCheckpointResumes) {
  const fs::path out = dir_ / "budget";
  const std::string args = "--dataset moons --samples 2000 --steps 4 --threads 1 --quiet --out " +
                           out.string();
  const CliRun first = RunMpi(args + " --epochs 100000 --time-budget 1");
  ASSERT_EQ(first.status, 0) << first.err;
  const auto m = Metrics(out);
  EXPECT_EQ(m["termination"], "time budget");
  const int epochs = m["epochs"];
  EXPECT_LT(epochs, 100000);
  ASSERT_TRUE(fs::exists(out / "checkpoint.h5"));
  // Resuming: rank 0 reads the checkpoint and sends it; training goes on from there.
  const CliRun second = RunMpi(args + " --epochs " + std::to_string(epochs + 2) + " --resume");
  ASSERT_EQ(second.status, 0) << second.err;
  const auto r = Metrics(out);
  EXPECT_EQ(r["resumed_from_epoch"], epochs);
  EXPECT_EQ(r["epochs"], epochs + 2);
  EXPECT_EQ(r["termination"], "epochs");
}

TEST_F(TrainMpi, ASignalOnRank0StopsBothAndTheResumedRunEqualsAnUninterruptedOne) {
  // Only rank 0 raises SIGINT after its second epoch (`env` sets the variable for it alone):
  // both ranks must stop after the same epoch, since they agree on the interruption.
  const fs::path stopped = dir_ / "stopped", whole = dir_ / "whole";
  const std::string args = "--dataset spirals --samples 400 --epochs 5 --batch 45 --steps 4 "
                           "--channels 8 --hidden 16 --threads 1 --seed 3 --quiet --out ";
  const std::string cli = std::string(DIFFEOFLOW_CLI) + " train " + args + stopped.string();
  const CliRun interrupted = RunRaw(std::string(DIFFEOFLOW_MPIEXEC_NP) + " 1 env " +
                                    "DIFFEOFLOW_TEST_SIGNAL_AFTER=2 " + cli + " : " +
                                    DIFFEOFLOW_MPIEXEC_FLAG + " 1 " + cli);
  EXPECT_EQ(interrupted.status, 130) << interrupted.err;
  EXPECT_TRUE(fs::exists(stopped / "checkpoint.h5"));
  EXPECT_FALSE(fs::exists(stopped / "metrics.json"));
  const CliRun resumed = RunMpi(args + stopped.string() + " --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  const CliRun uninterrupted = RunMpi(args + whole.string());
  ASSERT_EQ(uninterrupted.status, 0) << uninterrupted.err;
  EXPECT_EQ(Metrics(stopped)["resumed_from_epoch"], 2);
  // The same ranks, the same additions: the same bits.
  EXPECT_EQ(Theta(stopped), Theta(whole));
}

TEST_F(TrainMpi, AnErrorOnOneRankStopsBothWithItsMessageAndStatus2) {
  // Rank 0 gets a long valid run and would wait for rank 1 in the first batch's sum; rank 1 gets
  // a missing data file (Open MPI's MPMD syntax gives the ranks different arguments).
  const fs::path out = dir_ / "failed";
  const std::string missing = (dir_ / "missing.npy").string();
  const CliRun run = RunRaw(std::string(DIFFEOFLOW_MPIEXEC_NP) + " 1 " + DIFFEOFLOW_CLI +
                            " train --dataset spirals --epochs 100000 --threads 1 --quiet --out " +
                            out.string() + " : " + DIFFEOFLOW_MPIEXEC_FLAG + " 1 " +
                            DIFFEOFLOW_CLI + " train --train-data " + missing +
                            " --train-labels " + missing + " --threads 1 --quiet --out " +
                            out.string());
  EXPECT_EQ(run.status, 2) << run.err;
  EXPECT_NE(run.err.find("diffeoflow: error: --train-data: " + missing), std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("(rank 1 of 2)"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(out / "model.h5"));
  EXPECT_FALSE(fs::exists(out / "metrics.json"));
}

}  // namespace
