// Training: a short run on spirals reaches a stated accuracy; checkpoints resume; model.h5
// round-trips; bad files are InputErrors naming the file.
#include "flows/train.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>

#include "flows/model_io.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"
#include "tests/flows/test_util.h"

namespace diffeoflow::flows {
namespace {

namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("diffeoflow_train_" + name + "_" +
                                                     std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

ModelSpec SpiralSpec() {
  ModelSpec spec;
  spec.kind = ModelKind::kOdeNet;
  spec.width = 16;
  spec.hidden = 32;
  spec.solver.method = Method::kRk4;
  spec.solver.steps = 6;
  return spec;
}

void SpiralData(Dataset* train, Dataset* test, int samples = 1000) {
  GeneratorOptions g;
  g.samples = samples;
  g.noise = 0.02;
  SplitTrainTest(TwoSpirals(g), 0.2, 2, train, test);
}

// Two spirals of 1.5 turns are far from linearly separable (a linear read-out alone stays near
// 65%); the ODE-Net with `diffeoflow train`'s defaults (1600 training points, RK4 with 8 steps,
// Adam 0.03, cosine schedule, 100 epochs) separates them. A few seconds in Release.
TEST(Train, OdeNetLearnsTwoSpirals) {
  Dataset train, test;
  SpiralData(&train, &test, 2000);
  ModelSpec spec = SpiralSpec();
  spec.solver.steps = 8;
  Classifier model(spec);
  Vector theta = model.Initialize(1);
  const double before = Accuracy(model, theta, test).second;
  TrainOptions o;
  o.epochs = 100;
  o.learning_rate = 0.03;
  int reports = 0;
  o.progress = [&](const EpochReport& r) {
    ++reports;
    EXPECT_EQ(r.epoch, reports);
    EXPECT_GT(r.nfe_forward, 0.0);
  };
  const TrainSummary s = Train(model, theta, train, test, o);
  EXPECT_EQ(reports, 100);
  EXPECT_EQ(s.epochs, 100);
  EXPECT_LT(before, 0.75);
  EXPECT_GE(s.test_accuracy, 0.97) << s.BriefReport();
  EXPECT_EQ(s.nfe_forward, 32.0);  // RK4, 8 steps
  EXPECT_EQ(s.parameters, model.param_dim());
}

TEST(Train, DiscreteDepthModelsAndOptimizersReduceTheLoss) {
  Dataset train, test;
  SpiralData(&train, &test, 400);
  for (ModelKind kind : {ModelKind::kResNet, ModelKind::kC2, ModelKind::kMlp, ModelKind::kAnode}) {
    for (Optimizer optimizer : {Optimizer::kAdam, Optimizer::kGradientDescent, Optimizer::kLbfgs}) {
      ModelSpec spec = SpiralSpec();
      spec.kind = kind;
      spec.depth = 4;
      spec.augment = 2;
      Classifier model(spec);
      Vector theta = model.Initialize(2);
      const double before = Accuracy(model, theta, train).first;
      TrainOptions o;
      o.optimizer = optimizer;
      o.epochs = 8;
      o.learning_rate = optimizer == Optimizer::kAdam ? 0.01 : 0.05;
      o.weight_decay = 1e-5;
      const TrainSummary s = Train(model, theta, train, test, o);
      EXPECT_LT(Accuracy(model, theta, train).first, before)
          << ModelKindName(kind) << " " << OptimizerName(optimizer);
      EXPECT_FALSE(s.history.empty());
    }
  }
}

TEST(Train, TimeBudgetStopsTraining) {
  Dataset train, test;
  SpiralData(&train, &test);
  Classifier model(SpiralSpec());
  Vector theta = model.Initialize(1);
  TrainOptions o;
  o.epochs = 100000;
  o.time_budget_seconds = 0.3;
  const TrainSummary s = Train(model, theta, train, test, o);
  EXPECT_EQ(s.termination_type, Termination::kTimeLimit) << s.FullReport();
  EXPECT_EQ(s.termination, "time budget");  // the text of metrics.json
  EXPECT_LT(s.epochs, 100000);
}

// A convolutional field evaluates at most a training batch at a time (its activations are tens
// of kB a sample in every layer: at 1024 the Fashion-MNIST ODE-Net peaked at 1.48 GB); an MLP
// keeps the larger evaluation batch. Per-sample layers make the accuracy independent of the
// batch, and Accuracy's limit reads the first samples in place, as Subset would copy them.
TEST(Train, ConvolutionalModelsEvaluateInTrainingBatchesWithTheSameAccuracy) {
  const Classifier spirals(SpiralSpec());
  Classifier conv(testing::ConvSpec(8, 8, 3, 4, 2, Precision::kDouble));
  TrainOptions o;
  o.batch = 32;
  o.eval_batch = 1024;
  EXPECT_EQ(o.EvaluationBatch(spirals), 1024);
  EXPECT_EQ(o.EvaluationBatch(conv), 32);
  o.eval_batch = 16;
  EXPECT_EQ(o.EvaluationBatch(conv), 16);

  std::mt19937 rng(3);
  Dataset data;
  data.classes = 3;
  data.sample_shape = {1, 8, 8};
  const Index n = 100;
  const Vector features = testing::RandomVector(64 * n, rng);
  data.features = Eigen::Map<const Matrix>(features.data(), 64, n);
  for (Index i = 0; i < n; ++i) data.labels.push_back(static_cast<int>(rng() % 3));
  const Vector theta = conv.Initialize(2);
  const auto [loss_large, accuracy_large] = Accuracy(conv, theta, data, 1024);
  const auto [loss_small, accuracy_small] = Accuracy(conv, theta, data, 32);
  EXPECT_NEAR(loss_small, loss_large, 1e-12 * loss_large);
  EXPECT_EQ(accuracy_small, accuracy_large);

  std::vector<Index> first(60);
  std::iota(first.begin(), first.end(), 0);
  const auto [loss_subset, accuracy_subset] = Accuracy(conv, theta, Subset(data, first), 32);
  const auto [loss_limit, accuracy_limit] =
      Accuracy(conv, theta, data, 32, Serial(), static_cast<Index>(first.size()));
  EXPECT_DOUBLE_EQ(loss_limit, loss_subset);
  EXPECT_DOUBLE_EQ(accuracy_limit, accuracy_subset);
  EXPECT_NE(loss_limit, loss_large);  // the limit took effect
}

// 8 × 8 one-channel images, three classes; `symmetric` makes every row a palindrome (each image
// equals its mirror) while the rows still differ from each other (it is not up-down symmetric).
Dataset SmallImages(bool symmetric, Index n) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> pixel(0.0, 1.0);
  Dataset data;
  data.name = symmetric ? "palindromes" : "random";
  data.classes = 3;
  data.sample_shape = {1, 8, 8};
  data.features.resize(64, n);
  for (Index i = 0; i < n; ++i) {
    for (Index r = 0; r < 8; ++r) {
      for (Index c = 0; c < 8; ++c) {
        const double v = pixel(rng);
        data.features(r * 8 + c, i) = v;
        if (symmetric && c >= 4) data.features(r * 8 + c, i) = data.features(r * 8 + 7 - c, i);
      }
    }
    data.labels.push_back(static_cast<int>(rng() % 3));
  }
  return data;
}

// The order in which Train visits n samples in its first epoch (epoch e shuffles with seed + e).
std::vector<Index> FirstEpochOrder(unsigned seed, Index n) {
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 shuffle(seed);
  std::shuffle(order.begin(), order.end(), shuffle);
  return order;
}

// Two spiral data sets and a model for them, for the refusals of image-only options.
struct SpiralCase {
  Dataset train, test;
  Classifier model{SpiralSpec()};
  Vector theta = model.Initialize(1);
  SpiralCase() { SpiralData(&train, &test, 100); }
};

TEST(Train, HorizontalFlipMirrorsHalfOfTheTrainingImagesLeftToRight) {
  // The draw: about half of the samples of an epoch, another half in the next epoch and for
  // another seed, and a pure function of its arguments (so workers and resumed runs agree).
  int mirrored = 0, same_as_next_epoch = 0, same_as_other_seed = 0;
  for (Index position = 0; position < 10000; ++position) {
    const bool m = MirroredInEpoch(1, 3, position);
    mirrored += m ? 1 : 0;
    same_as_next_epoch += m == MirroredInEpoch(1, 4, position) ? 1 : 0;
    same_as_other_seed += m == MirroredInEpoch(2, 3, position) ? 1 : 0;
    ASSERT_EQ(m, MirroredInEpoch(1, 3, position));
  }
  EXPECT_NEAR(mirrored, 5000, 200);
  EXPECT_NEAR(same_as_next_epoch, 5000, 200);
  EXPECT_NEAR(same_as_other_seed, 5000, 200);

  // Training: on images that equal their mirrors the flip changes no bit of θ; on others it
  // changes θ (the flip happened), and the same seed gives the same θ again.
  Classifier model(testing::ConvSpec(8, 8, 3, 4, 2, Precision::kDouble));
  TrainOptions o;
  o.epochs = 2;
  o.batch = 16;
  const auto trained = [&](const Dataset& data, bool flip) {
    TrainOptions with = o;
    with.horizontal_flip = flip;
    Vector theta = model.Initialize(3);
    Train(model, theta, data, Dataset{}, with);
    return theta;
  };
  const Dataset palindromes = SmallImages(true, 48), random = SmallImages(false, 48);
  const Vector plain = trained(palindromes, false);
  EXPECT_EQ(trained(palindromes, true), plain);
  const Vector flipped = trained(random, true);
  EXPECT_NE(flipped, trained(random, false));
  EXPECT_EQ(trained(random, true), flipped);
  // Mirroring by hand the samples the draw picks (epoch 0 and 1 reshuffle: check the first
  // epoch only) gives the same θ as the flip: it is left-right, of exactly those samples.
  TrainOptions one = o;
  one.epochs = 1;
  const std::vector<Index> order = FirstEpochOrder(one.seed, 48);
  Dataset by_hand = random;
  for (Index position = 0; position < 48; ++position) {
    if (!MirroredInEpoch(one.seed, 0, position)) continue;
    const Index i = order[static_cast<std::size_t>(position)];
    for (Index r = 0; r < 8; ++r) {
      for (Index c = 0; c < 8; ++c) {
        by_hand.features(r * 8 + c, i) = random.features(r * 8 + 7 - c, i);
      }
    }
  }
  Vector theta_hand = model.Initialize(3), theta_flip = model.Initialize(3);
  Train(model, theta_hand, by_hand, Dataset{}, one);
  TrainOptions one_flip = one;
  one_flip.horizontal_flip = true;
  Train(model, theta_flip, random, Dataset{}, one_flip);
  EXPECT_EQ(theta_flip, theta_hand);

  // What it cannot run is refused, naming the flag.
  SpiralCase spirals;
  TrainOptions bad = o;
  bad.horizontal_flip = true;
  try {
    Train(spirals.model, spirals.theta, spirals.train, spirals.test, bad);
    FAIL() << "flip on 2-D points was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--flip"), std::string::npos) << e.what();
  }
  bad.optimizer = Optimizer::kLbfgs;
  Vector conv_theta = model.Initialize(3);
  EXPECT_THROW(Train(model, conv_theta, random, Dataset{}, bad), InputError);
}

TEST(Train, ShiftMovesEachTrainingImageByItsOwnDrawFillingWithZero) {
  // The draw: every (dy, dx) of {−2, …, 2}² about equally often, anew each epoch, independent
  // of the mirroring, and a pure function of its arguments.
  const int shift = 2;
  std::map<std::pair<int, int>, int> counts;
  int same_as_next_epoch = 0, mirrored_and_moved_right = 0;
  const Index draws = 25000;
  for (Index position = 0; position < draws; ++position) {
    const auto d = ShiftInEpoch(7, 1, position, shift);
    ASSERT_EQ(d, ShiftInEpoch(7, 1, position, shift));
    ASSERT_LE(std::abs(d.first), shift);
    ASSERT_LE(std::abs(d.second), shift);
    ++counts[d];
    same_as_next_epoch += d == ShiftInEpoch(7, 2, position, shift) ? 1 : 0;
    mirrored_and_moved_right += MirroredInEpoch(7, 1, position) && d.second > 0 ? 1 : 0;
  }
  EXPECT_EQ(counts.size(), 25u);
  for (const auto& [d, count] : counts) EXPECT_NEAR(count, draws / 25, 150) << d.first << d.second;
  EXPECT_NEAR(same_as_next_epoch, draws / 25, 150);
  EXPECT_NEAR(mirrored_and_moved_right, draws / 2 * 2 / 5, 250);
  EXPECT_EQ(ShiftInEpoch(7, 1, 3, 0), std::make_pair(0, 0));

  // The copy: out(c, r, q) = in(c, r − dy, q − dx), 0 where that is outside, for every shift of
  // a 2-channel 3 × 4 image (pixels numbered 1, 2, …).
  std::vector<double> in(24), out(24);
  std::iota(in.begin(), in.end(), 1.0);
  for (int dy = -3; dy <= 3; ++dy) {
    for (int dx = -4; dx <= 4; ++dx) {
      CopyAugmented(in.data(), 2, 3, 4, false, dy, dx, out.data());
      for (Index c = 0; c < 2; ++c) {
        for (Index r = 0; r < 3; ++r) {
          for (Index q = 0; q < 4; ++q) {
            const Index r0 = r - dy, q0 = q - dx;
            const double expected =
                r0 >= 0 && r0 < 3 && q0 >= 0 && q0 < 4 ? in[static_cast<std::size_t>(
                                                             c * 12 + r0 * 4 + q0)]
                                                       : 0.0;
            ASSERT_EQ(out[static_cast<std::size_t>(c * 12 + r * 4 + q)], expected)
                << dy << " " << dx << " " << c << " " << r << " " << q;
          }
        }
      }
    }
  }

  // Training: moving by hand the samples of one epoch by the draw (after mirroring those the
  // mirror draw picks) gives the same θ, bit for bit, as --shift with --flip.
  Classifier model(testing::ConvSpec(8, 8, 3, 4, 2, Precision::kDouble));
  TrainOptions one;
  one.epochs = 1;
  one.batch = 16;
  const Dataset random = SmallImages(false, 48);
  const std::vector<Index> order = FirstEpochOrder(one.seed, 48);
  Dataset by_hand = random;
  for (Index position = 0; position < 48; ++position) {
    const Index i = order[static_cast<std::size_t>(position)];
    const bool mirror = MirroredInEpoch(one.seed, 0, position);
    const auto [dy, dx] = ShiftInEpoch(one.seed, 0, position, shift);
    for (Index r = 0; r < 8; ++r) {
      for (Index q = 0; q < 8; ++q) {
        const Index r0 = r - dy, q0 = q - dx;
        const bool inside = r0 >= 0 && r0 < 8 && q0 >= 0 && q0 < 8;
        by_hand.features(r * 8 + q, i) =
            inside ? random.features(r0 * 8 + (mirror ? 7 - q0 : q0), i) : 0.0;
      }
    }
  }
  Vector theta_hand = model.Initialize(3), theta_shift = model.Initialize(3);
  Train(model, theta_hand, by_hand, Dataset{}, one);
  TrainOptions augmented = one;
  augmented.shift = shift;
  augmented.horizontal_flip = true;
  Train(model, theta_shift, random, Dataset{}, augmented);
  EXPECT_EQ(theta_shift, theta_hand);
  Vector theta_plain = model.Initialize(3);
  Train(model, theta_plain, random, Dataset{}, one);
  EXPECT_NE(theta_plain, theta_shift);

  // What it cannot run is refused, naming the flag: 2-D points, a shift that leaves no pixel of
  // an 8 × 8 image in place, a negative shift.
  SpiralCase spirals;
  const auto refused = [&](Classifier& m, Vector& th, const Dataset& data, int value) {
    TrainOptions bad = one;
    bad.shift = value;
    try {
      Train(m, th, data, Dataset{}, bad);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string on_points = refused(spirals.model, spirals.theta, spirals.train, 1);
  EXPECT_NE(on_points.find("--shift needs image samples"), std::string::npos) << on_points;
  Vector conv_theta = model.Initialize(3);
  const std::string too_far = refused(model, conv_theta, random, 4);
  EXPECT_NE(too_far.find("--shift 4"), std::string::npos) << too_far;
  EXPECT_NE(too_far.find("at most 3"), std::string::npos) << too_far;
  EXPECT_EQ(refused(model, conv_theta, random, 3), "accepted");
  EXPECT_NE(refused(model, conv_theta, random, -1).find("--shift must be"), std::string::npos);
}

TEST(Train, LabelSmoothingTrainsTheSmoothedLossAndReportsThePlainOne) {
  // The gradient Train follows is that of the smoothed loss (whose finite-difference test is
  // Classifier.LabelSmoothedGradientMatchesFiniteDifferences): one step of plain gradient descent
  // with it equals θ − rate · ∇L_ε, and differs from the plain loss's gradient.
  Classifier model(testing::ConvSpec(8, 8, 3, 4, 2, Precision::kDouble));
  const Dataset random = SmallImages(false, 16);
  const double epsilon = 0.2;
  const Vector theta0 = model.Initialize(4);
  Vector analytic;
  model.Evaluate(theta0, random.features, random.labels.data(), &analytic, epsilon);
  Vector plain_gradient;
  model.Evaluate(theta0, random.features, random.labels.data(), &plain_gradient);
  EXPECT_GT((plain_gradient - analytic).norm(), 1e-3 * analytic.norm());

  TrainOptions o;
  o.optimizer = Optimizer::kGradientDescent;
  o.momentum = 0.0;
  o.schedule = LearningRateSchedule::kConstant;
  o.learning_rate = 0.1;
  o.epochs = 1;
  o.batch = 16;
  o.label_smoothing = epsilon;
  Vector theta = theta0;
  const TrainSummary s = Train(model, theta, random, random, o);
  EXPECT_LT((theta - (theta0 - o.learning_rate * analytic)).norm(), 1e-12 * theta.norm());
  // The reported test loss is the plain cross-entropy of the final θ, not the smoothed one.
  const double plain = model.Evaluate(theta, random.features, random.labels.data(), nullptr).loss;
  EXPECT_NEAR(s.test_loss, plain, 1e-12);
  EXPECT_GT(std::abs(
                model.Evaluate(theta, random.features, random.labels.data(), nullptr, epsilon)
                    .loss -
                plain),
            1e-6);

  for (const double bad : {-0.1, 1.0}) {
    o.label_smoothing = bad;
    try {
      Train(model, theta, random, random, o);
      FAIL() << "label smoothing " << bad << " was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("--label-smoothing"), std::string::npos) << e.what();
    }
  }
}

TEST(Train, ResumesFromACheckpointWhereItStopped) {
  const fs::path dir = TempDir("resume");
  const std::string checkpoint = (dir / "checkpoint.h5").string();
  Dataset train, test;
  SpiralData(&train, &test, 300);
  TrainOptions o;
  o.epochs = 6;
  // Uninterrupted: 6 epochs.
  Classifier model(SpiralSpec());
  Vector straight = model.Initialize(4);
  Train(model, straight, train, test, o);
  // Interrupted after 3 epochs (a budget of 3 epochs), then resumed to 6.
  Vector resumed = model.Initialize(4);
  TrainOptions first = o;
  first.checkpoint = checkpoint;
  int seen = 0;
  first.progress = [&](const EpochReport&) {
    if (++seen == 3) throw std::runtime_error("interrupted");
  };
  EXPECT_THROW(Train(model, resumed, train, test, first), std::runtime_error);
  Vector fresh = model.Initialize(4);  // the in-memory θ is lost; the checkpoint has epoch 2
  TrainOptions second = o;
  second.checkpoint = checkpoint;
  second.resume = true;
  const TrainSummary s = Train(model, fresh, train, test, second);
  EXPECT_EQ(s.start_epoch, 2);
  EXPECT_EQ(s.epochs, 6);
  EXPECT_LT((fresh - straight).norm(), 1e-10 * straight.norm());
  // A checkpoint of another architecture is refused, naming the file.
  ModelSpec other = SpiralSpec();
  other.hidden = 7;
  Classifier other_model(other);
  Vector other_theta = other_model.Initialize(1);
  try {
    Train(other_model, other_theta, train, test, second);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(checkpoint), std::string::npos);
  }
  fs::remove_all(dir);
}

TEST(ModelFile, RoundTripsArchitectureAndWeights) {
  const fs::path dir = TempDir("model");
  for (ModelKind kind : {ModelKind::kOdeNet, ModelKind::kAnode, ModelKind::kResNet,
                         ModelKind::kC2, ModelKind::kMlp}) {
    ModelSpec spec = SpiralSpec();
    spec.kind = kind;
    spec.augment = kind == ModelKind::kAnode ? 3 : 0;
    spec.depth = 5;
    spec.activation = Activation::kSoftplus;
    spec.solver.method = Method::kDopri5;
    spec.solver.rtol = 1e-4;
    spec.gradient.mode = GradientMode::kCheckpointed;
    spec.precision = Precision::kDouble;  // not the default
    spec.kinetic_energy = spec.continuous() ? 0.125 : 0.0;
    spec.jacobian_norm = spec.continuous() ? 0.0625 : 0.0;
    Classifier model(spec);
    const Vector theta = model.Initialize(9);
    const std::string path = (dir / "model.h5").string();
    WriteModel(path, model, theta, {{"dataset", "spirals"}});
    const ModelFile file = ReadModel(path);
    EXPECT_EQ(file.theta, theta);
    EXPECT_EQ(file.spec.kind, kind);
    EXPECT_EQ(file.spec.width, spec.width);
    EXPECT_EQ(file.spec.hidden, spec.hidden);
    EXPECT_EQ(file.spec.augment, spec.augment);
    EXPECT_EQ(file.spec.depth, spec.depth);
    EXPECT_EQ(file.spec.activation, spec.activation);
    EXPECT_EQ(file.spec.precision, spec.precision);
    EXPECT_EQ(file.spec.solver.method, spec.solver.method);
    EXPECT_EQ(file.spec.solver.rtol, spec.solver.rtol);
    EXPECT_EQ(file.spec.gradient.mode, spec.gradient.mode);
    EXPECT_EQ(file.spec.kinetic_energy, spec.kinetic_energy);
    EXPECT_EQ(file.spec.jacobian_norm, spec.jacobian_norm);
    EXPECT_EQ(file.spec.input_shape, spec.input_shape);
    EXPECT_EQ(file.attributes.at("dataset"), "spirals");
    // The readable views hold the same numbers as θ (read-out bias = the last entries).
    h5::Reader reader(path);
    const auto blocks = model.Blocks();
    const auto& last = blocks.back();
    EXPECT_EQ(reader.ReadDoubles("weights/" + last.name),
              std::vector<double>(theta.data() + last.offset,
                                  theta.data() + last.offset + last.rows * last.cols));
  }
  fs::remove_all(dir);
}

// The convolutional ODE-Net's read-out is part of its architecture: a flattened one round-trips,
// and a file written before the attribute existed (a pooled model, the only kind there was)
// still loads as one.
TEST(ModelFile, RoundTripsTheReadOutAndReadsOldFilesAsPooled) {
  const fs::path dir = TempDir("model_readout");
  for (const Readout readout : {Readout::kFlatten, Readout::kPool}) {
    ModelSpec spec = testing::ConvSpec(8, 8, 3, 4, 2, Precision::kSingle);
    spec.readout = readout;
    const Classifier model(spec);
    const Vector theta = model.Initialize(4);
    const std::string path = (dir / (ReadoutName(readout) + ".h5")).string();
    WriteModel(path, model, theta);
    const ModelFile file = ReadModel(path);
    EXPECT_EQ(file.spec.readout, readout);
    EXPECT_EQ(file.theta, theta);
  }
  const std::string old = (dir / "pool.h5").string();
  {
    const hid_t file = H5Fopen(old.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    EXPECT_GE(H5Adelete(file, "readout"), 0);
    H5Fclose(file);
  }
  EXPECT_EQ(ReadModel(old).spec.readout, Readout::kPool);
  // A read-out this version does not know is refused, naming the file and the attribute.
  {
    const hid_t file = H5Fopen(old.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const std::string value = "max";
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, value.size());
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t attribute = H5Acreate2(file, "readout", type, space, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(attribute, 0);
    EXPECT_GE(H5Awrite(attribute, type, value.data()), 0);
    H5Aclose(attribute);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(file);
  }
  try {
    ReadModel(old);
    FAIL() << "a read-out 'max' was accepted";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(old), std::string::npos) << message;
    EXPECT_NE(message.find("'max'"), std::string::npos) << message;
  }
  fs::remove_all(dir);
}

TEST(ModelFile, BadFilesAreInputErrorsNamingTheFile) {
  const fs::path dir = TempDir("model_bad");
  const std::string text = (dir / "text.h5").string();
  std::ofstream(text) << "not hdf5";
  for (const std::string& path : {text, (dir / "missing.h5").string()}) {
    try {
      ReadModel(path);
      FAIL();
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  // A model file whose /theta is then replaced by one an entry short of what its architecture
  // needs: ReadModel refuses it, naming the file and both lengths.
  const ModelSpec spec = SpiralSpec();
  const Classifier model(spec);
  const Index needed = model.param_dim();
  const std::string path = (dir / "short.h5").string();
  WriteModel(path, model, model.Initialize(1));
  {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    ASSERT_GE(H5Ldelete(file, "theta", H5P_DEFAULT), 0);
    const std::vector<double> theta(static_cast<std::size_t>(needed - 1), 0.1);
    const hsize_t size = theta.size();
    const hid_t space = H5Screate_simple(1, &size, nullptr);
    const hid_t data = H5Dcreate2(file, "theta", H5T_IEEE_F64LE, space, H5P_DEFAULT,
                                  H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(data, 0);
    EXPECT_GE(H5Dwrite(data, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, theta.data()), 0);
    H5Dclose(data);
    H5Sclose(space);
    H5Fclose(file);
  }
  try {
    ReadModel(path);
    FAIL() << "a θ of " << needed - 1 << " entries was accepted";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(needed - 1)), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(needed)), std::string::npos) << message;
  }
  // WriteModel refuses a θ that does not fit the model before it writes anything.
  const std::string refused = (dir / "refused.h5").string();
  EXPECT_THROW(WriteModel(refused, model, Vector::Zero(needed - 1)), InputError);
  EXPECT_FALSE(fs::exists(refused));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace diffeoflow::flows
