// `diffeoflow inspect` against CLI.md: the files and JSON keys for a model and for a registration,
// the volume element on disk equal to the library's, and clear errors without output on bad input.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flows/classifier.h"
#include "flows/geometry.h"
#include "flows/model_io.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;

using diffeoflow::testing::CliRun;

struct Npy {
  std::vector<long> shape;
  std::vector<double> data;
};

// A float64 C-order .npy (the only kind inspect writes).
Npy ReadNpy(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Npy npy;
  EXPECT_GE(bytes.size(), 10u);
  if (bytes.size() < 10) return npy;
  EXPECT_EQ(bytes.substr(0, 6), "\x93NUMPY");
  const std::size_t header_length =
      static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  const std::string header = bytes.substr(10, header_length);
  EXPECT_EQ((10 + header_length) % 64, 0u);
  EXPECT_NE(header.find("'descr': '<f8'"), std::string::npos) << header;
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
  const std::size_t open = header.find("'shape': (") + 10, close = header.find(')', open);
  std::string dims = header.substr(open, close - open);
  long count = 1;
  for (std::size_t start = 0; start < dims.size();) {
    const std::size_t comma = dims.find(',', start);
    const std::string item = dims.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.find_first_of("0123456789") != std::string::npos) {
      npy.shape.push_back(std::stol(item));
      count *= npy.shape.back();
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  const std::size_t offset = 10 + header_length;
  EXPECT_EQ(bytes.size() - offset, static_cast<std::size_t>(count) * sizeof(double));
  npy.data.resize(static_cast<std::size_t>(count));
  if (bytes.size() - offset == npy.data.size() * sizeof(double)) {
    std::memcpy(npy.data.data(), bytes.data() + offset, bytes.size() - offset);
  }
  return npy;
}

nlohmann::json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

class InspectCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::path(::testing::TempDir()) / ("diffeoflow_inspect_cli_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    const CliRun train = RunCli("train --dataset circles --samples 200 --epochs 3 --channels 4 "
                                "--hidden 8 --steps 4 --quiet --out " + (root_ / "model").string());
    ASSERT_EQ(train.status, 0) << train.output();
    const CliRun shapes = RunCli("shapes --out " + (root_ / "pair").string() + " --size 32 --quiet");
    ASSERT_EQ(shapes.status, 0) << shapes.output();
    const CliRun reg = RunCli("register --fixed " + (root_ / "pair" / "fixed.png").string() +
                              " --moving " + (root_ / "pair" / "moving.png").string() + " --out " +
                              (root_ / "register").string() +
                              " --levels 1 --iterations 10 --steps 4 --quiet");
    ASSERT_EQ(reg.status, 0) << reg.output();
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static CliRun RunCli(const std::string& arguments) {
    return diffeoflow::testing::RunDiffeoflow(arguments, root_);
  }
  static std::string Model() { return (root_ / "model" / "model.h5").string(); }
  static inline fs::path root_;
};

TEST_F(InspectCliTest, ModelWritesTheFilesAndTheLibrarysVolumeElement) {
  const fs::path out = root_ / "inspect_model";
  const int n = 16;
  const CliRun run = RunCli("inspect --model " + Model() + " --out " + out.string() +
                            " --resolution " + std::to_string(n) + " --quiet");
  ASSERT_EQ(run.status, 0) << run.output();
  for (const char* file : {"volume_element.npy", "probabilities.npy", "geometry.json",
                           "volume_element.png"}) {
    EXPECT_TRUE(fs::exists(out / file)) << file;
    EXPECT_GT(fs::file_size(out / file), 0u) << file;
  }
  const nlohmann::json j = ReadJson(out / "geometry.json");
  for (const char* key : {"grid_min", "grid_max", "resolution", "volume_element_near_boundary",
                          "volume_element_far", "volume_element_ratio", "kinetic_energy",
                          "fisher_rao_norm", "fisher_trace"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["resolution"], n);
  EXPECT_GT(j["kinetic_energy"].get<double>(), 0.0);
  EXPECT_GT(j["fisher_trace"].get<double>(), 0.0);

  const Npy volume = ReadNpy(out / "volume_element.npy");
  ASSERT_EQ(volume.shape, (std::vector<long>{n, n}));
  const Npy probabilities = ReadNpy(out / "probabilities.npy");
  ASSERT_EQ(probabilities.shape, (std::vector<long>{n, n, 2}));
  for (std::size_t k = 0; k < probabilities.data.size(); k += 2) {
    EXPECT_NEAR(probabilities.data[k] + probabilities.data[k + 1], 1.0, 1e-12);
  }

  // Grid point (i, j) = grid_min + (i, j)(grid_max − grid_min)/(n − 1), stored at row j, column i.
  const diffeoflow::flows::ModelFile file = diffeoflow::flows::ReadModel(Model());
  diffeoflow::flows::Classifier model(file.spec);
  const std::vector<std::pair<int, int>> points = {{0, 0}, {3, 11}, {8, 8}, {15, 2}, {15, 15}};
  diffeoflow::Matrix x(2, static_cast<Eigen::Index>(points.size()));
  for (std::size_t p = 0; p < points.size(); ++p) {
    const auto [i, jj] = points[p];
    for (int d = 0; d < 2; ++d) {
      const double lo = j["grid_min"][d].get<double>(), hi = j["grid_max"][d].get<double>();
      x(d, static_cast<Eigen::Index>(p)) = lo + (hi - lo) * (d == 0 ? i : jj) / (n - 1);
    }
  }
  const diffeoflow::Vector expected = diffeoflow::flows::VolumeElements(model, file.theta, x);
  for (std::size_t p = 0; p < points.size(); ++p) {
    const auto [i, jj] = points[p];
    const double stored = volume.data[static_cast<std::size_t>(jj * n + i)];
    EXPECT_NEAR(stored, expected[static_cast<Eigen::Index>(p)], 1e-9 * expected[static_cast<Eigen::Index>(p)])
        << "grid point " << i << ", " << jj;
  }
}

TEST_F(InspectCliTest, TransformWritesJacobianStatistics) {
  const fs::path out = root_ / "inspect_transform";
  const CliRun run = RunCli("inspect --transform " + (root_ / "register").string() + " --out " +
                            out.string() + " --quiet");
  ASSERT_EQ(run.status, 0) << run.output();
  EXPECT_TRUE(fs::exists(out / "grid.png"));
  const nlohmann::json j = ReadJson(out / "geometry.json");
  for (const char* key : {"jacobian_min", "jacobian_max", "jacobian_mean", "folded_fraction",
                          "kinetic_energy"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  const nlohmann::json metrics = ReadJson(root_ / "register" / "metrics.json");
  // The register run computed det Dφ from the positions, inspect from the float32 displacement.
  EXPECT_NEAR(j["jacobian_min"].get<double>(), metrics["min_jacobian"].get<double>(), 1e-5);
  EXPECT_NEAR(j["jacobian_max"].get<double>(), metrics["max_jacobian"].get<double>(), 1e-5);
  EXPECT_LE(j["jacobian_min"].get<double>(), j["jacobian_mean"].get<double>());
  EXPECT_LE(j["jacobian_mean"].get<double>(), j["jacobian_max"].get<double>());
  EXPECT_EQ(j["folded_fraction"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["kinetic_energy"].get<double>(), metrics["kinetic_energy"].get<double>());
}

TEST_F(InspectCliTest, BadInputNamesTheFlagAndWritesNothing) {
  const fs::path not_model = root_ / "not_a_model.h5";
  { std::ofstream(not_model) << "not hdf5"; }
  const fs::path three_d = root_ / "three_d.h5";
  {
    diffeoflow::flows::ModelSpec spec;
    spec.kind = diffeoflow::flows::ModelKind::kResNet;
    spec.input_shape = {3};
    spec.width = 4;
    spec.hidden = 4;
    spec.depth = 2;
    const diffeoflow::flows::Classifier model(spec);
    diffeoflow::flows::WriteModel(three_d.string(), model, model.Initialize(1));
  }
  const fs::path empty_dir = root_ / "empty_register";
  fs::create_directories(empty_dir);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--model " + (root_ / "missing.h5").string(), "missing.h5"},
      {"--model " + not_model.string(), "not_a_model.h5"},
      {"--model " + Model() + " --resolution 2", "--resolution"},
      {"--model " + three_d.string(), "2-D input"},
      {"--transform " + empty_dir.string(), "displacement.nii.gz"},
      {"--transform " + (root_ / "nowhere").string(), "--transform"},
      {"--model " + Model() + " --transform " + (root_ / "register").string(), "exactly one"},
  };
  int k = 0;
  for (const auto& [arguments, named] : cases) {
    const fs::path out = root_ / ("bad_" + std::to_string(k++));
    const CliRun run = RunCli("inspect " + arguments + " --out " + out.string());
    EXPECT_EQ(run.status, 2) << arguments << "\n" << run.output();
    EXPECT_NE(run.err.find(named), std::string::npos) << arguments << "\n" << run.err;
    EXPECT_FALSE(fs::exists(out)) << arguments;
  }
}

}  // namespace
