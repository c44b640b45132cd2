// Whole-model gradients of every classifier against central finite differences.
#include "flows/classifier.h"

#include <random>

#include <gtest/gtest.h>

#include "solvers/errors.h"
#include "solvers/gradient_check.h"
#include "tests/flows/test_util.h"

namespace diffeoflow::flows {
namespace {

using testing::ConvSpec;
using testing::RandomVector;
using testing::RelativeMaxError;

ModelSpec SmallSpec(ModelKind kind) {
  ModelSpec spec;
  spec.kind = kind;
  spec.input_shape = {2};
  spec.classes = 3;
  spec.width = 4;
  spec.hidden = 5;
  spec.augment = 2;
  spec.depth = 3;
  spec.solver.method = Method::kRk4;
  spec.solver.steps = 4;
  spec.gradient.mode = GradientMode::kDiscrete;
  return spec;
}

void CheckModelGradient(const ModelSpec& spec, double tolerance) {
  Classifier model(spec);
  Vector theta = model.Initialize(3);
  std::mt19937 rng(8);
  const Index batch = 6;
  const Vector xv = RandomVector(2 * batch, rng);
  const Matrix x = Eigen::Map<const Matrix>(xv.data(), 2, batch);
  const int labels[] = {0, 1, 2, 2, 1, 0};
  Vector gradient;
  const BatchResult r = model.Evaluate(theta, x, labels, &gradient);
  ASSERT_EQ(gradient.size(), model.param_dim());
  EXPECT_GT(r.loss, 0.0);
  const Vector numeric = NumericalGradient(
      [&](const Vector& th) { return model.Evaluate(th, x, labels, nullptr).loss; }, theta);
  EXPECT_LT(RelativeMaxError(gradient, numeric), tolerance) << ModelKindName(spec.kind);
  // The loss without the gradient is the same number.
  EXPECT_NEAR(model.Evaluate(theta, x, labels, nullptr).loss, r.loss, 1e-14);
}

TEST(Classifier, OdeNetGradientMatchesFiniteDifferences) {
  CheckModelGradient(SmallSpec(ModelKind::kOdeNet), 1e-7);
}

TEST(Classifier, OdeNetWithoutEmbeddingGradientMatchesFiniteDifferences) {
  ModelSpec spec = SmallSpec(ModelKind::kOdeNet);
  spec.width = 0;
  CheckModelGradient(spec, 1e-7);
}

TEST(Classifier, AnodeGradientMatchesFiniteDifferences) {
  CheckModelGradient(SmallSpec(ModelKind::kAnode), 1e-7);
}

TEST(Classifier, AdaptiveBacksolveGradientIsCloseToFiniteDifferences) {
  ModelSpec spec = SmallSpec(ModelKind::kOdeNet);
  spec.solver.method = Method::kDopri5;
  spec.solver.rtol = 1e-10;
  spec.solver.atol = 1e-10;
  spec.gradient.mode = GradientMode::kBacksolve;
  CheckModelGradient(spec, 1e-5);
}

// The small odenet of the regularisers' tests in gradient mode `mode`, and the tolerance of its
// finite-difference check: RK4 for the discrete adjoint (the gradient of the discrete map), an
// accurately solved Dopri5 for the continuous modes (the gradient of the ODE).
ModelSpec RegulariserSpec(GradientMode mode, double* tolerance) {
  ModelSpec spec = SmallSpec(ModelKind::kOdeNet);
  spec.gradient.mode = mode;
  *tolerance = 1e-7;
  if (mode != GradientMode::kDiscrete) {
    spec.solver.method = Method::kDopri5;
    spec.solver.rtol = 1e-10;
    spec.solver.atol = 1e-10;
    *tolerance = 1e-5;
  }
  return spec;
}

// Three random 6 × 5 one-channel images with labels of three classes, for ConvSpec(6, 5, 3, …).
struct SmallImageBatch {
  Matrix x;
  int labels[3] = {2, 0, 1};
  SmallImageBatch() {
    std::mt19937 rng(3);
    const Vector xv = RandomVector(30 * 3, rng);
    x = Eigen::Map<const Matrix>(xv.data(), 30, 3);
  }
};

// The largest error of model's gradient at θ on (x, labels) against central differences of its
// loss, relative to the largest entry.
double GradientError(Classifier& model, const Vector& theta, const Matrix& x, const int* labels) {
  Vector gradient;
  model.Evaluate(theta, x, labels, &gradient);
  const Vector numeric = NumericalGradient(
      [&](const Vector& th) { return model.Evaluate(th, x, labels, nullptr).loss; }, theta);
  return RelativeMaxError(gradient, numeric);
}

// Six random points of the plane with labels of three classes.
struct SmallBatch {
  Matrix x;
  int labels[6] = {0, 1, 2, 2, 1, 0};
  SmallBatch() {
    std::mt19937 rng(8);
    const Vector xv = RandomVector(2 * 6, rng);
    x = Eigen::Map<const Matrix>(xv.data(), 2, 6);
  }
};

class KineticRegulariser : public ::testing::TestWithParam<GradientMode> {};

// RNODE's λ₁ ∫‖f‖² dt: the whole model's gradient with the regulariser equals central differences
// in every gradient mode (the discrete map with RK4; the accurately solved ODE with Dopri5 for the
// continuous modes), and the loss is the unregularised one plus λ₁ times the batch's mean action.
TEST_P(KineticRegulariser, GradientMatchesFiniteDifferencesInEveryMode) {
  double tolerance = 0.0;
  ModelSpec spec = RegulariserSpec(GetParam(), &tolerance);
  ModelSpec plain = spec;
  spec.kinetic_energy = 0.7;
  CheckModelGradient(spec, tolerance);
  Classifier regularised(spec), unregularised(plain);
  const Vector theta = regularised.Initialize(3);
  const SmallBatch batch;
  Vector g_with, g_without;
  const BatchResult with = regularised.Evaluate(theta, batch.x, batch.labels, &g_with);
  const BatchResult without = unregularised.Evaluate(theta, batch.x, batch.labels, &g_without);
  EXPECT_GT(with.action, 0.0);
  EXPECT_NEAR(with.loss, without.loss + 0.7 * with.action, 1e-12);
  EXPECT_GT((g_with - g_without).norm(), 1e-6 * g_without.norm());
}

INSTANTIATE_TEST_SUITE_P(Modes, KineticRegulariser,
                         ::testing::Values(GradientMode::kDiscrete, GradientMode::kBacksolve,
                                           GradientMode::kCheckpointed),
                         [](const auto& info) { return GradientModeName(info.param); });

class JacobianRegulariser : public ::testing::TestWithParam<GradientMode> {};

// RNODE's λ₂ ∫‖εᵀ∂f/∂h‖² dt, with and without the kinetic term beside it: the whole model's
// gradient equals central differences in every mode (the probe stays fixed between UseProbe
// calls), the loss is the unregularised one plus λ₂ times the batch's mean, and another probe
// gives another value.
TEST_P(JacobianRegulariser, GradientMatchesFiniteDifferencesInEveryMode) {
  for (const double kinetic : {0.0, 0.3}) {
    double tolerance = 0.0;
    ModelSpec spec = RegulariserSpec(GetParam(), &tolerance);
    spec.activation = Activation::kSoftplus;
    spec.kinetic_energy = kinetic;
    ModelSpec plain = spec;
    spec.jacobian_norm = 0.4;
    CheckModelGradient(spec, tolerance);
    Classifier regularised(spec), unregularised(plain);
    const Vector theta = regularised.Initialize(3);
    const SmallBatch batch;
    const BatchResult with = regularised.Evaluate(theta, batch.x, batch.labels, nullptr);
    const BatchResult without = unregularised.Evaluate(theta, batch.x, batch.labels, nullptr);
    EXPECT_GT(with.jacobian_norm, 0.0);
    EXPECT_NEAR(with.loss, without.loss + 0.4 * with.jacobian_norm, 1e-12);
    regularised.UseProbe(0, 1);
    EXPECT_NE(regularised.Evaluate(theta, batch.x, batch.labels, nullptr).jacobian_norm,
              with.jacobian_norm);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, JacobianRegulariser,
                         ::testing::Values(GradientMode::kDiscrete, GradientMode::kBacksolve,
                                           GradientMode::kCheckpointed),
                         [](const auto& info) { return GradientModeName(info.param); });

TEST(Classifier, ResNetGradientMatchesFiniteDifferences) {
  CheckModelGradient(SmallSpec(ModelKind::kResNet), 1e-7);
}

TEST(Classifier, C2GradientMatchesFiniteDifferences) {
  CheckModelGradient(SmallSpec(ModelKind::kC2), 1e-7);
}

// RNODE's Jacobian-norm term on the convolutional ODE-Net's field (GroupNorm's second derivative,
// ReLU, ConcatConv), in double: the whole model's gradient through the discrete adjoint of RK4
// equals central differences, with one and two threads (the regulariser's passes split the batch
// like the field). The gradient modes' plumbing is the MLP's test above; the regularised
// dynamics' vjp is checked on its own in tests/flows/jacobian_norm_test.cc.
TEST(Classifier, ConvolutionalJacobianRegulariserGradientMatchesFiniteDifferences) {
  for (const int threads : {1, 2}) {
    ModelSpec spec = ConvSpec(6, 5, 3, 4, 2, Precision::kDouble);
    ModelSpec plain = spec;
    spec.jacobian_norm = 0.5;
    Classifier model(spec, threads), unregularised(plain, threads);
    const Vector theta = model.Initialize(5);
    const SmallImageBatch batch;
    const BatchResult r = model.Evaluate(theta, batch.x, batch.labels, nullptr);
    EXPECT_GT(r.jacobian_norm, 0.0);
    EXPECT_NEAR(r.loss,
                unregularised.Evaluate(theta, batch.x, batch.labels, nullptr).loss +
                    0.5 * r.jacobian_norm,
                1e-12 * r.loss);
    EXPECT_LT(GradientError(model, theta, batch.x, batch.labels), 1e-6) << threads << " threads";
  }
}

// Label smoothing ε (TrainOptions::label_smoothing) on the convolutional ODE-Net and an MLP-field
// ODE-Net: the whole model's gradient of the smoothed loss equals central differences, and the
// smoothed loss is (1 − ε) times the plain one plus ε times the mean over classes of −log p.
TEST(Classifier, LabelSmoothedGradientMatchesFiniteDifferences) {
  const double epsilon = 0.15;
  const SmallImageBatch images;
  const SmallBatch points;
  for (const ModelSpec& spec : {ConvSpec(6, 5, 3, 4, 2, Precision::kDouble),
                                SmallSpec(ModelKind::kOdeNet)}) {
    Classifier model(spec);
    const Vector theta = model.Initialize(5);
    const bool conv = spec.convolutional();
    const Matrix& x = conv ? images.x : points.x;
    const int* labels = conv ? images.labels : points.labels;
    Vector gradient;
    const double loss = model.Evaluate(theta, x, labels, &gradient, epsilon).loss;
    const Vector numeric = NumericalGradient(
        [&](const Vector& th) { return model.Evaluate(th, x, labels, nullptr, epsilon).loss; },
        theta);
    EXPECT_LT(RelativeMaxError(gradient, numeric), 1e-6) << ModelKindName(spec.kind);
    const Matrix logits = model.Logits(theta, x);
    double uniform = 0.0;  // mean over the batch and the classes of −log softmax
    for (Index b = 0; b < logits.cols(); ++b) {
      const double log_sum = std::log(logits.col(b).array().exp().sum());
      uniform += (log_sum - logits.col(b).mean()) / static_cast<double>(logits.cols());
    }
    const double plain = model.Evaluate(theta, x, labels, nullptr).loss;
    EXPECT_NEAR(loss, (1.0 - epsilon) * plain + epsilon * uniform, 1e-12);
  }
}

TEST(Classifier, MlpGradientMatchesFiniteDifferences) {
  CheckModelGradient(SmallSpec(ModelKind::kMlp), 1e-7);
}

TEST(Classifier, ConvolutionalOdeNetGradientMatchesFiniteDifferences) {
  // In double: single precision is compared with double below.
  const ModelSpec spec = ConvSpec(6, 5, 3, 4, 2, Precision::kDouble);
  Classifier model(spec);
  EXPECT_EQ(spec.state_size(), 4 * 2 * 2);  // 6×5 → 3×3 → 2×2
  const Vector theta = model.Initialize(5);
  const SmallImageBatch batch;
  EXPECT_LT(GradientError(model, theta, batch.x, batch.labels), 1e-6);
}

// The read-out that sees the whole grid (Readout::kFlatten): its gradient against central
// differences, in double and on the single-precision (blocked) path, and the pooled read-out as its
// special case. A linear map whose weights repeat each channel's pooled weight over the grid,
// divided by the grid's size, gives the pool's logits: this pins the order of the features
// (channel-major, as the pool reads them) as well as the sizes.
TEST(Classifier, FlattenedReadOutMatchesFiniteDifferencesAndContainsThePool) {
  ModelSpec spec = ConvSpec(6, 5, 3, 4, 2, Precision::kDouble);
  Classifier pooled(spec);
  spec.readout = Readout::kFlatten;
  Classifier flat(spec);
  const Index C = 4, P = 2 * 2, K = 3;  // 6×5 → 3×3 → 2×2
  ASSERT_EQ(flat.param_dim() - pooled.param_dim(), K * C * (P - 1));
  const SmallImageBatch batch;
  const Vector theta = flat.Initialize(5);
  EXPECT_LT(GradientError(flat, theta, batch.x, batch.labels), 1e-6);

  const Vector theta_pool = pooled.Initialize(6);
  const Classifier::Block w_pool = pooled.Blocks()[pooled.Blocks().size() - 2];
  const Classifier::Block w_flat = flat.Blocks()[flat.Blocks().size() - 2];
  ASSERT_EQ(w_pool.offset, w_flat.offset);  // embedding, field and read-out GroupNorm shared
  ASSERT_EQ(w_pool.rows, K);
  ASSERT_EQ(w_pool.cols, C);
  ASSERT_EQ(w_flat.cols, C * P);
  Vector theta_flat(flat.param_dim());
  theta_flat.head(w_pool.offset) = theta_pool.head(w_pool.offset);
  for (Index k = 0; k < K; ++k) {
    for (Index c = 0; c < C; ++c) {
      for (Index p = 0; p < P; ++p) {
        theta_flat(w_flat.offset + k * C * P + c * P + p) =
            theta_pool(w_pool.offset + k * C + c) / static_cast<double>(P);
      }
    }
  }
  theta_flat.tail(K) = theta_pool.tail(K);  // the bias
  const Matrix expected = pooled.Logits(theta_pool, batch.x);
  EXPECT_LT((flat.Logits(theta_flat, batch.x) - expected).cwiseAbs().maxCoeff(),
            1e-12 * expected.cwiseAbs().maxCoeff());
  // Another weight for one pixel changes the logits: the grid is not pooled.
  theta_flat(w_flat.offset + 1) += 0.5;
  EXPECT_GT((flat.Logits(theta_flat, batch.x) - expected).cwiseAbs().maxCoeff(), 1e-3);

  // Single precision (the field as one blocked float layer where oneDNN has it) agrees with
  // double to round-off.
  spec.precision = Precision::kSingle;
  Classifier fast(spec);
  Vector g_exact, g_fast;
  const BatchResult r_exact = flat.Evaluate(theta, batch.x, batch.labels, &g_exact);
  const BatchResult r_fast = fast.Evaluate(theta, batch.x, batch.labels, &g_fast);
  EXPECT_NEAR(r_fast.loss, r_exact.loss, 1e-6 * r_exact.loss);
  EXPECT_LT((g_fast - g_exact).norm(), 1e-5 * g_exact.norm());
}

// The classifier keeps one field of each kind (gradient, evaluation) and re-makes it when the
// batch size changes (the last partial batch of an epoch, then the full batch again): a re-made
// field must give the same loss, gradient and logits bit for bit, in single precision too.
TEST(Classifier, FieldsReMadeForAnotherBatchSizeGiveTheSameResults) {
  for (const Precision precision : {Precision::kDouble, Precision::kSingle}) {
    Classifier model(ConvSpec(8, 8, 4, 16, 2, precision), 2);
    const Vector theta = model.Initialize(5);
    std::mt19937 rng(11);
    const Vector xv = RandomVector(64 * 12, rng);
    const Matrix x = Eigen::Map<const Matrix>(xv.data(), 64, 12);
    std::vector<int> labels(12);
    for (int& label : labels) label = static_cast<int>(rng() % 4);
    Vector g_first, g_partial, g_again;
    const BatchResult first = model.Evaluate(theta, x, labels.data(), &g_first);
    const Matrix logits_first = model.Logits(theta, x);
    model.Evaluate(theta, x.leftCols(7), labels.data(), &g_partial);  // replaces the field
    model.Logits(theta, x.leftCols(5));
    const BatchResult again = model.Evaluate(theta, x, labels.data(), &g_again);
    EXPECT_EQ(again.loss, first.loss) << PrecisionName(precision);
    EXPECT_EQ(again.correct, first.correct);
    EXPECT_TRUE(g_again == g_first) << PrecisionName(precision);
    EXPECT_TRUE(model.Logits(theta, x) == logits_first) << PrecisionName(precision);
  }
}

// The convolutional embedding and field split the batch over threads (the embedding from 8
// samples a shard); the gradient must not depend on it.
TEST(Classifier, ConvolutionalOdeNetGradientIsTheSameWithTwoThreads) {
  const ModelSpec spec = ConvSpec(8, 8, 4, 4, 2, Precision::kDouble);
  Classifier one(spec, 1), two(spec, 2);
  const Vector theta = one.Initialize(7);
  std::mt19937 rng(9);
  for (const Index batch : {5, 21}) {
    const Vector xv = RandomVector(64 * batch, rng);
    const Matrix x = Eigen::Map<const Matrix>(xv.data(), 64, batch);
    std::vector<int> labels(static_cast<std::size_t>(batch));
    for (int& label : labels) label = static_cast<int>(rng() % 4);
    Vector g1, g2;
    const BatchResult r1 = one.Evaluate(theta, x, labels.data(), &g1);
    const BatchResult r2 = two.Evaluate(theta, x, labels.data(), &g2);
    EXPECT_NEAR(r1.loss, r2.loss, 1e-14) << batch;
    EXPECT_LT(RelativeMaxError(g2, g1), 1e-13) << batch;
    EXPECT_LT((two.Logits(theta, x) - one.Logits(theta, x)).cwiseAbs().maxCoeff(), 1e-13);
  }
}

// Training runs the convolutions in single precision: the loss and gradient must be those of the
// double-precision model to single-precision round-off, on a grid big enough for several chunks.
TEST(Classifier, ConvolutionalOdeNetInSinglePrecisionAgreesWithDouble) {
  Classifier exact(ConvSpec(12, 12, 5, 8, 3, Precision::kDouble), 2);
  Classifier fast(ConvSpec(12, 12, 5, 8, 3, Precision::kSingle), 2);
  const Vector theta = exact.Initialize(4);
  std::mt19937 rng(8);
  const Index batch = 40;
  const Vector xv = RandomVector(144 * batch, rng);
  const Matrix x = Eigen::Map<const Matrix>(xv.data(), 144, batch);
  std::vector<int> labels(batch);
  for (Index b = 0; b < batch; ++b) labels[static_cast<std::size_t>(b)] = static_cast<int>(b % 5);
  Vector g_exact, g_fast;
  const BatchResult r_exact = exact.Evaluate(theta, x, labels.data(), &g_exact);
  const BatchResult r_fast = fast.Evaluate(theta, x, labels.data(), &g_fast);
  EXPECT_NEAR(r_fast.loss, r_exact.loss, 1e-6 * r_exact.loss);
  const double error = (g_fast - g_exact).norm() / g_exact.norm();
  EXPECT_LT(error, 1e-5);
  EXPECT_GT(error, 0.0);  // the single-precision path was taken
}

TEST(Classifier, ShapesAndPaths) {
  for (ModelKind kind : {ModelKind::kOdeNet, ModelKind::kAnode, ModelKind::kResNet,
                         ModelKind::kC2, ModelKind::kMlp}) {
    const ModelSpec spec = SmallSpec(kind);
    Classifier model(spec);
    const Vector theta = model.Initialize(1);
    const Matrix x = Matrix::Random(2, 7);
    const Matrix logits = model.Logits(theta, x, 3);
    EXPECT_EQ(logits.rows(), 3);
    EXPECT_EQ(logits.cols(), 7);
    const std::vector<Matrix> paths = model.Paths(theta, x, 5);
    EXPECT_EQ(paths.size(), model.PathTimes(5).size());
    EXPECT_EQ(paths.front().rows(), spec.state_size());
    if (kind == ModelKind::kAnode) {
      EXPECT_EQ(paths.front().topRows(2), x);
      EXPECT_TRUE(paths.front().bottomRows(2).isZero());
    }
  }
}

TEST(Classifier, C2StartsWithZeroVelocity) {
  // h_1 = h_0 + Δ² g(h_0): with g ≡ 0 (all weights 0) every layer keeps h_0.
  ModelSpec spec = SmallSpec(ModelKind::kC2);
  Classifier model(spec);
  Vector theta = model.Initialize(2);
  const auto blocks = model.Blocks();
  for (const auto& b : blocks) {
    if (b.name.rfind("block", 0) == 0) theta.segment(b.offset, b.rows * b.cols).setZero();
  }
  const Matrix x = Matrix::Random(2, 3);
  const std::vector<Matrix> paths = model.Paths(theta, x);
  for (const Matrix& h : paths) EXPECT_LT((h - paths.front()).norm(), 1e-15);
}

TEST(Classifier, RejectsBadSpecs) {
  EXPECT_THROW(ParseModelKind("transformer"), InputError);
  ModelSpec spec = SmallSpec(ModelKind::kResNet);
  spec.width = 0;
  EXPECT_THROW(Classifier{spec}, InputError);
  spec = SmallSpec(ModelKind::kOdeNet);
  spec.classes = 1;
  EXPECT_THROW(Classifier{spec}, InputError);
  spec = SmallSpec(ModelKind::kOdeNet);
  spec.kinetic_energy = -0.1;
  EXPECT_THROW(Classifier{spec}, InputError);
  spec = SmallSpec(ModelKind::kResNet);
  spec.kinetic_energy = 0.1;  // a regulariser of flows only
  EXPECT_THROW(Classifier{spec}, InputError);
  spec = SmallSpec(ModelKind::kResNet);
  spec.jacobian_norm = 0.1;
  EXPECT_THROW(Classifier{spec}, InputError);
  spec = SmallSpec(ModelKind::kOdeNet);
  spec.jacobian_norm = -1.0;
  EXPECT_THROW(Classifier{spec}, InputError);
  // The flattened read-out belongs to the convolutional ODE-Net alone.
  EXPECT_THROW(ParseReadout("max"), InputError);
  EXPECT_EQ(ParseReadout(ReadoutName(Readout::kFlatten)), Readout::kFlatten);
  for (ModelKind kind : {ModelKind::kOdeNet, ModelKind::kResNet}) {
    spec = SmallSpec(kind);
    spec.readout = Readout::kFlatten;
    try {
      Classifier{spec};
      FAIL() << ModelKindName(kind);
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("--readout flatten"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace diffeoflow::flows
