// `diffeoflow match-landmarks`: the files and JSON keys of ../shared/CLI.md, both methods, 3-D
// input, and bad input that exits non-zero naming the file.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "solvers/hdf5.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;

using diffeoflow::testing::CliRun;

class MatchLandmarksCli : public diffeoflow::testing::CliTest {
 protected:
  MatchLandmarksCli() : CliTest("match-landmarks", "diffeoflow_match_landmarks_") {}

  // n points on the unit circle (optionally lifted to 3-D), and their smooth warp.
  void WriteShapes(int n, int dim, double amplitude) {
    std::ofstream a(dir_ / "a.csv"), b(dir_ / "b.csv");
    a.precision(17);
    b.precision(17);
    a << (dim == 3 ? "x,y,z\n" : "x,y\n");
    for (int i = 0; i < n; ++i) {
      const double t = 2.0 * M_PI * i / n, x = std::cos(t), y = std::sin(t);
      const double wx = x + amplitude * std::sin(M_PI * y), wy = y + amplitude * std::cos(M_PI * x);
      if (dim == 3) {
        a << x << "," << y << ",0\n";
        b << wx << "," << wy << "," << 0.1 * x << "\n";
      } else {
        a << x << "," << y << "\n";
        b << wx << "," << wy << "\n";
      }
    }
  }

  CliRun Diffeoflow(const std::string& args) { return Run(args + " --quiet"); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
};

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

TEST_F(MatchLandmarksCli, ShootingWritesMetricsTrajectoryAndSummary) {
  WriteShapes(20, 2, 0.25);
  const CliRun run = Diffeoflow("--source " + Path("a.csv") + " --target " + Path("b.csv") +
                             " --out " + Path("out") + " --steps 8");
  ASSERT_EQ(run.status, 0) << run.err;
  const nlohmann::json m = ReadJson(Path("out/metrics.json"));
  for (const char* key :
       {"method", "residual_rms", "kinetic_energy", "iterations", "wall_seconds", "parameters"}) {
    EXPECT_TRUE(m.contains(key)) << key;
  }
  EXPECT_EQ(m["method"], "shooting");
  EXPECT_LE(m["residual_rms"].get<double>(), 1e-3);
  EXPECT_GT(m["kinetic_energy"].get<double>(), 0.0);
  EXPECT_EQ(m["parameters"].get<int>(), 40);
  EXPECT_GT(m["iterations"].get<int>(), 0);

  const diffeoflow::h5::Reader h5(Path("out/trajectory.h5"));
  diffeoflow::h5::Shape shape;
  const std::vector<double> positions = h5.ReadDoubles("positions", &shape);
  EXPECT_EQ(shape, (diffeoflow::h5::Shape{9, 20, 2}));
  h5.ReadDoubles("momenta", &shape);
  EXPECT_EQ(shape, (diffeoflow::h5::Shape{9, 20, 2}));
  EXPECT_EQ(h5.ReadDoubles("times").size(), 9u);
  EXPECT_DOUBLE_EQ(positions[0], 1.0);  // the first source landmark at t = 0
  EXPECT_GT(fs::file_size(Path("out/summary.png")), 1000u);
  // Nothing but the promised files (no temporaries left behind).
  int files = 0;
  for (const auto& entry : fs::directory_iterator(Path("out"))) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 3);
}

TEST_F(MatchLandmarksCli, LddmmMethodAnd3DInput) {
  WriteShapes(12, 3, 0.2);
  const CliRun run = Diffeoflow("--source " + Path("a.csv") + " --target " + Path("b.csv") +
                             " --out " + Path("out3") + " --method lddmm --steps 6");
  ASSERT_EQ(run.status, 0) << run.err;
  const nlohmann::json m = ReadJson(Path("out3/metrics.json"));
  EXPECT_EQ(m["method"], "lddmm");
  EXPECT_LE(m["residual_rms"].get<double>(), 1e-3);
  EXPECT_EQ(m["parameters"].get<int>(), 12 * 3 * 7);
  EXPECT_TRUE(fs::exists(Path("out3/trajectory.h5")));
  EXPECT_FALSE(fs::exists(Path("out3/summary.png")));  // 2-D only
}

TEST_F(MatchLandmarksCli, BadCsvExitsNonZeroNamingTheFile) {
  WriteShapes(10, 2, 0.2);
  std::ofstream(dir_ / "bad.csv") << "x,y\n0,1\n2,oops\n";
  CliRun run = Diffeoflow("--source " + Path("a.csv") + " --target " + Path("bad.csv") + " --out " +
                       Path("out"));
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.err.find(Path("bad.csv") + ":3"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(Path("out/metrics.json")));

  run = Diffeoflow("--source " + Path("missing.csv") + " --target " + Path("b.csv") + " --out " +
                   Path("out"));
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.err.find(Path("missing.csv")), std::string::npos) << run.err;

  std::ofstream(dir_ / "short.csv") << "0,1\n1,0\n";
  run = Diffeoflow("--source " + Path("a.csv") + " --target " + Path("short.csv") + " --out " +
                   Path("out"));
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.err.find("--target"), std::string::npos) << run.err;

  run = Diffeoflow("--source " + Path("a.csv") + " --target " + Path("b.csv") + " --out " +
                   Path("out") + " --method newton");
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.err.find("--method"), std::string::npos) << run.err;
}

}  // namespace
