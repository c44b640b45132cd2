// Own data (flows/own_data.h): reading .npy features and labels with their checks, the
// standardisation fitted on a training split, the data record in a model file, and rebuilding the
// split a record describes.
#include "flows/own_data.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "solvers/errors.h"
#include "solvers/npy.h"
#include "tests/scratch.h"

namespace diffeoflow::flows {
namespace {

namespace fs = std::filesystem;

class OwnDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::ScratchPath("diffeoflow_own_data_");
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(OwnDataTest, ReadsFeaturesImagesAndLabelsOfAnyDtype) {
  Eigen::VectorXd x(12);
  for (int i = 0; i < 12; ++i) x[i] = i;
  WriteNpy(Path("x.npy"), {4, 3}, x, ElementType::kFloat32);
  WriteNpy(Path("y.npy"), {4}, Eigen::Vector4d(0, 2, 1, 2), ElementType::kUint64);
  const OwnData own = ReadOwnData(Path("x.npy"), "--x", Path("y.npy"), "--y", "train");
  EXPECT_EQ(own.data.sample_shape, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(own.data.features(2, 1), 5.0);  // sample 1, feature 2: row-major element 1·3 + 2
  EXPECT_EQ(own.data.labels, (std::vector<int>{0, 2, 1, 2}));
  EXPECT_EQ(own.data.classes, 3);
  ASSERT_EQ(own.files.size(), 2u);
  EXPECT_EQ(own.files[0].role, "train_data");
  EXPECT_EQ(own.files[0].dtype, "float32");
  EXPECT_EQ(own.files[1].shape, (std::vector<std::uint64_t>{4}));

  WriteNpy(Path("img.npy"), {2, 2, 3}, x, ElementType::kInt8);
  const OwnData images = ReadOwnData(Path("img.npy"), "--x", "", "", "test");
  EXPECT_EQ(images.data.sample_shape, (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(images.data.features(4, 1), 10.0);
  EXPECT_TRUE(images.data.labels.empty());
}

TEST_F(OwnDataTest, ReadsFloat16Features) {
  // np.array([[1, -2.5], [65504, 2**-24]], np.float16), little endian.
  std::string npy = "\x93NUMPY\x01";
  npy += '\0';
  std::string header = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }\n";
  npy += static_cast<char>(header.size());
  npy += '\0';
  npy += header;
  for (const std::uint16_t h : {0x3c00, 0xc100, 0x7bff, 0x0001}) {
    npy += static_cast<char>(h & 0xff);
    npy += static_cast<char>(h >> 8);
  }
  std::ofstream(Path("half.npy"), std::ios::binary) << npy;
  const OwnData own = ReadOwnData(Path("half.npy"), "--x", "", "", "train");
  EXPECT_EQ(own.source_type, ElementType::kFloat32);
  EXPECT_EQ(own.data.features(0, 0), 1.0);
  EXPECT_EQ(own.data.features(1, 0), -2.5);
  EXPECT_EQ(own.data.features(0, 1), 65504.0);
  EXPECT_EQ(own.data.features(1, 1), std::ldexp(1.0, -24));
}

TEST_F(OwnDataTest, RejectsBadLabelsNamingTheFlagAndFile) {
  WriteNpy(Path("x.npy"), {3, 2}, Eigen::VectorXd::Zero(6), ElementType::kFloat64);
  const auto message = [&](const Eigen::VectorXd& y, ElementType type) {
    WriteNpy(Path("y.npy"), {static_cast<std::uint64_t>(y.size())}, y, type);
    try {
      ReadOwnData(Path("x.npy"), "--x", Path("y.npy"), "--y", "train");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string short_labels = message(Eigen::Vector2d(0, 1), ElementType::kInt32);
  EXPECT_EQ(short_labels.rfind("--y: " + Path("y.npy") + ": has 2 labels", 0), 0u) << short_labels;
  EXPECT_NE(message(Eigen::Vector3d(0, -3, 1), ElementType::kInt32).find("out of range"), std::string::npos);
  EXPECT_NE(message(Eigen::Vector3d(0, 1, 1), ElementType::kFloat64).find("integer"), std::string::npos);
  EXPECT_EQ(message(Eigen::Vector3d(0, 1, 1), ElementType::kInt8), "accepted");
}

TEST_F(OwnDataTest, StandardisationIsFittedOnTheTrainingSplitPerChannel) {
  Dataset train;
  train.sample_shape = {2};
  train.features.resize(2, 4);
  train.features << 1, 2, 3, 4,  //
      5, 5, 5, 5;                 // a constant feature keeps scale 1
  const Standardization s = FitStandardization(train, ElementType::kFloat64);
  EXPECT_EQ(s.mode, "features");
  EXPECT_DOUBLE_EQ(s.offset[0], 2.5);
  EXPECT_DOUBLE_EQ(s.scale[0], std::sqrt(1.25));
  EXPECT_DOUBLE_EQ(s.scale[1], 1.0);
  Dataset other = train;
  s.Apply(&other);
  EXPECT_NEAR(other.features.row(0).mean(), 0.0, 1e-15);
  EXPECT_NEAR(other.features.row(0).squaredNorm() / 4, 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(other.features(1, 2), 0.0);

  Dataset images;
  images.sample_shape = {2, 1, 2};  // two channels of 1 × 2 pixels
  images.features = Matrix::Constant(4, 3, 255.0);
  const Standardization u = FitStandardization(images, ElementType::kUint8);
  EXPECT_EQ(u.mode, "uint8");
  u.Apply(&images);
  EXPECT_TRUE((images.features.array() == 1.0).all());
  EXPECT_EQ(FitStandardization(images, ElementType::kFloat32).mode, "none");
}

TEST_F(OwnDataTest, RecordRoundTripsAndRebuildsTheSplit) {
  GeneratorOptions g;
  g.samples = 120;
  g.noise = 0.1;
  g.seed = 9;
  Dataset train, test;
  SplitTrainTest(TwoMoons(g), 0.25, 10, &train, &test);
  DataRecord r;
  r.source = "generator";
  r.dataset = "moons";
  r.samples = 120;
  r.noise = 0.1;
  r.seed = 9;
  r.test_fraction = 0.25;
  r.standardization.mode = "features";
  r.standardization.offset = Eigen::Vector2d(0.5, -1.0);
  r.standardization.scale = Eigen::Vector2d(2.0, 3.0);
  r.files.push_back({"train_data", "a.npy", {3, 2}, "float32", 0xdeadbeefu});
  {
    h5::Writer out(Path("r.h5"));
    WriteDataRecord(out, r);
    out.Commit();
  }
  const DataRecord back = ReadDataRecord(h5::Reader(Path("r.h5")));
  EXPECT_EQ(back.source, "generator");
  EXPECT_EQ(back.samples, 120);
  EXPECT_EQ(back.seed, 9u);
  EXPECT_EQ(back.standardization.scale, r.standardization.scale);
  ASSERT_EQ(back.files.size(), 1u);
  EXPECT_EQ(back.files[0].crc32, 0xdeadbeefu);
  EXPECT_EQ(back.files[0].shape, r.files[0].shape);

  Dataset train2, test2;
  DataRecord plain = back;
  RebuildSplit(plain, &train2, &test2);  // generators are not standardised
  EXPECT_EQ(test2.features, test.features);
  EXPECT_EQ(train2.labels, train.labels);

  // Own files: the split and the standardisation come back; a changed file is refused.
  WriteNpy(Path("x.npy"), {120, 2}, Eigen::Map<const Eigen::VectorXd>(TwoMoons(g).features.data(), 240),
           ElementType::kFloat64);
  WriteNpy(Path("y.npy"), {120}, Eigen::VectorXd::LinSpaced(120, 0, 119).unaryExpr([](double v) { return std::fmod(v, 2.0); }),
           ElementType::kInt64);
  OwnData own = ReadOwnData(Path("x.npy"), "--train-data", Path("y.npy"), "--train-labels", "train");
  DataRecord files;
  files.source = "files";
  files.seed = 4;
  files.test_fraction = 0.5;
  files.files = own.files;
  files.standardization = r.standardization;
  Dataset t1, s1;
  SplitTrainTest(own.data, 0.5, 5, &t1, &s1);
  files.standardization.Apply(&s1);
  Dataset t2, s2;
  RebuildSplit(files, &t2, &s2);
  EXPECT_EQ(s2.features, s1.features);
  WriteNpy(Path("y.npy"), {120}, Eigen::VectorXd::Zero(120), ElementType::kInt64);
  EXPECT_THROW(RebuildSplit(files, &t2, &s2), InputError);
}

TEST_F(OwnDataTest, SampleShapesMustMatchTheModel) {
  EXPECT_NO_THROW(CheckSampleShape({3}, {3}, "--data", "x.npy"));
  EXPECT_THROW(CheckSampleShape({4}, {3}, "--data", "x.npy"), InputError);
  try {
    CheckSampleShape({1, 32, 32}, {1, 28, 28}, "--data", "x.npy");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("32x32, the model was trained on 28x28"), std::string::npos);
  }
}

}  // namespace
}  // namespace diffeoflow::flows
