#include "flows/layers.h"

#include <algorithm>
#include <cmath>

#include "flows/kernels.h"
#include "solvers/errors.h"

namespace diffeoflow::flows {

Linear::Linear(Index in, Index out, bool concat_time)
    : in_(in), out_(out), concat_time_(concat_time) {
  if (in < 1 || out < 1) throw InputError("Linear layer: sizes must be positive");
  shift_.resize(out);
}

void Linear::Initialize(std::mt19937& rng, double* theta) const {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_ + concat_time_));
  std::uniform_real_distribution<double> u(-bound, bound);
  for (Index i = 0; i < param_dim(); ++i) theta[i] = u(rng);
}

void Linear::Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) {
  const Index in_total = in_ + concat_time_;
  const Index batch = x.cols();
  // θ's row-major W (out × in') is the column-major Wᵀ (in' × out).
  const double* b = theta + in_total * out_;
  if (concat_time_) {
    Eigen::Map<const Vector, 0, Eigen::InnerStride<>> w_t(theta + in_, out_,
                                                          Eigen::InnerStride<>(in_total));
    shift_ = Eigen::Map<const Vector>(b, out_) + t * w_t;
    b = shift_.data();
  }
  kernels::GemmBias(true, false, out_, batch, in_, theta, in_total, x.data(), in_, b, y.data(),
                    out_);
}

void Linear::Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView /*y*/,
                      ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) {
  const Index in_total = in_ + concat_time_;
  const Index batch = x.cols();
  kernels::Gemm(false, false, in_, batch, out_, 1.0, theta, in_total, y_bar.data(), out_, 0.0,
                x_bar.data(), in_);
  // W̄ᵀ (in' × out, column-major) = x ȳᵀ; the time row is t Σ_b ȳ.
  kernels::Gemm(false, true, in_, out_, batch, 1.0, x.data(), in_, y_bar.data(), out_, 0.0,
                theta_bar, in_total);
  Eigen::Map<Vector> b_bar(theta_bar + in_total * out_, out_);
  kernels::RowSums(y_bar.data(), out_, batch, b_bar.data());
  if (concat_time_) {
    Eigen::Map<Vector, 0, Eigen::InnerStride<>> w_t_bar(theta_bar + in_, out_,
                                                        Eigen::InnerStride<>(in_total));
    w_t_bar = t * b_bar;
  }
}

void Layer::Tangent(const double* /*theta*/, ConstMatrixView /*x*/, ConstMatrixView /*y*/,
                    ConstMatrixView /*x_dot*/, MatrixView /*y_dot*/) {
  throw InputError("the layer '" + name() + "' has no tangent pass (no second derivative)");
}

void Layer::TangentBackward(double /*t*/, const double* /*theta*/, ConstMatrixView /*x*/,
                            ConstMatrixView /*y*/, ConstMatrixView /*x_dot*/,
                            ConstMatrixView /*y_bar*/, ConstMatrixView /*y_dot_bar*/,
                            MatrixView /*x_bar*/, MatrixView /*x_dot_bar*/,
                            double* /*theta_bar*/) {
  throw InputError("the layer '" + name() + "' has no tangent pass (no second derivative)");
}

void Linear::Tangent(const double* theta, ConstMatrixView /*x*/, ConstMatrixView /*y*/,
                     ConstMatrixView x_dot, MatrixView y_dot) {
  kernels::Gemm(true, false, out_, x_dot.cols(), in_, 1.0, theta, in_ + concat_time_,
                x_dot.data(), in_, 0.0, y_dot.data(), out_);
}

void Linear::TangentBackward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                             ConstMatrixView x_dot, ConstMatrixView y_bar,
                             ConstMatrixView y_dot_bar, MatrixView x_bar, MatrixView x_dot_bar,
                             double* theta_bar) {
  const Index in_total = in_ + concat_time_, batch = x.cols();
  Backward(t, theta, x, y, y_bar, x_bar, theta_bar);
  kernels::Gemm(false, false, in_, batch, out_, 1.0, theta, in_total, y_dot_bar.data(), out_,
                0.0, x_dot_bar.data(), in_);
  kernels::Gemm(false, true, in_, out_, batch, 1.0, x_dot.data(), in_, y_dot_bar.data(), out_,
                1.0, theta_bar, in_total);
}

std::string ActivationName(Activation a) {
  switch (a) {
    case Activation::kTanh: return "tanh";
    case Activation::kRelu: return "relu";
    case Activation::kSoftplus: return "softplus";
    case Activation::kSigmoid: return "sigmoid";
  }
  return "?";
}

Activation ParseActivation(const std::string& name, const std::string& argument) {
  for (Activation a : {Activation::kTanh, Activation::kRelu, Activation::kSoftplus,
                       Activation::kSigmoid}) {
    if (name == ActivationName(a)) return a;
  }
  throw InputError(argument + ": unknown activation '" + name +
                   "' (expected tanh, relu, softplus or sigmoid)");
}

void ActivationLayer::Forward(double /*t*/, const double* /*theta*/, ConstMatrixView x,
                              MatrixView y) {
  const Index n = x.size();
  switch (activation_) {
    case Activation::kTanh: kernels::Tanh(x.data(), y.data(), n); break;
    case Activation::kSigmoid: kernels::Sigmoid(x.data(), y.data(), n); break;
    case Activation::kSoftplus: kernels::Softplus(x.data(), y.data(), n); break;
    case Activation::kRelu: kernels::Relu(x.data(), y.data(), n); break;
  }
}

void ActivationLayer::Backward(double /*t*/, const double* /*theta*/, ConstMatrixView x,
                               ConstMatrixView y, ConstMatrixView y_bar, MatrixView x_bar,
                               double* /*theta_bar*/) {
  const Index n = x.size();
  switch (activation_) {
    case Activation::kTanh: kernels::TanhBackward(y.data(), y_bar.data(), x_bar.data(), n); break;
    case Activation::kSigmoid:
      kernels::SigmoidBackward(y.data(), y_bar.data(), x_bar.data(), n);
      break;
    case Activation::kSoftplus:
      kernels::Sigmoid(x.data(), x_bar.data(), n);
      x_bar.array() *= y_bar.array();
      break;
    case Activation::kRelu: kernels::ReluBackward(x.data(), y_bar.data(), x_bar.data(), n); break;
  }
}

void ActivationLayer::ReserveTangents(Index batch) {
  d1_.resize(size_ * batch);
  d2_.resize(size_ * batch);
}

void ActivationLayer::Derivatives(const double* x, const double* y, Index n, bool second) {
  using Array = Eigen::Map<Eigen::ArrayXd>;
  using ConstArray = Eigen::Map<const Eigen::ArrayXd>;
  Array d1(d1_.data(), n), d2(d2_.data(), n);
  const ConstArray y_(y, n);
  switch (activation_) {
    case Activation::kTanh:  // σ' = 1 − y², σ'' = −2 y σ'
      d1 = 1.0 - y_.square();
      if (second) d2 = -2.0 * y_ * d1;
      return;
    case Activation::kSigmoid:  // σ' = y (1 − y), σ'' = σ' (1 − 2y)
      d1 = y_ * (1.0 - y_);
      if (second) d2 = d1 * (1.0 - 2.0 * y_);
      return;
    case Activation::kSoftplus:  // σ' = sigmoid(x) = s, σ'' = s (1 − s)
      kernels::Sigmoid(x, d1_.data(), n);
      if (second) d2 = d1 * (1.0 - d1);
      return;
    case Activation::kRelu:  // σ' = [x > 0], σ'' = 0
      d1 = (ConstArray(x, n) > 0.0).cast<double>();
      if (second) d2.setZero();
      return;
  }
}

void ActivationLayer::Tangent(const double* /*theta*/, ConstMatrixView x, ConstMatrixView y,
                              ConstMatrixView x_dot, MatrixView y_dot) {
  const Index n = x.size();
  Derivatives(x.data(), y.data(), n, false);
  y_dot.reshaped().array() = d1_.head(n).array() * x_dot.reshaped().array();
}

void ActivationLayer::TangentBackward(double /*t*/, const double* /*theta*/, ConstMatrixView x,
                                      ConstMatrixView y, ConstMatrixView x_dot,
                                      ConstMatrixView y_bar, ConstMatrixView y_dot_bar,
                                      MatrixView x_bar, MatrixView x_dot_bar,
                                      double* /*theta_bar*/) {
  const Index n = x.size();
  Derivatives(x.data(), y.data(), n, true);
  const auto d1 = d1_.head(n).array(), d2 = d2_.head(n).array();
  x_bar.reshaped().array() = d1 * y_bar.reshaped().array() +
                             d2 * x_dot.reshaped().array() * y_dot_bar.reshaped().array();
  x_dot_bar.reshaped().array() = d1 * y_dot_bar.reshaped().array();
}

double SoftmaxCrossEntropy(ConstMatrixView logits, const int* labels, MatrixView* z_bar,
                           Index* correct, double smoothing) {
  const Index classes = logits.rows(), batch = logits.cols();
  // The target's weights: `on` for the label, `off` for every class (the label included).
  const double off = smoothing / static_cast<double>(classes), on = 1.0 - smoothing;
  double loss = 0.0;
  Index hits = 0;
  for (Index b = 0; b < batch; ++b) {
    const int label = labels[b];
    if (label < 0 || label >= classes) {
      throw InputError("label " + std::to_string(label) + " of sample " + std::to_string(b) +
                       " is outside [0, " + std::to_string(classes) + ")");
    }
    Index arg_max = 0;
    const double z_max = logits.col(b).maxCoeff(&arg_max);
    hits += (arg_max == label);
    double sum = 0.0;
    for (Index c = 0; c < classes; ++c) sum += std::exp(logits(c, b) - z_max);
    loss += std::log(sum) + z_max - on * logits(label, b);
    if (off > 0.0) loss -= off * logits.col(b).sum();
    if (z_bar != nullptr) {
      for (Index c = 0; c < classes; ++c) {
        (*z_bar)(c, b) = (std::exp(logits(c, b) - z_max) / sum - off) / static_cast<double>(batch);
      }
      (*z_bar)(label, b) -= on / static_cast<double>(batch);
    }
  }
  if (correct != nullptr) *correct = hits;
  return batch > 0 ? loss / static_cast<double>(batch) : 0.0;
}

}  // namespace diffeoflow::flows
