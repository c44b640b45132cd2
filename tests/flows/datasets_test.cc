// Data: seeded generators, the train/test split, IDX files (plain and gzip) and Fashion-MNIST.
#include "flows/datasets.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "solvers/errors.h"

namespace diffeoflow::flows {
namespace {

namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("diffeoflow_flows_" + name + "_" +
                                                     std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

TEST(Generators, AreSeededAndReproducible) {
  for (auto generate : {&TwoSpirals, &ConcentricCircles, &TwoMoons}) {
    GeneratorOptions o;
    o.samples = 101;
    o.noise = 0.05;
    o.seed = 3;
    const Dataset a = generate(o), b = generate(o);
    EXPECT_EQ(a.features, b.features) << a.name;
    EXPECT_EQ(a.labels, b.labels);
    o.seed = 4;
    const Dataset c = generate(o);
    EXPECT_NE(a.features, c.features) << a.name;
    EXPECT_EQ(a.size(), 101);
    EXPECT_EQ(a.classes, 2);
    EXPECT_EQ(a.sample_shape, std::vector<std::int64_t>{2});
    const auto zeros = std::count(a.labels.begin(), a.labels.end(), 0);
    EXPECT_EQ(zeros, 51) << a.name;  // balanced
    EXPECT_LT(a.features.cwiseAbs().maxCoeff(), 2.0);
  }
}

TEST(Generators, CirclesAreNestedAtTheStatedRadii) {
  GeneratorOptions o;
  o.samples = 500;
  const Dataset d = ConcentricCircles(o);
  for (Eigen::Index i = 0; i < d.size(); ++i) {
    const double r = d.features.col(i).norm();
    if (d.labels[static_cast<std::size_t>(i)] == 0) {
      EXPECT_LE(r, 0.5 + 1e-12);
    } else {
      EXPECT_GE(r, 1.0 - 1e-12);
      EXPECT_LE(r, 1.5 + 1e-12);
    }
  }
}

TEST(Generators, SpiralPointsLieOnTheirArm) {
  GeneratorOptions o;
  o.samples = 400;
  const Dataset d = TwoSpirals(o);
  // Without noise, r = 0.15 + 0.85 s and φ = 2π·turns·s + cπ: the angle is fixed by the radius.
  const double pi = 3.14159265358979323846;
  for (Eigen::Index i = 0; i < d.size(); ++i) {
    const double r = d.features.col(i).norm();
    ASSERT_GE(r, 0.15 - 1e-12);
    ASSERT_LE(r, 1.0 + 1e-12);
    const double s = (r - 0.15) / 0.85;
    const double phi = 2.0 * pi * o.turns * s + d.labels[static_cast<std::size_t>(i)] * pi;
    EXPECT_NEAR(d.features(0, i), r * std::cos(phi), 1e-9);
    EXPECT_NEAR(d.features(1, i), r * std::sin(phi), 1e-9);
  }
  EXPECT_THROW(TwoSpirals({1, 0.0, 1.5, 1}), InputError);
  EXPECT_THROW(TwoSpirals({10, -1.0, 1.5, 1}), InputError);
}

TEST(Split, IsADisjointSeededPartition) {
  GeneratorOptions o;
  o.samples = 200;
  const Dataset all = TwoMoons(o);
  Dataset train, test, train2, test2;
  SplitTrainTest(all, 0.25, 7, &train, &test);
  SplitTrainTest(all, 0.25, 7, &train2, &test2);
  EXPECT_EQ(test.size(), 50);
  EXPECT_EQ(train.size(), 150);
  EXPECT_EQ(test.features, test2.features);
  std::set<std::pair<double, double>> seen;
  for (const Dataset* d : {&train, &test}) {
    for (Eigen::Index i = 0; i < d->size(); ++i) seen.insert({d->features(0, i), d->features(1, i)});
  }
  EXPECT_EQ(seen.size(), 200u);
  EXPECT_THROW(SplitTrainTest(all, 1.5, 7, &train, &test), InputError);
}

TEST(Idx, RoundTripsPlainAndGzip) {
  const fs::path dir = TempDir("idx");
  IdxArray a;
  a.dims = {3, 2, 4};
  for (int i = 0; i < 24; ++i) a.data.push_back(static_cast<std::uint8_t>(i * 11));
  for (const char* name : {"a-idx3-ubyte", "a-idx3-ubyte.gz"}) {
    const std::string path = (dir / name).string();
    WriteIdx(path, a);
    const IdxArray b = ReadIdx(path);
    EXPECT_EQ(b.dims, a.dims) << name;
    EXPECT_EQ(b.data, a.data) << name;
  }
  // The .gz file really is compressed (gzip magic).
  std::ifstream gz(dir / "a-idx3-ubyte.gz", std::ios::binary);
  unsigned char head[2] = {};
  gz.read(reinterpret_cast<char*>(head), 2);
  EXPECT_EQ(head[0], 0x1f);
  EXPECT_EQ(head[1], 0x8b);
  fs::remove_all(dir);
}

void ExpectInputErrorNaming(const std::string& path, const std::string& fragment) {
  try {
    ReadIdx(path);
    FAIL() << "no exception for " << path;
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << what;
  }
}

TEST(Idx, BadFilesAreInputErrorsNamingTheFile) {
  const fs::path dir = TempDir("idx_bad");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return (dir / name).string();
  };
  ExpectInputErrorNaming((dir / "missing").string(), "no such");
  ExpectInputErrorNaming(write("empty", ""), "truncated");
  ExpectInputErrorNaming(write("text", "hello world"), "not an IDX");
  ExpectInputErrorNaming(write("float", std::string("\0\0\x0d\x01\0\0\0\x01", 8) + "abcd"),
                         "0x0d");
  ExpectInputErrorNaming(write("short", std::string("\0\0\x08\x01\0\0\0\x05", 8) + "abc"),
                         "truncated");
  ExpectInputErrorNaming(write("long", std::string("\0\0\x08\x01\0\0\0\x02", 8) + "abc"),
                         "longer");
  ExpectInputErrorNaming(write("rank", std::string("\0\0\x08\x09", 4)), "rank");
  fs::remove_all(dir);
}

TEST(FashionMnist, LoadsIdxFilesFromADirectory) {
  const fs::path dir = TempDir("fmnist");
  IdxArray images{{3, 2, 2}, {0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8}};
  IdxArray labels{{3}, {9, 0, 4}};
  WriteIdx((dir / "t10k-images-idx3-ubyte.gz").string(), images);
  WriteIdx((dir / "t10k-labels-idx1-ubyte").string(), labels);
  const Dataset d = LoadFashionMnist(dir.string(), /*train=*/false);
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.classes, 10);
  EXPECT_EQ(d.sample_shape, (std::vector<std::int64_t>{1, 2, 2}));
  EXPECT_DOUBLE_EQ(d.features(1, 0), 1.0);
  EXPECT_DOUBLE_EQ(d.features(2, 0), 0.2);
  EXPECT_EQ(d.labels, (std::vector<int>{9, 0, 4}));
  EXPECT_EQ(LoadFashionMnist(dir.string(), false, 2).size(), 2);
  // The training files are missing: the error names the directory and the file.
  try {
    LoadFashionMnist(dir.string(), true);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("train-images-idx3-ubyte"), std::string::npos);
  }
  WriteIdx((dir / "t10k-labels-idx1-ubyte").string(), IdxArray{{3}, {9, 10, 4}});
  EXPECT_THROW(LoadFashionMnist(dir.string(), false), InputError);
  fs::remove_all(dir);
}

TEST(FashionMnist, ReadsTheDebianPackageWhenInstalled) {
  if (!fs::exists(DefaultFashionMnistDir())) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const Dataset d = LoadFashionMnist(DefaultFashionMnistDir(), false, 100);
  EXPECT_EQ(d.size(), 100);
  EXPECT_EQ(d.feature_count(), 784);
  EXPECT_GE(d.features.minCoeff(), 0.0);
  EXPECT_LE(d.features.maxCoeff(), 1.0);
}

}  // namespace
}  // namespace diffeoflow::flows
