// Reliability of Train: divergence (NaN/Inf loss or parameters) is a NumericalError that leaves
// the last good checkpoint untouched; an interrupt stops at the end of the epoch with θ equal to
// the checkpoint, and resuming gives the uninterrupted result.
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "flows/train.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"
#include "solvers/interrupt.h"
#include "tests/scratch.h"

namespace diffeoflow::flows {
namespace {

namespace fs = std::filesystem;

ModelSpec Tiny(ModelKind kind) {
  ModelSpec spec;
  spec.kind = kind;
  spec.input_shape = {2};
  spec.classes = 2;
  spec.width = 4;
  spec.hidden = 8;
  spec.depth = 2;
  spec.solver.method = Method::kRk4;
  spec.solver.steps = 2;
  return spec;
}

class TrainHealth : public testing::ScratchTest {
 protected:
  TrainHealth() : ScratchTest("diffeoflow_train_health_") {
    GeneratorOptions g;
    g.samples = 200;
    SplitTrainTest(TwoSpirals(g), 0.25, 2, &train_, &test_);
  }
  void TearDown() override {
    ClearInterrupt();
    ScratchTest::TearDown();
  }
  static Vector CheckpointTheta(const std::string& path, std::int64_t* epoch) {
    const h5::Reader in(path);
    *epoch = in.IntAttribute("/", "epoch");
    const std::vector<double> theta = in.ReadDoubles("theta");
    return Eigen::Map<const Vector>(theta.data(), static_cast<Eigen::Index>(theta.size()));
  }
  Dataset train_, test_;
};

TEST_F(TrainHealth, DivergenceIsANumericalErrorAndKeepsTheLastGoodCheckpoint) {
  for (Optimizer optimizer : {Optimizer::kGradientDescent, Optimizer::kAdam}) {
    for (ModelKind kind : {ModelKind::kOdeNet}) {
      Classifier model(Tiny(kind));
      Vector theta = model.Initialize(3);
      TrainOptions o;
      o.optimizer = optimizer;
      o.epochs = 2;
      o.batch = 50;
      o.learning_rate = 0.01;
      o.checkpoint = Path("checkpoint.h5");
      fs::remove(o.checkpoint);
      Train(model, theta, train_, test_, o);
      std::int64_t epoch = 0;
      const Vector good = CheckpointTheta(o.checkpoint, &epoch);
      ASSERT_EQ(epoch, 2);
      // Continue with an absurd learning rate: θ overflows within the next epoch.
      TrainOptions wild = o;
      wild.epochs = 6;
      wild.resume = true;
      wild.learning_rate = 1e300;
      try {
        Train(model, theta, train_, test_, wild);
        ADD_FAILURE() << "expected NumericalError";
      } catch (const NumericalError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("diverged"), std::string::npos) << message;
        EXPECT_NE(message.find("--lr"), std::string::npos) << message;
        EXPECT_NE(message.find("epoch 3"), std::string::npos) << message;
      }
      const Vector kept = CheckpointTheta(o.checkpoint, &epoch);
      EXPECT_EQ(epoch, 2);
      EXPECT_TRUE(kept.allFinite());
      EXPECT_EQ((kept - good).cwiseAbs().maxCoeff(), 0.0);
    }
  }
}

TEST_F(TrainHealth, NonFiniteLossIsANumericalErrorForEveryOptimizer) {
  // A NaN weight makes every loss NaN (the MLP has no ODE solve to reject it earlier).
  for (Optimizer optimizer : {Optimizer::kAdam, Optimizer::kGradientDescent, Optimizer::kLbfgs}) {
    Classifier model(Tiny(ModelKind::kMlp));
    Vector theta = model.Initialize(3);
    theta[theta.size() / 2] = std::numeric_limits<double>::quiet_NaN();
    TrainOptions o;
    o.optimizer = optimizer;
    o.epochs = 2;
    o.checkpoint = Path("nan.h5");
    try {
      Train(model, theta, train_, test_, o);
      ADD_FAILURE() << "expected NumericalError";
    } catch (const NumericalError& e) {
      EXPECT_NE(std::string(e.what()).find("diverged"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(o.checkpoint)) << OptimizerName(optimizer);
  }
  // A checkpoint holding NaN is refused on resume, naming the file.
  Classifier model(Tiny(ModelKind::kMlp));
  Vector theta = model.Initialize(3);
  TrainOptions o;
  o.epochs = 1;
  o.checkpoint = Path("good.h5");
  Train(model, theta, train_, test_, o);
  {
    std::int64_t epoch = 0;
    Vector stored = CheckpointTheta(o.checkpoint, &epoch);
    stored[0] = std::numeric_limits<double>::infinity();
    h5::Writer w(o.checkpoint);
    w.WriteDoubles("theta", stored.data(), {static_cast<std::uint64_t>(stored.size())});
    const Vector zero = Vector::Zero(stored.size());
    w.WriteDoubles("optimizer/m", zero.data(), {static_cast<std::uint64_t>(stored.size())});
    w.WriteDoubles("optimizer/v", zero.data(), {static_cast<std::uint64_t>(stored.size())});
    w.SetAttribute("/", "format", "diffeoflow-checkpoint");
    w.SetAttribute("/", "epoch", epoch);
    w.SetAttribute("/", "step", std::int64_t{1});
    w.Commit();
  }
  o.resume = true;
  o.epochs = 2;
  const Vector before = theta;
  testing::ExpectInputError([&] { Train(model, theta, train_, test_, o); },
                            {o.checkpoint, "NaN or Inf"});
  EXPECT_EQ((theta - before).cwiseAbs().maxCoeff(), 0.0);
}

TEST_F(TrainHealth, InterruptStopsAtTheCheckpointAndResumeMatchesTheUninterruptedRun) {
  for (Optimizer optimizer : {Optimizer::kAdam, Optimizer::kGradientDescent}) {
    Classifier model(Tiny(ModelKind::kOdeNet));
    TrainOptions o;
    o.optimizer = optimizer;
    o.epochs = 5;
    o.batch = 40;
    o.learning_rate = 0.02;
    Vector straight = model.Initialize(5);
    const TrainSummary full = Train(model, straight, train_, test_, o);

    TrainOptions first = o;
    first.checkpoint = Path(std::string("checkpoint_") + OptimizerName(optimizer) + ".h5");
    int seen = 0;
    first.progress = [&](const EpochReport&) {
      if (++seen == 2) RequestInterrupt();  // during epoch 2's report, before its checkpoint
    };
    Vector theta = model.Initialize(5);
    const TrainSummary stopped = Train(model, theta, train_, test_, first);
    ClearInterrupt();
    EXPECT_TRUE(stopped.interrupted);
    EXPECT_EQ(stopped.termination_type, Termination::kInterrupted);
    EXPECT_EQ(stopped.termination, "interrupted");
    EXPECT_EQ(stopped.epochs, 2);
    std::int64_t epoch = 0;
    const Vector on_disk = CheckpointTheta(first.checkpoint, &epoch);
    EXPECT_EQ(epoch, 2);
    EXPECT_EQ((on_disk - theta).cwiseAbs().maxCoeff(), 0.0);

    TrainOptions second = o;
    second.checkpoint = first.checkpoint;
    second.resume = true;
    Vector resumed = model.Initialize(5);
    const TrainSummary s = Train(model, resumed, train_, test_, second);
    EXPECT_FALSE(s.interrupted);
    EXPECT_EQ(s.start_epoch, 2);
    EXPECT_EQ(s.epochs, 5);
    EXPECT_EQ((resumed - straight).cwiseAbs().maxCoeff(), 0.0);
    EXPECT_EQ(s.test_accuracy, full.test_accuracy);
    EXPECT_EQ(s.history.back().train_loss, full.history.back().train_loss);
  }
}

TEST_F(TrainHealth, InterruptBeforeTheFirstEpochLeavesThetaAndWritesNothing) {
  Classifier model(Tiny(ModelKind::kMlp));
  Vector theta = model.Initialize(1);
  const Vector initial = theta;
  TrainOptions o;
  o.epochs = 3;
  o.checkpoint = Path("never.h5");
  RequestInterrupt();
  const TrainSummary s = Train(model, theta, train_, test_, o);
  EXPECT_TRUE(s.interrupted);
  EXPECT_EQ(s.epochs, 0);
  EXPECT_EQ((theta - initial).cwiseAbs().maxCoeff(), 0.0);
  EXPECT_FALSE(fs::exists(o.checkpoint));
}

}  // namespace
}  // namespace diffeoflow::flows
