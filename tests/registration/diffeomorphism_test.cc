// The no-fold property on a hard pair small enough for a test: the 64² × 4 mm copy of the
// reference disc → thin C ring (deep hollow, mouth narrower than the hollow, sharp 0/1 edges), at
// the default options, by both methods. Before the CFL sub-steps and the traced map
// (traced_map.h) both methods folded this pair (29 and 55 voxels at det Dφ ≤ 0).
#include <gtest/gtest.h>

#include "registration/register.h"
#include "registration/shapes.h"

namespace diffeoflow::registration {
namespace {

TEST(Diffeomorphism, HardThinRingDoesNotFoldAtDefaults) {
  const ShapePair pair = SmallHardCRingPair();
  for (RegistrationMethod method : {RegistrationMethod::kLddmm, RegistrationMethod::kShooting}) {
    SCOPED_TRACE(RegistrationMethodName(method));
    RegistrationOptions options;  // the defaults, but fewer iterations: the property is the map's
    options.method = method;
    options.iterations = 30;
    const RegistrationResult r = Register(pair.moving, pair.fixed, options);
    // The map and its determinant are those of the flow: finite, det Dφ > 0 everywhere, with the
    // strong compression the pair asks for; the finest level ended no higher than it
    // started, and the SSD fell.
    ASSERT_TRUE(r.phi.allFinite());
    ASSERT_TRUE(r.jacobian.data.allFinite());
    EXPECT_GT(r.jacobian.data.minCoeff(), 0.0) << r.BriefReport();
    EXPECT_LT(r.jacobian.data.minCoeff(), 0.5) << "the pair should need strong compression";
    EXPECT_GT(r.substeps, 1) << "the CFL bound should have split the steps";
    ASSERT_FALSE(r.level_starts.empty());
    EXPECT_LE(r.energy, r.loss_history[r.level_starts.back()] * (1 + 1e-12)) << r.BriefReport();
    EXPECT_LT(r.ssd_final, r.ssd_initial) << r.BriefReport();
    if (method == RegistrationMethod::kLddmm) {
      EXPECT_GT(r.ssd_reduction(), 0.2) << r.BriefReport();
    }
  }
}

}  // namespace
}  // namespace diffeoflow::registration
