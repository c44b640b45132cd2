#include "flows/geometry.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "flows/field.h"
#include "solvers/errors.h"
#include "solvers/geometry.h"
#include "solvers/kinetic_energy.h"

namespace diffeoflow::flows {

namespace {

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Points per batch of the Jacobian computations (bounds the memory of the tangents).
constexpr Index kChunk = 1024;

double ActivationDerivative(Activation activation, double z) {
  switch (activation) {
    case Activation::kTanh: {
      const double y = std::tanh(z);
      return 1.0 - y * y;
    }
    case Activation::kRelu: return z > 0.0 ? 1.0 : 0.0;
    case Activation::kSoftplus: return 1.0 / (1.0 + std::exp(-z));
    case Activation::kSigmoid: {
      const double y = 1.0 / (1.0 + std::exp(-z));
      return y * (1.0 - y);
    }
  }
  return 0.0;
}

double ActivationValue(Activation activation, double z) {
  switch (activation) {
    case Activation::kTanh: return std::tanh(z);
    case Activation::kRelu: return std::max(z, 0.0);
    case Activation::kSoftplus: return z > 30.0 ? z : std::log1p(std::exp(z));
    case Activation::kSigmoid: return 1.0 / (1.0 + std::exp(-z));
  }
  return 0.0;
}

// Forward mode through a stack of Linear and activation layers: the value h (n × B) and, for each
// input direction k, the tangent T_k = ∂h/∂x · e_k (n × B) are carried through every layer
// (Linear: h ← W h + b, T ← W T; activation: h ← σ(h), T ← σ'(h) ⊙ T).
void ForwardTangents(const Sequential& net, double t, const double* theta, Matrix& h,
                     std::vector<Matrix>& tangents) {
  for (std::size_t i = 0; i < net.size(); ++i) {
    const Layer& layer = net.layer(i);
    const double* th = theta + net.param_offset(i);
    if (const auto* linear = dynamic_cast<const Linear*>(&layer)) {
      const Index in = linear->input_size(), out = linear->output_size();
      const Index in_total = in + (linear->concat_time() ? 1 : 0);
      Eigen::Map<const RowMajorMatrix> weight(th, out, in_total);
      Eigen::Map<const Vector> bias(th + out * in_total, out);
      Matrix next = weight.leftCols(in) * h;
      next.colwise() += bias;
      if (linear->concat_time()) next.colwise() += t * weight.col(in);
      h = std::move(next);
      for (Matrix& tangent : tangents) tangent = weight.leftCols(in) * tangent;
    } else if (const auto* act = dynamic_cast<const ActivationLayer*>(&layer)) {
      const Matrix slope = h.unaryExpr(
          [a = act->activation()](double z) { return ActivationDerivative(a, z); });
      h = h.unaryExpr([a = act->activation()](double z) { return ActivationValue(a, z); });
      for (Matrix& tangent : tangents) tangent = tangent.cwiseProduct(slope);
    } else {
      throw InputError("geometry: layer '" + layer.name() +
                       "' is not supported (the feature Jacobian needs a model on vector input)");
    }
  }
}

void RequireVectorModel(const Classifier& model, const Vector& theta, const Matrix& x) {
  const ModelSpec& spec = model.spec();
  if (spec.convolutional()) {
    throw InputError("geometry: the convolutional ODE-Net is not supported (image input)");
  }
  if (theta.size() != model.param_dim()) {
    throw InputError("geometry: model has " + std::to_string(model.param_dim()) +
                     " parameters, θ has " + std::to_string(theta.size()));
  }
  if (x.rows() != spec.input_size()) {
    throw InputError("geometry: model expects " + std::to_string(spec.input_size()) +
                     " input features per sample, got " + std::to_string(x.rows()));
  }
}

// h(0) and its tangents ∂h(0)/∂x e_k for a chunk of points.
void EmbedWithTangents(const Classifier& model, const Vector& theta, const Matrix& x, Matrix& h,
                       std::vector<Matrix>& tangents) {
  const Index d = x.rows(), B = x.cols(), W = model.spec().state_size();
  tangents.assign(static_cast<std::size_t>(d), Matrix::Zero(d, B));
  for (Index k = 0; k < d; ++k) tangents[static_cast<std::size_t>(k)].row(k).setOnes();
  h = x;
  if (model.embedding().size() > 0) {
    ForwardTangents(model.embedding(), 0.0, theta.data() + model.embedding_offset(), h, tangents);
    return;
  }
  // No embedding: h(0) = [x; 0] (anode's augmentation, or the input itself).
  h.conservativeResize(W, B);
  h.bottomRows(W - d).setZero();
  for (Matrix& tangent : tangents) {
    tangent.conservativeResize(W, B);
    tangent.bottomRows(W - d).setZero();
  }
}

void ChunkJacobians(Classifier& model, const Vector& theta, const Matrix& x,
                    std::vector<Matrix>& out) {
  const ModelSpec& spec = model.spec();
  const Index d = x.rows(), B = x.cols(), W = spec.state_size();
  Matrix h;
  std::vector<Matrix> tangents;
  EmbedWithTangents(model, theta, x, h, tangents);

  if (spec.continuous()) {
    const Sequential& field_net = model.flow_field();
    NetworkField field(field_net, B, 1);
    const Vector theta_f = theta.segment(model.flow_offset(), field_net.param_dim());
    const BatchSensitivity s =
        BatchForwardSensitivity(field, Eigen::Map<const Vector>(h.data(), h.size()), theta_f, W,
                                {1.0}, spec.solver);
    for (Index b = 0; b < B; ++b) {
      Matrix embed_jacobian(W, d);
      for (Index k = 0; k < d; ++k) embed_jacobian.col(k) = tangents[static_cast<std::size_t>(k)].col(b);
      out.push_back(s.jacobians[0][static_cast<std::size_t>(b)] * embed_jacobian);
    }
    return;
  }

  // The layer recurrence carries the features and, being linear, their tangents.
  const DepthRecurrence recurrence(spec.kind, spec.depth);
  Index offset = model.flow_offset();
  Matrix h_previous = h;                      // h_{l−1} (c2: h_{−1} = h_0)
  std::vector<Matrix> previous = tangents;    // T_{l−1}
  for (int l = 0; l < spec.depth; ++l) {
    const Sequential& block = model.layer_blocks()[static_cast<std::size_t>(l)];
    Matrix g = h;
    std::vector<Matrix> g_tangents = tangents;
    ForwardTangents(block, l * recurrence.delta(), theta.data() + offset, g, g_tangents);
    offset += block.param_dim();
    Matrix next = recurrence.Next(h, h_previous, g);
    h_previous = std::move(h);
    h = std::move(next);
    for (std::size_t k = 0; k < tangents.size(); ++k) {
      Matrix next_tangent = recurrence.Next(tangents[k], previous[k], g_tangents[k]);
      previous[k] = std::move(tangents[k]);
      tangents[k] = std::move(next_tangent);
    }
  }
  for (Index b = 0; b < B; ++b) {
    Matrix jacobian(W, d);
    for (Index k = 0; k < d; ++k) jacobian.col(k) = tangents[static_cast<std::size_t>(k)].col(b);
    out.push_back(std::move(jacobian));
  }
}

}  // namespace

std::vector<Matrix> FeatureJacobians(Classifier& model, const Vector& theta, const Matrix& x) {
  RequireVectorModel(model, theta, x);
  std::vector<Matrix> jacobians;
  jacobians.reserve(static_cast<std::size_t>(x.cols()));
  for (Index start = 0; start < x.cols(); start += kChunk) {
    const Index n = std::min(kChunk, x.cols() - start);
    ChunkJacobians(model, theta, x.middleCols(start, n), jacobians);
  }
  return jacobians;
}

Vector VolumeElements(Classifier& model, const Vector& theta, const Matrix& x) {
  const std::vector<Matrix> jacobians = FeatureJacobians(model, theta, x);
  Vector volume(x.cols());
  for (Index i = 0; i < x.cols(); ++i) volume[i] = VolumeElement(jacobians[static_cast<std::size_t>(i)]);
  return volume;
}

double FlowAction(Classifier& model, const Vector& theta, const Matrix& x) {
  RequireVectorModel(model, theta, x);
  const ModelSpec& spec = model.spec();
  const Index B = x.cols(), W = spec.state_size();
  if (B == 0) throw InputError("kinetic energy: no points");
  if (spec.continuous()) {
    double total = 0.0;
    for (Index start = 0; start < B; start += kChunk) {
      const Index n = std::min(kChunk, B - start);
      Matrix h;
      std::vector<Matrix> tangents;
      EmbedWithTangents(model, theta, x.middleCols(start, n), h, tangents);
      const Sequential& field_net = model.flow_field();
      NetworkField field(field_net, n, 1);
      KineticEnergyAugmented augmented(field, 1.0 / static_cast<double>(n));
      const Vector theta_f = theta.segment(model.flow_offset(), field_net.param_dim());
      const Solution s = Integrate(
          augmented, augmented.Augment(Eigen::Map<const Vector>(h.data(), h.size())), theta_f,
          {1.0}, spec.solver);
      total += s.states[0][W * n] * static_cast<double>(n);
    }
    return total / static_cast<double>(B);
  }
  const std::vector<Matrix> paths = model.Paths(theta, x);
  const double delta = 1.0 / spec.depth;
  double sum = 0.0;
  for (std::size_t l = 0; l + 1 < paths.size(); ++l) sum += (paths[l + 1] - paths[l]).squaredNorm();
  return sum / (delta * static_cast<double>(B));
}

FisherSummary Fisher(Classifier& model, const Vector& theta, const Matrix& x, const int* labels,
                     Index max_samples) {
  if (theta.size() != model.param_dim()) {
    throw InputError("fisher: model has " + std::to_string(model.param_dim()) +
                     " parameters, θ has " + std::to_string(theta.size()));
  }
  FisherSummary summary;
  summary.samples = std::min(x.cols(), std::max<Index>(max_samples, 0));
  if (summary.samples == 0) return summary;
  Vector gradient;
  for (Index i = 0; i < summary.samples; ++i) {
    const Matrix sample = x.col(i);
    model.Evaluate(theta, sample, labels + i, &gradient);
    const double projection = theta.dot(gradient);
    summary.fisher_rao_norm += projection * projection;
    summary.fisher_trace += gradient.squaredNorm();
  }
  summary.fisher_rao_norm /= static_cast<double>(summary.samples);
  summary.fisher_trace /= static_cast<double>(summary.samples);
  return summary;
}

Matrix OneHiddenLayerMetric(const Matrix& W, const Vector& b, const Vector& x,
                            Activation activation) {
  if (W.cols() != x.size() || W.rows() != b.size() || W.rows() == 0) {
    throw InputError("one-hidden-layer metric: W is " + std::to_string(W.rows()) + "×" +
                     std::to_string(W.cols()) + ", b has " + std::to_string(b.size()) +
                     " entries and x " + std::to_string(x.size()));
  }
  const Vector z = W * x + b;
  const Vector slope = z.unaryExpr([activation](double v) { return ActivationDerivative(activation, v); });
  return W.transpose() * slope.cwiseAbs2().asDiagonal() * W / static_cast<double>(W.rows());
}

}  // namespace diffeoflow::flows
