// `diffeoflow bench ode`: one JSON object with the keys of ../shared/CLI.md, --weights/--out in
// PyTorch nn.Linear layout (checked against an independent Euler step written here), and bad
// arguments that exit non-zero naming the flag.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "solvers/hdf5.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;
using CliRun = diffeoflow::testing::CliRun;

class BenchCli : public diffeoflow::testing::CliTest {
 protected:
  BenchCli() : CliTest("bench", "diffeoflow_bench_cli_") {}
};

TEST_F(BenchCli, PrintsOneJsonObjectWithTheContractKeys) {
  const CliRun run = Run("ode --dim 3 --hidden 8 --batch 16 --solver dopri5 --rtol 1e-6 "
                           "--atol 1e-8 --gradient backsolve --repeat 3 --threads 1");
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  ASSERT_TRUE(j.is_object());
  for (const char* key : {"ms_per_iteration", "nfe_forward", "nfe_backward", "loss"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_GT(j["ms_per_iteration"].get<double>(), 0.0);
  EXPECT_GT(j["nfe_forward"].get<long>(), 0);
  EXPECT_GT(j["nfe_backward"].get<long>(), 0);
  EXPECT_GT(j["loss"].get<double>(), 0.0);
}

// One Euler step (h = 1) of f(t, x) = W2 tanh(W1 [x; t] + b1) + b2 from t = 0, by hand: the file
// layout (row-major nn.Linear weights, x0 as B × D) and the gradient of Σ x(1)².
TEST_F(BenchCli, WeightsAndOutAreInPyTorchLinearLayout) {
  const int D = 2, H = 3, B = 2;
  const double w1[H][D + 1] = {{0.5, -0.2, 0.3}, {0.1, 0.4, -0.6}, {-0.3, 0.2, 0.9}};
  const double b1[H] = {0.05, -0.1, 0.2};
  const double w2[D][H] = {{0.7, -0.5, 0.2}, {-0.1, 0.3, 0.8}};
  const double b2[D] = {0.01, -0.02};
  const double x0[B][D] = {{1.0, -0.5}, {0.3, 0.8}};
  const std::string weights = (dir_ / "w.h5").string(), result = (dir_ / "r.h5").string();
  {
    diffeoflow::h5::Writer w(weights);
    w.WriteDoubles("l1/weight", &w1[0][0], {H, D + 1});
    w.WriteDoubles("l1/bias", b1, {H});
    w.WriteDoubles("l2/weight", &w2[0][0], {D, H});
    w.WriteDoubles("l2/bias", b2, {D});
    w.WriteDoubles("x0", &x0[0][0], {B, D});
    w.Commit();
  }
  const CliRun run = Run("ode --dim 2 --hidden 3 --batch 2 --solver euler --steps 1 "
                           "--gradient discrete --repeat 1 --threads 1 --weights " + weights +
                           " --out " + result);
  ASSERT_EQ(run.status, 0) << run.err;
  // Reference: x1 = x0 + f(0, x0); L = Σ x1²; ∂L/∂x1 = 2 x1.
  double x1[B][D], loss = 0.0, gx0[B][D], gw1[H][D + 1] = {}, gb1[H] = {}, gw2[D][H] = {},
                   gb2[D] = {};
  for (int b = 0; b < B; ++b) {
    double a[H];
    for (int h = 0; h < H; ++h) {
      a[h] = std::tanh(w1[h][0] * x0[b][0] + w1[h][1] * x0[b][1] + w1[h][2] * 0.0 + b1[h]);
    }
    double g[D];
    for (int d = 0; d < D; ++d) {
      x1[b][d] = x0[b][d] + b2[d];
      for (int h = 0; h < H; ++h) x1[b][d] += w2[d][h] * a[h];
      loss += x1[b][d] * x1[b][d];
      g[d] = 2.0 * x1[b][d];
      gb2[d] += g[d];
      for (int h = 0; h < H; ++h) gw2[d][h] += g[d] * a[h];
    }
    for (int d = 0; d < D; ++d) gx0[b][d] = g[d];
    for (int h = 0; h < H; ++h) {
      double ga = 0.0;
      for (int d = 0; d < D; ++d) ga += w2[d][h] * g[d];
      const double gz = ga * (1.0 - a[h] * a[h]);
      gb1[h] += gz;
      for (int k = 0; k < D; ++k) {
        gw1[h][k] += gz * x0[b][k];
        gx0[b][k] += w1[h][k] * gz;
      }
      gw1[h][D] += gz * 0.0;
    }
  }
  diffeoflow::h5::Reader r(result);
  diffeoflow::h5::Shape shape;
  EXPECT_NEAR(r.ReadDoubles("loss")[0], loss, 1e-13);
  auto expect = [&](const std::string& name, const double* ref, diffeoflow::h5::Shape want) {
    const std::vector<double> got = r.ReadDoubles(name, &shape);
    EXPECT_EQ(shape, want) << name;
    ASSERT_EQ(got.size(), static_cast<std::size_t>(std::accumulate(
                              want.begin(), want.end(), std::uint64_t{1}, std::multiplies<>())));
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-13) << name << i;
  };
  expect("x1", &x1[0][0], {B, D});
  expect("grad/x0", &gx0[0][0], {B, D});
  expect("grad/l1/weight", &gw1[0][0], {H, D + 1});
  expect("grad/l1/bias", gb1, {H});
  expect("grad/l2/weight", &gw2[0][0], {D, H});
  expect("grad/l2/bias", gb2, {D});
}

TEST_F(BenchCli, BadArgumentsExitNonZeroNamingTheFlag) {
  struct Case {
    std::string args, flag;
  };
  const std::string weights = (dir_ / "w.h5").string();
  {
    diffeoflow::h5::Writer w(weights);
    const double zeros[16] = {};
    w.WriteDoubles("l1/weight", zeros, {3, 3});  // H = 3, D = 2: (3, 3) is right
    w.WriteDoubles("l1/bias", zeros, {3});
    w.WriteDoubles("l2/weight", zeros, {3, 2});  // wrong: (D, H) = (2, 3)
    w.WriteDoubles("l2/bias", zeros, {2});
    w.WriteDoubles("x0", zeros, {4, 2});
    w.Commit();
  }
  const Case cases[] = {
      {"ode --solver leapfrog", "--solver"},
      {"ode --gradient magic", "--gradient"},
      {"ode --dim 0", "--dim"},
      {"ode --rtol -1 --solver dopri5", "rtol"},
      {"ode --weights " + (dir_ / "missing.h5").string(), "missing.h5"},
      {"ode --dim 2 --hidden 3 --batch 4 --weights " + weights, "l2/weight"},
      {"", "subcommand"},
  };
  for (const Case& c : cases) {
    const CliRun run = Run(c.args);
    EXPECT_NE(run.status, 0) << c.args;
    EXPECT_NE(run.err.find(c.flag), std::string::npos) << c.args << " -> " << run.err;
  }
}

}  // namespace
