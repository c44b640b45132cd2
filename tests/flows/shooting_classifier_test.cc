// The shooting classifier: its loss gradient equals finite differences, training separates two
// spirals with few parameters, and the model file round-trips.
#include "flows/shooting_classifier.h"

#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "solvers/errors.h"
#include "solvers/gradient_check.h"

namespace diffeoflow::flows {
namespace {

ShootingClassifier SmallModel(int dim, unsigned seed) {
  ShootingClassifier m;
  m.dim = dim;
  m.classes = 3;
  m.kernel_width = 0.6;
  m.steps = 4;
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 0.5);
  const auto random = [&](Eigen::Index r, Eigen::Index c) {
    return Matrix(Matrix::NullaryExpr(r, c, [&] { return normal(rng); }));
  };
  m.control_points = random(dim, 5);
  m.momenta = random(dim, 5);
  m.readout = random(3, dim);
  m.bias = random(3, 1).col(0);
  return m;
}

Dataset SmallData(unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 0.7);
  Dataset d;
  d.classes = 3;
  d.sample_shape = {2};
  d.features = Matrix::NullaryExpr(2, 12, [&] { return normal(rng); });
  for (int i = 0; i < 12; ++i) d.labels.push_back(i % 3);
  return d;
}

TEST(ShootingClassifier, LossGradientMatchesFiniteDifferences) {
  for (int dim : {2, 3}) {
    const ShootingClassifier model = SmallModel(dim, 10 + dim);
    const Dataset data = SmallData(3);
    const double kappa = 0.05;
    const ShootingLossResult r = ShootingLoss(model, data, kappa, true);
    ASSERT_EQ(r.gradient.size(), model.num_parameters());
    const auto loss = [&](const Vector& theta) {
      ShootingClassifier m = model;
      SetShootingParameters(theta, &m);
      return ShootingLoss(m, data, kappa, false).loss;
    };
    const Vector numeric = NumericalGradient(loss, ShootingParameters(model), 1e-6);
    EXPECT_LT((r.gradient - numeric).norm() / numeric.norm(), 1e-7) << "dim " << dim;
    EXPECT_NEAR(r.loss, loss(ShootingParameters(model)), 1e-12);
    EXPECT_NEAR(r.kinetic, model.KineticEnergy(), 1e-12);
    EXPECT_GT(r.nfe_backward, 0);
  }
}

TEST(ShootingClassifier, SeparatesTwoSpiralsWithFewParameters) {
  GeneratorOptions g;
  g.samples = 600;
  g.noise = 0.02;
  g.seed = 4;
  Dataset all, train, test;
  all = TwoSpirals(g);
  SplitTrainTest(all, 0.25, 5, &train, &test);
  ShootingClassifierOptions options;
  options.grid = 7;
  options.iterations = 80;
  ShootingClassifier model;
  const ShootingClassifierSummary s = TrainShootingClassifier(train, test, options, &model);
  EXPECT_GE(s.test_accuracy, 0.97) << s.BriefReport();
  EXPECT_GE(s.train_accuracy, 0.97) << s.BriefReport();
  EXPECT_EQ(s.parameters, 7 * 7 * 3 + 2 * 3 + 2);
  EXPECT_NEAR(s.action, 2.0 * s.kinetic_energy, 1e-12);
  EXPECT_GT(s.kinetic_energy, 0.0);
  EXPECT_GT(s.point_action, 0.0);
  EXPECT_GE(s.nfe_forward, 4.0 * options.steps);  // RK4: 4 stages a step, plus replays
  // The momenta did the separating: with the flow switched off, a linear read-out cannot.
  ShootingClassifier frozen = model;
  frozen.momenta.setZero();
  const Matrix logits = frozen.Logits(test.features);
  int correct = 0;
  for (Eigen::Index i = 0; i < test.size(); ++i) {
    Eigen::Index best;
    logits.col(i).maxCoeff(&best);
    correct += best == test.labels[i];
  }
  EXPECT_LT(static_cast<double>(correct) / test.size(), 0.8);
}

TEST(ShootingClassifier, ModelFileRoundTrips) {
  const ShootingClassifier model = SmallModel(3, 21);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("diffeoflow_shooting_model_" + std::to_string(::getpid()) + ".h5"))
                               .string();
  WriteShootingClassifier(path, model);
  const ShootingClassifier back = ReadShootingClassifier(path);
  std::filesystem::remove(path);
  EXPECT_EQ(back.control_points, model.control_points);
  EXPECT_EQ(back.momenta, model.momenta);
  EXPECT_EQ(back.readout, model.readout);
  EXPECT_EQ(back.bias, model.bias);
  const Dataset data = SmallData(8);
  EXPECT_EQ(back.Logits(data.features), model.Logits(data.features));
}

TEST(ShootingClassifier, BadOptionsAreInputErrors) {
  const Dataset data = SmallData(1);
  ShootingClassifier model;
  ShootingClassifierOptions options;
  options.augment = 2;
  EXPECT_THROW(TrainShootingClassifier(data, data, options, &model), InputError);
  options = {};
  options.grid = 1;
  EXPECT_THROW(TrainShootingClassifier(data, data, options, &model), InputError);
  options = {};
  options.solver = Method::kDopri5;
  EXPECT_THROW(TrainShootingClassifier(data, data, options, &model), InputError);
  EXPECT_THROW(ReadShootingClassifier("/nonexistent/model.h5"), InputError);
}

}  // namespace
}  // namespace diffeoflow::flows
