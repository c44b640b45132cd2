// Classifiers on own .npy data: `train --train-data`, `predict` for every model kind (the
// probabilities equal the training run's own evaluation), `inspect` seeing the training split of
// a model trained with non-default settings, and bad inputs that exit 2 with one line naming the
// flag and the file, writing nothing.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flows/model_io.h"
#include "solvers/hdf5.h"
#include "solvers/npy.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;
using diffeoflow::ElementType;
using diffeoflow::testing::CliRun;

nlohmann::json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

class OwnDataCli : public diffeoflow::testing::CliTest {
 protected:
  OwnDataCli() : CliTest("", "diffeoflow_own_data_cli_") {}

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  void Write(const std::string& name, const std::vector<std::uint64_t>& shape,
             const Eigen::VectorXd& values, ElementType type) {
    diffeoflow::WriteNpy(Path(name), shape, values, type);
  }

  // n points in `dim` dimensions from `classes` Gaussian clusters on the axes (class k centred at
  // 2 e_{k mod dim}, sign alternating), with labels: x is written as float64 C order (n, dim).
  void Clusters(const std::string& stem, int n, int dim, int classes, unsigned seed,
                double offset = 5.0) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> noise(0.0, 0.4);
    Eigen::VectorXd x(static_cast<Eigen::Index>(n) * dim), y(n);
    for (int i = 0; i < n; ++i) {
      const int k = i % classes;
      for (int d = 0; d < dim; ++d) {
        const double centre = d == k % dim ? (k / dim % 2 == 0 ? 2.0 : -2.0) : 0.0;
        x[static_cast<Eigen::Index>(i) * dim + d] = offset + 3.0 * (centre + noise(rng));
      }
      y[i] = k;
    }
    Write(stem + "_x.npy", {std::uint64_t(n), std::uint64_t(dim)}, x, ElementType::kFloat32);
    Write(stem + "_y.npy", {std::uint64_t(n)}, y, ElementType::kInt16);
  }

  std::string OwnArgs(const std::string& train, const std::string& test) const {
    return " --train-data " + Path(train + "_x.npy") + " --train-labels " + Path(train + "_y.npy") +
           " --test-data " + Path(test + "_x.npy") + " --test-labels " + Path(test + "_y.npy");
  }

  // Predicts the test files with `model` and checks P.npy against the training run's
  // test_probabilities.npy and P.json's accuracy against metrics.json.
  void ExpectPredictionMatchesTraining(const fs::path& run, const std::string& test) {
    const std::string p = Path(run.filename().string() + "_P.npy");
    const CliRun predict = Run("predict --model " + (run / "model.h5").string() + " --data " +
                               Path(test + "_x.npy") + " --labels " + Path(test + "_y.npy") +
                               " --out " + p);
    ASSERT_EQ(predict.status, 0) << predict.err;
    const diffeoflow::NpyArray got = diffeoflow::ReadNpy(p);
    const diffeoflow::NpyArray want = diffeoflow::ReadNpy((run / "test_probabilities.npy").string());
    EXPECT_EQ(got.type, ElementType::kFloat32);
    ASSERT_EQ(got.shape, want.shape);
    EXPECT_LT((got.data - want.data).cwiseAbs().maxCoeff(), 1e-6) << run;
    const auto metrics = ReadJson(run / "metrics.json");
    const auto json = ReadJson(fs::path(p).replace_extension(".json"));
    EXPECT_DOUBLE_EQ(json["accuracy"].get<double>(), metrics["test_accuracy"].get<double>()) << run;
    EXPECT_NE(predict.out.find("accuracy"), std::string::npos);
    EXPECT_NE(predict.out.find("confusion matrix"), std::string::npos);
    long total = 0;
    for (const auto& row : json["confusion_matrix"]) {
      for (const auto& v : row) total += v.get<long>();
    }
    EXPECT_EQ(total, static_cast<long>(got.shape[0]));
  }

  // A bad input: exit 2, one line on stderr containing `fragment`, and `not_written` absent.
  void ExpectRejected(const std::string& args, const std::string& fragment,
                      const fs::path& not_written) {
    const CliRun run = Run(args);
    EXPECT_EQ(run.status, 2) << args << " -> " << run.err;
    EXPECT_NE(run.err.find(fragment), std::string::npos) << args << " -> " << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_FALSE(fs::exists(not_written)) << args;
  }
};

TEST_F(OwnDataCli, FeatureVectorsTrainPredictAndRecordTheirFiles) {
  Clusters("train", 240, 3, 3, 1);
  Clusters("test", 90, 3, 3, 2);
  const fs::path run = dir_ / "run";
  const CliRun train = Run("train" + OwnArgs("train", "test") + " --out " + run.string() +
                           " --epochs 8 --steps 3 --quiet");
  ASSERT_EQ(train.status, 0) << train.err;
  const auto metrics = ReadJson(run / "metrics.json");
  EXPECT_GT(metrics["test_accuracy"].get<double>(), 0.9);
  EXPECT_EQ(metrics["train_samples"].get<int>(), 240);
  EXPECT_EQ(metrics["test_samples"].get<int>(), 90);
  diffeoflow::h5::Reader model((run / "model.h5").string());
  EXPECT_EQ(model.StringAttribute("data", "source"), "files");
  EXPECT_EQ(model.StringAttribute("data/train_data", "path"), Path("train_x.npy"));
  EXPECT_EQ(model.StringAttribute("data/train_labels", "dtype"), "int16");
  EXPECT_EQ(model.DoublesAttribute("data/test_data", "shape"), (std::vector<double>{90, 3}));
  EXPECT_EQ(model.StringAttribute("data", "standardization"), "features");
  // The standardisation is the training file's per-feature mean and standard deviation.
  const std::vector<double> offset = model.ReadDoubles("data/offset");
  const std::vector<double> scale = model.ReadDoubles("data/scale");
  ASSERT_EQ(offset.size(), 3u);
  const diffeoflow::NpyArray x = diffeoflow::ReadNpy(Path("train_x.npy"));
  const Eigen::MatrixXd samples = Eigen::Map<const Eigen::MatrixXd>(x.data.data(), 3, 240);
  for (int d = 0; d < 3; ++d) {
    const double mean = samples.row(d).mean();
    const double sd = std::sqrt((samples.row(d).array() - mean).square().mean());
    EXPECT_NEAR(offset[static_cast<std::size_t>(d)], mean, 1e-9);
    EXPECT_NEAR(scale[static_cast<std::size_t>(d)], sd, 1e-9);
  }
  ExpectPredictionMatchesTraining(run, "test");
}

TEST_F(OwnDataCli, TestFractionSplitsOwnDataLikeTheBuiltInSets) {
  Clusters("all", 200, 3, 3, 4);
  const fs::path run = dir_ / "run";
  const CliRun train = Run("train --train-data " + Path("all_x.npy") + " --train-labels " +
                           Path("all_y.npy") + " --test-fraction 0.25 --out " + run.string() +
                           " --epochs 2 --steps 2 --quiet");
  ASSERT_EQ(train.status, 0) << train.err;
  EXPECT_EQ(ReadJson(run / "metrics.json")["test_samples"].get<int>(), 50);
  diffeoflow::h5::Reader model((run / "model.h5").string());
  EXPECT_DOUBLE_EQ(model.DoubleAttribute("data", "test_fraction"), 0.25);
}

TEST_F(OwnDataCli, ImagesTrainTheConvolutionalOdeNetAndPredict) {
  // 8×8 uint8 images: a bright 3×3 square in the top-left (class 0) or bottom-right (class 1).
  const auto images = [&](const std::string& stem, int n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> background(0, 60), shift(0, 1);
    Eigen::VectorXd x(n * 64), y(n);
    for (int i = 0; i < n; ++i) {
      const int k = i % 2, s = shift(rng);
      for (int p = 0; p < 64; ++p) x[i * 64 + p] = background(rng);
      for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 3; ++c) {
          const int row = k == 0 ? r + s : 7 - r - s, col = k == 0 ? c + s : 7 - c - s;
          x[i * 64 + row * 8 + col] = 250;
        }
      }
      y[i] = k;
    }
    Write(stem + "_x.npy", {std::uint64_t(n), 1, 8, 8}, x, ElementType::kUint8);
    Write(stem + "_y.npy", {std::uint64_t(n)}, y, ElementType::kUint8);
  };
  images("train", 64, 1);
  images("test", 32, 2);
  const fs::path run = dir_ / "images";
  const CliRun train = Run("train" + OwnArgs("train", "test") + " --out " + run.string() +
                           " --epochs 2 --steps 2 --channels 4 --hidden 4 --batch 16 --quiet" +
                           " --flip on --shift 3 --label-smoothing 0.05");
  ASSERT_EQ(train.status, 0) << train.err;
  const auto metrics = ReadJson(run / "metrics.json");
  EXPECT_EQ(metrics["horizontal_flip"].get<bool>(), true);
  EXPECT_EQ(metrics["shift"].get<int>(), 3);
  EXPECT_EQ(metrics["label_smoothing"].get<double>(), 0.05);
  // Without the flags the image odenet smooths by 0.1 and reads out the whole grid, a model on
  // the flattened image neither smooths nor has a read-out to choose.
  EXPECT_EQ(metrics["readout"].get<std::string>(), "flatten");
  for (const auto& [model, smoothing] : {std::pair<std::string, double>{"odenet", 0.1},
                                         std::pair<std::string, double>{"mlp", 0.0}}) {
    const fs::path defaults = dir_ / ("defaults_" + model);
    ASSERT_EQ(Run("train" + OwnArgs("train", "test") + " --out " + defaults.string() +
                  " --model " + model + " --epochs 1 --steps 2 --channels 4 --hidden 4 --quiet")
                  .status,
              0);
    const auto recorded = ReadJson(defaults / "metrics.json");
    EXPECT_EQ(recorded["label_smoothing"].get<double>(), smoothing);
    EXPECT_EQ(recorded.contains("readout"), model == "odenet");
  }
  // Chen et al.'s pooled read-out on request: recorded, written into the model, and predict
  // rebuilds it from the file.
  const fs::path pooled = dir_ / "pooled";
  const CliRun pool = Run("train" + OwnArgs("train", "test") + " --out " + pooled.string() +
                          " --epochs 1 --steps 2 --channels 4 --batch 16 --readout pool --quiet");
  ASSERT_EQ(pool.status, 0) << pool.err;
  EXPECT_EQ(ReadJson(pooled / "metrics.json")["readout"].get<std::string>(), "pool");
  EXPECT_EQ(diffeoflow::h5::Reader((pooled / "model.h5").string()).StringAttribute("/", "readout"),
            "pool");
  ExpectPredictionMatchesTraining(pooled, "test");
  // Its checkpoint resumes with --readout pool; without it (the default is now flatten) the
  // refusal says how, and leaves the run as it was.
  const std::string again = "train" + OwnArgs("train", "test") + " --out " + pooled.string() +
                            " --epochs 2 --steps 2 --channels 4 --batch 16 --resume --quiet";
  const CliRun refused = Run(again);
  EXPECT_EQ(refused.status, 2);
  EXPECT_NE(refused.err.find("--readout pool"), std::string::npos) << refused.err;
  EXPECT_EQ(ReadJson(pooled / "metrics.json")["epochs"].get<int>(), 1);
  const CliRun resumed = Run(again + " --readout pool");
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_EQ(ReadJson(pooled / "metrics.json")["resumed_from_epoch"].get<int>(), 1);
  // A shift that would move the 8 × 8 images out of their frame is refused, naming the bound.
  const CliRun too_far = Run("train" + OwnArgs("train", "test") + " --out " +
                             (dir_ / "too_far").string() + " --epochs 1 --shift 4 --quiet");
  EXPECT_EQ(too_far.status, 2);
  EXPECT_NE(too_far.err.find("--shift 4"), std::string::npos) << too_far.err;
  EXPECT_NE(too_far.err.find("at most 3"), std::string::npos) << too_far.err;
  diffeoflow::h5::Reader model((run / "model.h5").string());
  EXPECT_EQ(model.DoublesAttribute("/", "input_shape"), (std::vector<double>{1, 8, 8}));
  EXPECT_EQ(model.StringAttribute("data", "standardization"), "uint8");
  EXPECT_FALSE(fs::exists(run / "summary.png"));  // not points in the plane
  ExpectPredictionMatchesTraining(run, "test");

  // The same images as N × H × W (one channel implied) are accepted; another size is not.
  const diffeoflow::NpyArray x = diffeoflow::ReadNpy(Path("test_x.npy"));
  Write("flat_x.npy", {32, 8, 8}, x.data, ElementType::kFloat64);
  EXPECT_EQ(Run("predict --model " + (run / "model.h5").string() + " --data " + Path("flat_x.npy") +
                " --out " + Path("flat_P.npy")).status, 0);
  Write("big_x.npy", {2, 1, 16, 16}, Eigen::VectorXd::Zero(512), ElementType::kFloat32);
  ExpectRejected("predict --model " + (run / "model.h5").string() + " --data " + Path("big_x.npy") +
                     " --out " + Path("big_P.npy"),
                 "images are 16x16, the model was trained on 8x8", dir_ / "big_P.npy");
}

TEST_F(OwnDataCli, PredictWorksForEveryModelKind) {
  Clusters("train", 160, 2, 2, 5, 0.0);
  Clusters("test", 60, 2, 2, 6, 0.0);
  for (const char* kind : {"odenet", "anode", "resnet", "c2", "mlp", "shooting"}) {
    const fs::path run = dir_ / kind;
    const std::string budget = std::string(kind) == "shooting" ? " --epochs 5" : " --epochs 2 --steps 2";
    const CliRun train = Run("train" + OwnArgs("train", "test") + " --model " + kind + " --out " +
                             run.string() + budget + " --quiet");
    ASSERT_EQ(train.status, 0) << kind << ": " << train.err;
    ExpectPredictionMatchesTraining(run, "test");
    // Points in the plane: every model kind, the shooting classifier included, draws its paths.
    for (const char* file : {"trajectories.h5", "summary.png"}) {
      EXPECT_TRUE(fs::exists(run / file)) << kind << " " << file;
    }
  }
  diffeoflow::h5::Reader paths((dir_ / "shooting" / "trajectories.h5").string());
  EXPECT_EQ(paths.DatasetShape("states")[1], 60u);
  EXPECT_EQ(paths.StringAttribute("options", "model"), "shooting");
}

TEST_F(OwnDataCli, BadInputsExitTwoWithOneLineAndWriteNothing) {
  Clusters("good", 60, 3, 3, 7);
  const fs::path out = dir_ / "never";
  const std::string x = Path("good_x.npy"), y = Path("good_y.npy");
  const auto train = [&](const std::string& data, const std::string& labels) {
    return "train --train-data " + data + " --train-labels " + labels + " --epochs 1 --out " +
           out.string();
  };
  // Lengths differ.
  Write("short_y.npy", {59}, Eigen::VectorXd::Zero(59), ElementType::kInt64);
  ExpectRejected(train(x, Path("short_y.npy")), "59 labels", out);
  // Labels out of range, and labels that are not integers.
  Eigen::VectorXd negative = Eigen::VectorXd::Zero(60);
  negative[7] = -1;
  Write("negative_y.npy", {60}, negative, ElementType::kInt32);
  ExpectRejected(train(x, Path("negative_y.npy")), "out of range", out);
  Write("float_y.npy", {60}, Eigen::VectorXd::Zero(60), ElementType::kFloat32);
  ExpectRejected(train(x, Path("float_y.npy")), "expected integer class labels", out);
  // NaN or Inf features.
  Eigen::VectorXd bad = diffeoflow::ReadNpy(x).data;
  bad[10] = std::nan("");
  Write("nan_x.npy", {60, 3}, bad, ElementType::kFloat64);
  ExpectRejected(train(Path("nan_x.npy"), y), "NaN or infinite", out);
  bad[10] = INFINITY;
  Write("inf_x.npy", {60, 3}, bad, ElementType::kFloat32);
  ExpectRejected(train(Path("inf_x.npy"), y), "NaN or infinite", out);
  // An empty array (numpy writes shape (0, 3) for np.zeros((0, 3))).
  {
    std::string npy = "\x93NUMPY\x01";
    npy += '\0';
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }";
    header += '\n';
    npy += static_cast<char>(header.size());
    npy += '\0';
    npy += header;
    std::ofstream(Path("empty_x.npy"), std::ios::binary) << npy;
  }
  ExpectRejected(train(Path("empty_x.npy"), y), "empty array", out);
  // Wrong dimensionality for the model, labels beyond its classes, a model file of another kind.
  const fs::path run = dir_ / "run";
  ASSERT_EQ(Run("train --train-data " + x + " --train-labels " + y + " --epochs 1 --steps 2 " +
                "--quiet --out " + run.string()).status, 0);
  const std::string model = (run / "model.h5").string(), p = Path("P.npy");
  Write("four_x.npy", {5, 4}, Eigen::VectorXd::Zero(20), ElementType::kFloat64);
  ExpectRejected("predict --model " + model + " --data " + Path("four_x.npy") + " --out " + p,
                 "4 features a sample; the model takes 3 features", p);
  Write("ten_y.npy", {60}, Eigen::VectorXd::Constant(60, 9), ElementType::kUint8);
  ExpectRejected("predict --model " + model + " --data " + x + " --labels " + Path("ten_y.npy") +
                     " --out " + p,
                 "the model has 3 classes", p);
  ExpectRejected("predict --model " + (run / "checkpoint.h5").string() + " --data " + x + " --out " + p,
                 "not a classifier written by diffeoflow train", p);
  ExpectRejected("predict --model " + model + " --data " + x + " --labels " + Path("short_y.npy") +
                     " --out " + p,
                 "59 labels", p);
}

TEST_F(OwnDataCli, InspectSeesTheSplitOfNonDefaultSamplesAndSeed) {
  const fs::path run = dir_ / "moons";
  ASSERT_EQ(Run("train --dataset moons --samples 300 --seed 3 --noise 0.1 --epochs 3 --steps 2 "
                "--channels 4 --hidden 8 --quiet --out " + run.string()).status, 0);
  const auto metrics = ReadJson(run / "metrics.json");
  const fs::path inspected = dir_ / "inspected";
  // No --seed: the record, not inspect's defaults, says which split the model saw.
  const CliRun inspect = Run("inspect --model " + (run / "model.h5").string() +
                             " --resolution 16 --quiet --out " + inspected.string());
  ASSERT_EQ(inspect.status, 0) << inspect.err;
  const auto geometry = ReadJson(inspected / "geometry.json");
  EXPECT_DOUBLE_EQ(geometry["accuracy"].get<double>(), metrics["test_accuracy"].get<double>());
  EXPECT_NE(geometry["fisher_data"].get<std::string>().find("300 samples"), std::string::npos)
      << geometry["fisher_data"];
  EXPECT_EQ(geometry["fisher_samples"].get<int>(), 60);

  // --data / --labels: any data of the right shape.
  Clusters("plane", 40, 2, 2, 8, 0.0);
  const CliRun own = Run("inspect --model " + (run / "model.h5").string() + " --data " +
                         Path("plane_x.npy") + " --labels " + Path("plane_y.npy") +
                         " --resolution 16 --quiet --out " + (dir_ / "own").string());
  ASSERT_EQ(own.status, 0) << own.err;
  EXPECT_EQ(ReadJson(dir_ / "own" / "geometry.json")["fisher_samples"].get<int>(), 40);
}

TEST_F(OwnDataCli, InspectReadsTheRecordedFilesAndNoticesAChangedOne) {
  Clusters("plane", 100, 2, 2, 10, 0.0);
  const fs::path run = dir_ / "run";
  ASSERT_EQ(Run("train --train-data " + Path("plane_x.npy") + " --train-labels " +
                Path("plane_y.npy") + " --epochs 2 --steps 2 --quiet --out " + run.string()).status, 0);
  const CliRun inspect = Run("inspect --model " + (run / "model.h5").string() +
                             " --resolution 16 --quiet --out " + Path("i"));
  ASSERT_EQ(inspect.status, 0) << inspect.err;
  const auto geometry = ReadJson(dir_ / "i" / "geometry.json");
  EXPECT_EQ(geometry["fisher_samples"].get<int>(), 20);  // the 20 % split of the recorded file
  EXPECT_DOUBLE_EQ(geometry["accuracy"].get<double>(),
                   ReadJson(run / "metrics.json")["test_accuracy"].get<double>());
  Clusters("plane", 100, 2, 2, 11, 0.0);  // other points under the same name
  ExpectRejected("inspect --model " + (run / "model.h5").string() + " --resolution 16 --out " +
                     Path("j"),
                 "has changed since training", dir_ / "j");
}

TEST_F(OwnDataCli, ModelsWithoutADataRecordStillLoad) {
  // A model file as written before the record: no /data group.
  const fs::path run = dir_ / "old";
  ASSERT_EQ(Run("train --dataset circles --samples 200 --epochs 1 --steps 2 --channels 4 "
                "--hidden 8 --quiet --out " + run.string()).status, 0);
  const diffeoflow::flows::ModelFile file = diffeoflow::flows::ReadModel((run / "model.h5").string());
  EXPECT_EQ(file.data.source, "generator");
  diffeoflow::flows::Classifier model(file.spec);
  const std::string old = Path("old_model.h5");
  diffeoflow::flows::WriteModel(old, model, file.theta, file.attributes);
  EXPECT_TRUE(diffeoflow::flows::ReadModel(old).data.source.empty());
  const CliRun inspect = Run("inspect --model " + old + " --resolution 16 --out " + Path("i"));
  ASSERT_EQ(inspect.status, 0) << inspect.err;
  EXPECT_NE(inspect.err.find("no data record"), std::string::npos) << inspect.err;
  EXPECT_NE(ReadJson(dir_ / "i" / "geometry.json")["fisher_data"].get<std::string>().find("2000 samples"),
            std::string::npos);
  Clusters("plane", 20, 2, 2, 9, 0.0);
  const CliRun predict = Run("predict --model " + old + " --data " + Path("plane_x.npy") +
                             " --out " + Path("old_P.npy"));
  ASSERT_EQ(predict.status, 0) << predict.err;
  EXPECT_NE(predict.err.find("no data record"), std::string::npos);
}

}  // namespace
