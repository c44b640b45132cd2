// `register --affine` and `--initial-affine` (CLI.md, docs/affine.md): the result folder's
// affine.txt and metrics.json "affine" object, a start from a dipy or ITK file, `apply` of a result
// folder through the affine, and bad transform files (exit 2, nothing written).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <string>

#include <Eigen/Geometry>
#include <Eigen/LU>
#include <nlohmann/json.hpp>

#include "registration/affine.h"
#include "registration/image_io.h"
#include "registration/transform_io.h"
#include "registration/world_space.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;
namespace reg = diffeoflow::registration;

// An asymmetric object with smooth edges (world mm), well inside the field of view, and a label
// map of it.
double Object(const Eigen::Vector3d& p) {
  const double a = 0.5 * (1.0 - std::tanh((std::hypot(p[0] / 9.0, p[1] / 6.0) - 1.0) * 4.0));
  const double b =
      0.5 * (1.0 - std::tanh((std::hypot((p[0] - 5.0) / 3.0, (p[1] - 4.0) / 2.5) - 1.0) * 2.0));
  return a + 0.7 * b;
}
double Label(const Eigen::Vector3d& p) {
  if (Object(p) < 0.3) return 0.0;
  return p[0] < 0 ? 1.0 : (p[1] < 0 ? 2.0 : 3.0);
}

reg::Grid Grid2d() {
  reg::Grid g;
  g.dim = 2;
  g.size = {48, 48, 1};
  g.origin_mm = {-23.5, -23.5, 0.0};
  return g;
}

template <typename F>
reg::Image Sampled(const reg::Grid& grid, const Eigen::Matrix4d& W, F f) {
  reg::Image image{grid, Eigen::VectorXd(grid.voxels())};
  for (int j = 0; j < grid.size[1]; ++j) {
    for (int i = 0; i < grid.size[0]; ++i) {
      const Eigen::Vector3d x = grid.VoxelToPhysical(Eigen::Vector3d(i, j, 0));
      image.data[grid.index(i, j)] = f((W * x.homogeneous()).head<3>());
    }
  }
  return image;
}

class AffineCli : public diffeoflow::testing::CliTest {
 protected:
  AffineCli() : CliTest("", "diffeoflow_affine_cli_") {}
  void SetUp() override {
    CliTest::SetUp();
    Eigen::VectorXd p(6);
    p << 9.0 * std::numbers::pi / 180.0, 2.5, -1.5, std::log(1.05), 0.0, 0.0;
    truth_ = reg::AffineFromParameters(p, reg::FieldOfViewCentre(Grid2d()), 2);
    reg::WriteImage(P("fixed.nii.gz"), Sampled(Grid2d(), Eigen::Matrix4d::Identity(), Object));
    // moving = f ∘ A⁻¹, so that fixed(x) = moving(A x).
    reg::WriteImage(P("moving.nii.gz"), Sampled(Grid2d(), truth_.inverse(), Object));
    reg::Image labels = Sampled(Grid2d(), truth_.inverse(), Label);
    labels.source_type = reg::ElementType::kUint8;
    reg::WriteImage(P("moving_labels.nii.gz"), labels, reg::ElementType::kUint8);
    std::ofstream(P("truth_dipy.txt")) << DipyText(truth_);
  }
  std::string P(const std::string& name) const { return (dir_ / name).string(); }
  static std::string DipyText(const Eigen::Matrix4d& A) {
    // np.savetxt of the 3 × 3 world matrix of a 2-D AffineMap.
    char buffer[512];
    std::snprintf(buffer, sizeof(buffer),
                  "%.18e %.18e %.18e\n%.18e %.18e %.18e\n%.18e %.18e %.18e\n", A(0, 0), A(0, 1),
                  A(0, 3), A(1, 0), A(1, 1), A(1, 3), 0.0, 0.0, 1.0);
    return buffer;
  }
  nlohmann::json Metrics(const std::string& out) const {
    return nlohmann::json::parse(std::ifstream(P(out + "/metrics.json")));
  }
  Eigen::Matrix4d truth_;
};

TEST_F(AffineCli, DefaultRegisterRecoversTheAffineAndWritesIt) {
  const auto run = Run("register --fixed " + P("fixed.nii.gz") + " --moving " +
                       P("moving.nii.gz") + " --out " + P("out") + " --quiet --threads 1");
  ASSERT_EQ(run.status, 0) << run.output();
  ASSERT_TRUE(fs::exists(P("out/affine.txt")));
  std::ifstream in(P("out/affine.txt"));
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "#Insight Transform File V1.0");
  const Eigen::Matrix4d A = reg::ReadAffineMatrix(P("out/affine.txt"));
  const nlohmann::json m = Metrics("out");
  ASSERT_TRUE(m.contains("affine")) << m.dump(2);
  EXPECT_EQ(m["affine"]["mode"], "affine");
  EXPECT_EQ(m["affine"]["start"], "centres of mass");
  EXPECT_NEAR(m["affine"]["rotation_degrees"].get<double>(), 9.0, 1.0);
  EXPECT_LT(m["affine"]["ssd_after"].get<double>(), 0.2 * m["affine"]["ssd_before"].get<double>());
  EXPECT_EQ(m["options"]["affine"], "affine");
  // The file and metrics.json hold the same matrix; it is near the truth inside the object.
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(m["affine"]["matrix_ras"][r][c].get<double>(), A(r, c), 1e-9);
    }
  }
  const Eigen::Vector4d x(5.0, -4.0, 0.0, 1.0);
  EXPECT_LT(((A - truth_) * x).norm(), 0.5);
}

TEST_F(AffineCli, InitialAffineFromDipyOrItkIsTheStart) {
  // --affine none --iterations 0: the map is the initial affine alone.
  const auto run = Run("register --fixed " + P("fixed.nii.gz") + " --moving " +
                       P("moving.nii.gz") + " --out " + P("dipy") + " --affine none " +
                       "--initial-affine " + P("truth_dipy.txt") + " --iterations 0 --quiet");
  ASSERT_EQ(run.status, 0) << run.output();
  const Eigen::Matrix4d A = reg::ReadAffineMatrix(P("dipy/affine.txt"));
  EXPECT_LE((A - truth_).cwiseAbs().maxCoeff(), 1e-9);
  const nlohmann::json m = Metrics("dipy");
  EXPECT_EQ(m["affine"]["mode"], "none");
  EXPECT_EQ(m["affine"]["start"], "initial affine " + P("truth_dipy.txt"));
  // The warped moving image is the fixed one up to interpolation.
  const reg::Image fixed = reg::ReadImage(P("fixed.nii.gz"));
  const reg::Image warped = reg::ReadImage(P("dipy/warped.nii.gz"));
  EXPECT_LT((warped.data - fixed.data).cwiseAbs().maxCoeff(), 0.05);
  EXPECT_LT(m["ssd_final"].get<double>(), 0.01 * m["ssd_initial"].get<double>());

  // The same transform as an ITK file (LPS): the same start, the same warped image.
  reg::WriteItkAffine(P("truth_itk.txt"), truth_, 2, Eigen::Vector3d(1.0, 2.0, 0.0));
  const auto itk = Run("register --fixed " + P("fixed.nii.gz") + " --moving " +
                       P("moving.nii.gz") + " --out " + P("itk") + " --affine none " +
                       "--initial-affine " + P("truth_itk.txt") + " --iterations 0 --quiet");
  ASSERT_EQ(itk.status, 0) << itk.output();
  const reg::Image warped_itk = reg::ReadImage(P("itk/warped.nii.gz"));
  EXPECT_LT((warped_itk.data - warped.data).cwiseAbs().maxCoeff(), 1e-5);

  // `apply` of the result folder goes through the affine: moving labels land on the fixed ones.
  const auto apply = Run("apply --transform " + P("dipy") + " --image " +
                         P("moving_labels.nii.gz") + " --out " + P("labels.nii.gz") +
                         " --interpolation nearest --quiet");
  ASSERT_EQ(apply.status, 0) << apply.output();
  const reg::Image carried = reg::ReadImage(P("labels.nii.gz"));
  const reg::Image expected = Sampled(Grid2d(), Eigen::Matrix4d::Identity(), Label);
  Eigen::Index disagree = 0;
  for (Eigen::Index i = 0; i < expected.data.size(); ++i) {
    disagree += carried.data[i] != expected.data[i];
  }
  EXPECT_LT(disagree, expected.data.size() / 50) << disagree << " voxels differ";
}

TEST_F(AffineCli, BadInitialAffineIsRefusedAndNothingWritten) {
  std::ofstream(P("garbage.txt")) << "this is not a transform\n";
  std::ofstream(P("singular.txt")) << "1 2 0\n2 4 0\n0 0 1\n";
  std::ofstream(P("unknown.txt")) << "#Insight Transform File V1.0\n#Transform 0\n"
                                     "Transform: BSplineTransform_double_2_2\n"
                                     "Parameters: 0\nFixedParameters: 0\n";
  std::ofstream(P("three_d.txt")) << "1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n";
  for (const char* name : {"garbage.txt", "singular.txt", "unknown.txt", "three_d.txt",
                           "missing.txt"}) {
    const std::string out = P(std::string("out_") + name);
    const auto run = Run("register --fixed " + P("fixed.nii.gz") + " --moving " +
                         P("moving.nii.gz") + " --out " + out + " --initial-affine " + P(name));
    EXPECT_EQ(run.status, 2) << name << ": " << run.output();
    EXPECT_NE(run.err.find("--initial-affine " + P(name)), std::string::npos) << run.err;
    EXPECT_FALSE(fs::exists(out)) << name;
  }
  const auto bad_mode = Run("register --fixed " + P("fixed.nii.gz") + " --moving " +
                            P("moving.nii.gz") + " --out " + P("o") + " --affine similarity");
  EXPECT_EQ(bad_mode.status, 2);
  EXPECT_NE(bad_mode.err.find("--affine"), std::string::npos) << bad_mode.err;
  EXPECT_FALSE(fs::exists(P("o")));
}

}  // namespace
