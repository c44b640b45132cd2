#include "flows/network.h"

#include <algorithm>

#include "solvers/errors.h"

namespace diffeoflow::flows {

Sequential::Sequential(const Sequential& other)
    : offsets_(other.offsets_), param_dim_(other.param_dim_) {
  for (const auto& layer : other.layers_) layers_.push_back(layer->Clone());
  Reserve(other.reserved_);
}

Sequential& Sequential::operator=(const Sequential& other) {
  if (this != &other) {
    Sequential copy(other);
    *this = std::move(copy);
  }
  return *this;
}

void Sequential::Add(std::unique_ptr<Layer> layer) {
  if (!layers_.empty() && layer->input_size() != output_size()) {
    throw InputError("network: layer '" + layer->name() + "' expects " +
                     std::to_string(layer->input_size()) + " inputs but the previous layer gives " +
                     std::to_string(output_size()));
  }
  offsets_.push_back(param_dim_);
  param_dim_ += layer->param_dim();
  layers_.push_back(std::move(layer));
  reserved_ = 0;
  outputs_.clear();
}

Index Sequential::input_size() const { return layers_.empty() ? 0 : layers_.front()->input_size(); }
Index Sequential::output_size() const { return layers_.empty() ? 0 : layers_.back()->output_size(); }

void Sequential::Initialize(std::mt19937& rng, double* theta) const {
  for (std::size_t i = 0; i < layers_.size(); ++i) layers_[i]->Initialize(rng, theta + offsets_[i]);
}

void Sequential::Reserve(Index batch) {
  if (batch <= reserved_ && outputs_.size() == layers_.size()) return;
  reserved_ = batch;
  outputs_.resize(layers_.size());
  Index widest = input_size();
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->Reserve(batch);
    outputs_[i].resize(layers_[i]->output_size(), batch);
    widest = std::max(widest, layers_[i]->output_size());
  }
  adjoint_a_.resize(widest, batch);
  adjoint_b_.resize(widest, batch);
}

ConstMatrixView Sequential::Forward(double t, const double* theta, ConstMatrixView x) {
  batch_ = x.cols();
  if (batch_ > reserved_ || outputs_.size() != layers_.size()) Reserve(batch_);
  const double* in = x.data();
  Index in_rows = x.rows();
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    Layer& layer = *layers_[i];
    MatrixView out(outputs_[i].data(), layer.output_size(), batch_);
    layer.Forward(t, theta + offsets_[i], ConstMatrixView(in, in_rows, batch_), out);
    in = out.data();
    in_rows = layer.output_size();
  }
  return ConstMatrixView(in, in_rows, batch_);
}

void Sequential::Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y_bar,
                          MatrixView x_bar, double* theta_bar) {
  const Index batch = x.cols();
  const double* upstream = y_bar.data();
  double* buffers[2] = {adjoint_a_.data(), adjoint_b_.data()};
  int next = 0;
  for (std::size_t k = layers_.size(); k-- > 0;) {
    Layer& layer = *layers_[k];
    const double* in = k == 0 ? x.data() : outputs_[k - 1].data();
    double* down = k == 0 ? x_bar.data() : buffers[next];
    layer.Backward(t, theta + offsets_[k], ConstMatrixView(in, layer.input_size(), batch),
                   ConstMatrixView(outputs_[k].data(), layer.output_size(), batch),
                   ConstMatrixView(upstream, layer.output_size(), batch),
                   MatrixView(down, layer.input_size(), batch), theta_bar + offsets_[k]);
    upstream = down;
    next = 1 - next;
  }
}

}  // namespace diffeoflow::flows
