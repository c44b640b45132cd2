#include "flows/geometry.h"

#include <cmath>
#include <random>
#include <string>

#include <Eigen/LU>
#include <gtest/gtest.h>

#include "solvers/errors.h"
#include "solvers/geometry.h"
#include "tests/flows/test_util.h"

namespace diffeoflow::flows {
namespace {

using testing::RandomVector;
using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

ModelSpec Spec(ModelKind kind) {
  ModelSpec spec;
  spec.kind = kind;
  spec.input_shape = {2};
  spec.classes = 3;
  spec.width = 3;
  spec.hidden = 6;
  spec.augment = 2;
  spec.depth = 4;
  spec.activation = Activation::kTanh;
  spec.solver.method = Method::kRk4;
  spec.solver.steps = 6;
  return spec;
}

Matrix RandomPoints(Index n, std::mt19937& rng) {
  const Vector v = RandomVector(2 * n, rng);
  return Eigen::Map<const Matrix>(v.data(), 2, n);
}

// Writes a row-major (out × in) weight and a bias into θ at the Linear layer's offset.
void SetLinear(Vector& theta, Index offset, const Matrix& weight, const Vector& bias) {
  const RowMajorMatrix w = weight;
  theta.segment(offset, w.size()) = Eigen::Map<const Vector>(w.data(), w.size());
  theta.segment(offset + w.size(), bias.size()) = bias;
}

TEST(FlowsGeometry, OneHiddenLayerMetricMatchesNumericalPullback) {
  // An mlp of one layer whose embedding is A x + b and whose block is Linear(I, 0) then φ:
  // h = φ(A x + b), so the numerical JᵀJ is n times the closed form of (1/√n) φ(A x + b).
  for (Activation activation : {Activation::kTanh, Activation::kSoftplus, Activation::kSigmoid}) {
    ModelSpec spec = Spec(ModelKind::kMlp);
    spec.width = 7;
    spec.depth = 1;
    spec.activation = activation;
    Classifier model(spec);
    std::mt19937 rng(3);
    Vector theta = model.Initialize(1);
    const Index n = spec.width;
    const Vector a = RandomVector(n * 2, rng, 1.5);
    const Matrix A = Eigen::Map<const Matrix>(a.data(), n, 2);
    const Vector b = RandomVector(n, rng);
    SetLinear(theta, model.embedding_offset(), A, b);
    SetLinear(theta, model.flow_offset(), Matrix::Identity(n, n), Vector::Zero(n));
    const Matrix x = RandomPoints(6, rng);
    const std::vector<Matrix> jacobians = FeatureJacobians(model, theta, x);
    const Vector volumes = VolumeElements(model, theta, x);
    ASSERT_EQ(jacobians.size(), 6u);
    for (Index i = 0; i < x.cols(); ++i) {
      const Matrix closed = OneHiddenLayerMetric(A, b, x.col(i), activation);
      const Matrix numerical = PullbackMetric(jacobians[static_cast<std::size_t>(i)]) / n;
      EXPECT_LT((numerical - closed).cwiseAbs().maxCoeff(), 1e-10 * closed.cwiseAbs().maxCoeff())
          << ActivationName(activation) << " point " << i;
      // The volume element of h itself: √det(n g).
      EXPECT_NEAR(volumes[i], std::sqrt((n * closed).determinant()), 1e-10 * volumes[i]);
    }
  }
}

TEST(FlowsGeometry, OneHiddenLayerMetricOfReluCountsActiveUnits) {
  Matrix W(3, 2);
  W << 1, 0, 0, 2, 1, 1;
  const Vector b = Vector::Zero(3);
  Vector x(2);
  x << 1.0, -1.0;  // z = (1, −2, 0): only the first unit is active
  const Matrix g = OneHiddenLayerMetric(W, b, x, Activation::kRelu);
  Matrix expected = Matrix::Zero(2, 2);
  expected(0, 0) = 1.0 / 3.0;
  EXPECT_LT((g - expected).cwiseAbs().maxCoeff(), 1e-15);
  EXPECT_THROW(OneHiddenLayerMetric(W, Vector::Zero(2), x, Activation::kRelu), InputError);
}

TEST(FlowsGeometry, VolumeElementOfLinearFeatureMapIsDeterminant) {
  // odenet whose field is zero: the feature map is the embedding A x + c.
  for (int width : {2, 3}) {
    ModelSpec spec = Spec(ModelKind::kOdeNet);
    spec.width = width;
    Classifier model(spec);
    std::mt19937 rng(5);
    Vector theta = model.Initialize(2);
    theta.segment(model.flow_offset(), model.flow_field().param_dim()).setZero();
    const Vector a = RandomVector(width * 2, rng);
    const Matrix A = Eigen::Map<const Matrix>(a.data(), width, 2);
    SetLinear(theta, model.embedding_offset(), A, RandomVector(width, rng));
    const Matrix x = RandomPoints(4, rng);
    const Vector volumes = VolumeElements(model, theta, x);
    const double expected = width == 2 ? std::abs(A.determinant())
                                       : std::sqrt((A.transpose() * A).determinant());
    for (Index i = 0; i < x.cols(); ++i) EXPECT_NEAR(volumes[i], expected, 1e-12 * expected);
  }
}

class FeatureJacobianTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FeatureJacobianTest, EqualsCentralDifferencesOfTheFeatureMap) {
  const std::string name = GetParam();
  ModelSpec spec = Spec(ParseModelKind(name == "odenet0" ? "odenet" : name));
  if (name == "odenet0") spec.width = 0;
  Classifier model(spec);
  Vector theta = 2.0 * model.Initialize(7);
  std::mt19937 rng(11);
  const Matrix x = RandomPoints(5, rng);
  const std::vector<Matrix> jacobians = FeatureJacobians(model, theta, x);
  ASSERT_EQ(jacobians.size(), 5u);
  const double eps = 1e-5;
  Matrix shifted(2, 4 * x.cols());
  for (Index i = 0; i < x.cols(); ++i) {
    for (Index k = 0; k < 2; ++k) {
      shifted.col(4 * i + 2 * k) = x.col(i) + eps * Vector::Unit(2, k);
      shifted.col(4 * i + 2 * k + 1) = x.col(i) - eps * Vector::Unit(2, k);
    }
  }
  const Matrix h = model.Paths(theta, shifted, 2).back();
  for (Index i = 0; i < x.cols(); ++i) {
    const Matrix& J = jacobians[static_cast<std::size_t>(i)];
    ASSERT_EQ(J.rows(), spec.state_size());
    ASSERT_EQ(J.cols(), 2);
    Matrix fd(J.rows(), 2);
    for (Index k = 0; k < 2; ++k) {
      fd.col(k) = (h.col(4 * i + 2 * k) - h.col(4 * i + 2 * k + 1)) / (2 * eps);
    }
    EXPECT_LT((J - fd).cwiseAbs().maxCoeff(), 1e-7 * std::max(1.0, fd.cwiseAbs().maxCoeff()))
        << name << " point " << i << "\nJ =\n" << J << "\nfd =\n" << fd;
  }
}

INSTANTIATE_TEST_SUITE_P(AllModels, FeatureJacobianTest,
                         ::testing::Values("odenet", "odenet0", "anode", "resnet", "c2", "mlp"));

TEST(FlowsGeometry, FeatureJacobiansRejectWrongInput) {
  Classifier model(Spec(ModelKind::kResNet));
  const Vector theta = model.Initialize(1);
  EXPECT_THROW(FeatureJacobians(model, theta, Matrix::Zero(3, 2)), InputError);
  EXPECT_THROW(FeatureJacobians(model, Vector::Zero(2), Matrix::Zero(2, 2)), InputError);
}

TEST(FlowsGeometry, FisherRaoNormIsMeanSquaredProjectionOfPerSampleGradients) {
  Classifier model(Spec(ModelKind::kResNet));
  const Vector theta = model.Initialize(4);
  std::mt19937 rng(2);
  const Matrix x = RandomPoints(9, rng);
  const int labels[9] = {0, 1, 2, 2, 1, 0, 0, 1, 2};
  const FisherSummary fisher = Fisher(model, theta, x, labels, 7);
  EXPECT_EQ(fisher.samples, 7);
  double norm = 0, trace = 0;
  Vector gradient;
  for (Index i = 0; i < 7; ++i) {
    model.Evaluate(theta, x.col(i), labels + i, &gradient);
    norm += std::pow(theta.dot(gradient), 2) / 7;
    trace += gradient.squaredNorm() / 7;
  }
  EXPECT_NEAR(fisher.fisher_rao_norm, norm, 1e-12 * norm);
  EXPECT_NEAR(fisher.fisher_trace, trace, 1e-12 * trace);
  EXPECT_GT(fisher.fisher_rao_norm, 0.0);
}

TEST(FlowsGeometry, FisherRaoNormOfHomogeneousReluNetwork) {
  // Bias-free ReLU mlp of L layers: the logits z are positively homogeneous of degree L + 2 in θ,
  // so ⟨θ, ∇_θ ℓ⟩ = (L + 2) ⟨∂ℓ/∂z, z⟩ (Liang et al. 2019, Lemma 2.1).
  ModelSpec spec = Spec(ModelKind::kMlp);
  spec.activation = Activation::kRelu;
  spec.depth = 2;
  spec.width = 5;
  Classifier model(spec);
  Vector theta = model.Initialize(9);
  for (const Classifier::Block& block : model.Blocks()) {
    if (block.name.ends_with("/bias")) theta.segment(block.offset, block.rows).setZero();
  }
  std::mt19937 rng(6);
  const Matrix x = RandomPoints(6, rng);
  const int labels[6] = {0, 1, 2, 1, 0, 2};
  const Matrix logits = model.Logits(theta, x);
  double expected = 0;
  for (Index i = 0; i < x.cols(); ++i) {
    const Vector z = logits.col(i);
    Vector p = (z.array() - z.maxCoeff()).exp();
    p /= p.sum();
    p[labels[i]] -= 1.0;
    expected += std::pow((spec.depth + 2) * p.dot(z), 2) / 6;
  }
  const FisherSummary fisher = Fisher(model, theta, x, labels);
  EXPECT_EQ(fisher.samples, 6);
  EXPECT_NEAR(fisher.fisher_rao_norm, expected, 1e-10 * expected);
}

TEST(FlowsGeometry, FlowActionOfAffineInTimeField) {
  // odenet on the input itself, field f = A relu(t·1) + c = a t + c with a = A·1:
  // ∫₀¹ ‖a t + c‖² dt = ‖a‖²/3 + a·c + ‖c‖² for every point.
  ModelSpec spec = Spec(ModelKind::kOdeNet);
  spec.width = 0;
  spec.activation = Activation::kRelu;
  Classifier model(spec);
  Vector theta = model.Initialize(1);
  const Sequential& field = model.flow_field();
  const Index H = spec.hidden;
  Matrix first = Matrix::Zero(H, 3);
  first.col(2).setOnes();
  SetLinear(theta, model.flow_offset() + field.param_offset(0), first, Vector::Zero(H));
  std::mt19937 rng(8);
  const Vector av = RandomVector(2 * H, rng);
  const Matrix A = Eigen::Map<const Matrix>(av.data(), 2, H);
  const Vector c = RandomVector(2, rng);
  SetLinear(theta, model.flow_offset() + field.param_offset(2), A, c);
  const Vector a = A.rowwise().sum();
  const double expected = a.squaredNorm() / 3 + a.dot(c) + c.squaredNorm();
  const Matrix x = RandomPoints(5, rng);
  EXPECT_NEAR(FlowAction(model, theta, x), expected, 1e-12 * expected);
}

TEST(FlowsGeometry, FlowActionOfResNetWithConstantBlocks) {
  // g_l = c_l: h_{l+1} − h_l = Δ c_l and Σ_l ‖Δ c_l‖² / Δ = Δ Σ_l ‖c_l‖².
  ModelSpec spec = Spec(ModelKind::kResNet);
  Classifier model(spec);
  Vector theta = model.Initialize(1);
  std::mt19937 rng(4);
  Index offset = model.flow_offset();
  double expected = 0;
  for (const Sequential& block : model.layer_blocks()) {
    theta.segment(offset, block.param_dim()).setZero();
    const Vector c = RandomVector(spec.width, rng);
    SetLinear(theta, offset + block.param_offset(2), Matrix::Zero(spec.width, spec.hidden), c);
    expected += c.squaredNorm() / spec.depth;
    offset += block.param_dim();
  }
  const Matrix x = RandomPoints(4, rng);
  EXPECT_NEAR(FlowAction(model, theta, x), expected, 1e-12 * expected);
}

}  // namespace
}  // namespace diffeoflow::flows
