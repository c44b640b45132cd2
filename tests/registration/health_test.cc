// Reliability of Register: NaN/Inf energies and folded maps stop with NumericalError instead of
// returning garbage; Ctrl-C returns an interrupted result and a checkpoint, and resuming from it
// gives the uninterrupted result bit for bit; a checkpoint of other inputs is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "registration/register.h"
#include "solvers/errors.h"
#include "tests/registration/test_images.h"
#include "solvers/hdf5.h"
#include "solvers/interrupt.h"
#include "tests/scratch.h"

namespace diffeoflow::registration {
namespace {

namespace fs = std::filesystem;

using testing::SmoothDisc;

RegistrationOptions Small() {
  RegistrationOptions o;
  o.metric.alpha_mm2 = 9.0;
  o.sigma = 0.02;
  o.levels = 2;
  o.iterations = 12;
  o.time_steps = 4;
  return o;
}

// Weak regularisation, a strong data term and one Euler step: before the CFL-type sub-steps and the
// traced map (traced_map.h) this configuration folded the map (φ = x + v with |Dv| > 1).
RegistrationOptions Folding() {
  RegistrationOptions o;
  o.metric.alpha_mm2 = 0.1;
  o.metric.gamma = 1.0;
  o.sigma = 0.001;
  o.levels = 1;
  o.iterations = 50;
  o.time_steps = 1;
  o.solver = Method::kEuler;
  o.band_limit = 0;
  o.mesh_spacing_fraction = 0.0;
  return o;
}

template <typename Call>
std::string NumericalMessage(Call call) {
  try {
    call();
  } catch (const NumericalError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected NumericalError";
  return "";
}

class RegistrationHealth : public testing::ScratchTest {
 protected:
  RegistrationHealth() : ScratchTest("diffeoflow_reg_health_") {}
  void TearDown() override {
    ClearInterrupt();
    ScratchTest::TearDown();
  }
  const Image fixed_ = SmoothDisc(32, 16, 16, 7);
  const Image moving_ = SmoothDisc(32, 13, 17, 5);
};

TEST_F(RegistrationHealth, NonFiniteEnergyIsANumericalErrorNamingTheLevel) {
  RegistrationOptions o = Small();
  o.sigma = 1e-200;  // 1/σ² overflows: the data term is +Inf from the start
  const std::string message = NumericalMessage([&] { Register(moving_, fixed_, o); });
  EXPECT_NE(message.find("level 1/2"), std::string::npos) << message;
  EXPECT_NE(message.find("--sigma"), std::string::npos) << message;
  for (RegistrationMethod method : {RegistrationMethod::kShooting, RegistrationMethod::kLddmm}) {
    // Unnormalised intensities of 1e200: their squared differences overflow.
    RegistrationOptions raw = Small();
    raw.method = method;
    raw.normalize_intensity = false;
    Image huge = moving_;
    huge.data *= 1e200;
    EXPECT_NE(NumericalMessage([&] { Register(huge, fixed_, raw); }).find("NaN or Inf"),
              std::string::npos);
  }
}

TEST_F(RegistrationHealth, WeakRegularisationNoLongerFolds) {
  for (RegistrationMethod method : {RegistrationMethod::kShooting, RegistrationMethod::kLddmm}) {
    RegistrationOptions o = Folding();
    o.method = method;
    // The fold check is on (max_folded_fraction = 0): it passes because the map is a
    // diffeomorphism, and the one requested step was split by the CFL bound.
    const RegistrationResult r = Register(moving_, fixed_, o);
    EXPECT_GT(r.min_jacobian, 0.0) << RegistrationMethodName(method);
    EXPECT_GT(r.substeps, 1) << RegistrationMethodName(method);
    EXPECT_GT(r.ssd_reduction(), 0.5) << RegistrationMethodName(method);
  }
  RegistrationOptions bad = Small();
  bad.max_folded_fraction = -0.1;
  testing::ExpectInputError([&] { Register(moving_, fixed_, bad); }, {"--max-folded-fraction"});
}

TEST_F(RegistrationHealth, InterruptedRunResumesToTheUninterruptedResult) {
  for (RegistrationMethod method : {RegistrationMethod::kShooting, RegistrationMethod::kLddmm}) {
    RegistrationOptions o = Small();
    o.method = method;
    const RegistrationResult straight = Register(moving_, fixed_, o);
    ASSERT_FALSE(straight.interrupted);
    ASSERT_EQ(straight.level_starts.size(), 2u);
    // Interrupted in the first level, in the second, and after the last report of the run.
    const int total = straight.iterations + 2;  // one report per iteration plus iteration 0
    for (int after : {3, straight.level_starts[1] + 3, total}) {
      const std::string checkpoint = Path("checkpoint_" + std::to_string(after) + ".h5");
      RegistrationOptions first = o;
      first.checkpoint = checkpoint;
      int seen = 0;
      first.progress = [&](const RegistrationProgress&) {
        if (++seen == after) RequestInterrupt();
      };
      const RegistrationResult stopped = Register(moving_, fixed_, first);
      ClearInterrupt();
      if (after == total) {
        // The flag came with the last report: the run had nothing left to stop.
        EXPECT_FALSE(stopped.interrupted);
        continue;
      }
      ASSERT_TRUE(stopped.interrupted) << after;
      EXPECT_EQ(stopped.termination_type, Termination::kInterrupted) << stopped.FullReport();
      EXPECT_EQ(stopped.termination, "interrupted");
      EXPECT_EQ(stopped.warped.data.size(), 0);
      ASSERT_TRUE(fs::exists(checkpoint));
      RegistrationOptions second = o;
      second.checkpoint = checkpoint;
      second.resume = true;
      const RegistrationResult resumed = Register(moving_, fixed_, second);
      EXPECT_FALSE(resumed.interrupted);
      EXPECT_EQ(resumed.resumed_from_level, after < straight.level_starts[1] ? 0 : 1);
      EXPECT_EQ(resumed.iterations, straight.iterations);
      EXPECT_EQ(resumed.loss_history, straight.loss_history);
      EXPECT_EQ(resumed.level_starts, straight.level_starts);
      EXPECT_EQ(resumed.energy, straight.energy);
      EXPECT_EQ(resumed.ssd_final, straight.ssd_final);
      EXPECT_EQ((resumed.phi - straight.phi).cwiseAbs().maxCoeff(), 0.0);
      EXPECT_EQ((resumed.warped.data - straight.warped.data).cwiseAbs().maxCoeff(), 0.0);
    }
  }
}

TEST_F(RegistrationHealth, CompletedCheckpointResumesToTheOutputsWithoutIterating) {
  RegistrationOptions o = Small();
  o.checkpoint = Path("done.h5");
  const RegistrationResult straight = Register(moving_, fixed_, o);
  o.resume = true;
  o.progress = [](const RegistrationProgress&) { ADD_FAILURE() << "iterated after resume"; };
  const RegistrationResult again = Register(moving_, fixed_, o);
  EXPECT_EQ(again.resumed_from_level, 2);
  EXPECT_EQ((again.phi - straight.phi).cwiseAbs().maxCoeff(), 0.0);
  EXPECT_EQ(again.loss_history, straight.loss_history);
}

TEST_F(RegistrationHealth, CheckpointOfOtherInputsOrGarbageIsRefused) {
  RegistrationOptions o = Small();
  o.checkpoint = Path("checkpoint.h5");
  Register(moving_, fixed_, o);
  ASSERT_TRUE(fs::exists(o.checkpoint));
  RegistrationOptions other = o;
  other.resume = true;
  other.sigma = 0.05;
  testing::ExpectInputError([&] { Register(moving_, fixed_, other); },
                            {o.checkpoint, "other images or options"});
  // Another similarity (or, for NCC, another window) is another problem.
  other = o;
  other.resume = true;
  other.similarity = SimilarityMeasure::kLocalNcc;
  testing::ExpectInputError([&] { Register(moving_, fixed_, other); },
                            {o.checkpoint, "other images or options"});
  RegistrationOptions ncc = o;
  ncc.similarity = SimilarityMeasure::kLocalNcc;
  ncc.checkpoint = Path("checkpoint_ncc.h5");
  Register(moving_, fixed_, ncc);
  ASSERT_TRUE(fs::exists(ncc.checkpoint));
  ncc.resume = true;
  ncc.ncc_radius = 3;
  testing::ExpectInputError([&] { Register(moving_, fixed_, ncc); },
                            {ncc.checkpoint, "other images or options"});
  other = o;
  other.resume = true;
  Image shifted = moving_;
  shifted.data[0] += 1e-3;
  testing::ExpectInputError([&] { Register(shifted, fixed_, other); }, {o.checkpoint});
  // Not a checkpoint: random bytes, and a valid HDF5 file of another kind.
  WriteBytes(o.checkpoint, "\x89HDF\r\n\x1a\n not really");
  testing::ExpectInputError([&] { Register(moving_, fixed_, other); }, {o.checkpoint});
  {
    h5::Writer w(o.checkpoint);
    w.SetAttribute("/", "format", "diffeoflow-checkpoint");
    w.Commit();
  }
  testing::ExpectInputError([&] { Register(moving_, fixed_, other); },
                            {o.checkpoint, "registration checkpoint"});
  // --resume without a checkpoint path is an option error.
  RegistrationOptions no_path = Small();
  no_path.resume = true;
  testing::ExpectInputError([&] { Register(moving_, fixed_, no_path); }, {"--resume"});
}

TEST_F(RegistrationHealth, BadImagesAreInputErrorsNamingTheArgument) {
  Image nan = moving_;
  nan.data[5] = std::nan("");
  testing::ExpectInputError([&] { Register(nan, fixed_, Small()); }, {"--moving", "NaN"});
  Image inf = fixed_;
  inf.data[7] = INFINITY;
  testing::ExpectInputError([&] { Register(moving_, inf, Small()); }, {"--fixed", "NaN or Inf"});
  // The images must overlap in the world (another grid is resampled, world_space.h), and have
  // the same dimension.
  Image far = SmoothDisc(40, 20, 20, 8);
  far.grid.origin_mm = {0.0, -1000.0, 0.0};
  testing::ExpectInputError([&] { Register(far, fixed_, Small()); },
                            {"--moving", "--fixed", "do not overlap"});
  Image volume;
  volume.grid.dim = 3;
  volume.grid.size = {32, 32, 4};
  volume.data.setZero(volume.grid.voxels());
  testing::ExpectInputError([&] { Register(volume, fixed_, Small()); }, {"--moving", "32x32x4"});
}

}  // namespace
}  // namespace diffeoflow::registration
