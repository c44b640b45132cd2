#include "flows/classifier.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <iterator>
#include <optional>
#include <random>
#include <thread>

#include "flows/conv.h"
#include "flows/conv_field.h"
#include "flows/jacobian_norm.h"
#include "solvers/errors.h"
#include "solvers/kinetic_energy.h"

namespace diffeoflow::flows {

std::string ModelKindName(ModelKind kind) {
  switch (kind) {
    case ModelKind::kOdeNet: return "odenet";
    case ModelKind::kAnode: return "anode";
    case ModelKind::kResNet: return "resnet";
    case ModelKind::kC2: return "c2";
    case ModelKind::kMlp: return "mlp";
  }
  return "?";
}

ModelKind ParseModelKind(const std::string& name, const std::string& argument) {
  for (ModelKind k : {ModelKind::kOdeNet, ModelKind::kAnode, ModelKind::kResNet, ModelKind::kC2,
                      ModelKind::kMlp}) {
    if (name == ModelKindName(k)) return k;
  }
  throw InputError(argument + ": unknown model '" + name +
                   "' (expected odenet, anode, resnet, c2 or mlp)");
}

std::string ReadoutName(Readout readout) {
  switch (readout) {
    case Readout::kPool: return "pool";
    case Readout::kFlatten: return "flatten";
  }
  return "?";
}

Readout ParseReadout(const std::string& name, const std::string& argument) {
  for (Readout r : {Readout::kPool, Readout::kFlatten}) {
    if (name == ReadoutName(r)) return r;
  }
  throw InputError(argument + ": unknown read-out '" + name + "' (expected pool or flatten)");
}

Index ModelSpec::input_size() const {
  Index n = 1;
  for (std::int64_t d : input_shape) n *= d;
  return n;
}

bool ModelSpec::convolutional() const { return kind == ModelKind::kOdeNet && input_shape.size() == 3; }

namespace {
// The down-sampled grid of the convolutional ODE-Net: two 3 × 3 convolutions of stride 2, padding 1.
Index Halved(Index n) { return (n - 1) / 2 + 1; }
Index GroupsFor(Index channels) {
  const Index g = std::min<Index>(32, channels);
  return channels % g == 0 ? g : 1;
}
}  // namespace

Index ModelSpec::state_size() const {
  if (convolutional()) {
    return width * Halved(Halved(input_shape[1])) * Halved(Halved(input_shape[2]));
  }
  switch (kind) {
    case ModelKind::kOdeNet: return width > 0 ? width : input_size();
    case ModelKind::kAnode: return input_size() + augment;
    default: return width;
  }
}

void ModelSpec::Validate() const {
  if (input_shape.empty() || input_size() < 1) throw InputError("model: empty input shape");
  if (classes < 2) throw InputError("model: at least 2 classes are needed");
  if (width < 0 || ((!continuous() || convolutional()) && width < 1)) {
    throw InputError("--channels must be ≥ 1 for " + ModelKindName(kind) + " (got " +
                     std::to_string(width) + ")");
  }
  if (hidden < 1) throw InputError("--hidden must be ≥ 1 (got " + std::to_string(hidden) + ")");
  if (augment < 0) throw InputError("--augment must be ≥ 0 (got " + std::to_string(augment) + ")");
  if (depth < 1) throw InputError("--steps (layers) must be ≥ 1 (got " + std::to_string(depth) + ")");
  if (readout != Readout::kPool && !convolutional()) {
    throw InputError("--readout " + ReadoutName(readout) +
                     " applies to the convolutional ODE-Net (--model odenet on images) only, "
                     "got --model " + ModelKindName(kind) +
                     (input_shape.size() == 3 ? " on images" : " on feature vectors"));
  }
  if (continuous()) {
    solver.Validate();
    gradient.Validate();
  }
  if (!(kinetic_energy >= 0.0) || !std::isfinite(kinetic_energy)) {
    throw InputError("--kinetic-energy must be a finite number ≥ 0 (got " +
                     std::to_string(kinetic_energy) + ")");
  }
  if (kinetic_energy > 0.0 && !continuous()) {
    throw InputError("--kinetic-energy needs a continuous model (odenet or anode), got " +
                     ModelKindName(kind));
  }
  if (!(jacobian_norm >= 0.0) || !std::isfinite(jacobian_norm)) {
    throw InputError("--jacobian-norm must be a finite number ≥ 0 (got " +
                     std::to_string(jacobian_norm) + ")");
  }
  if (jacobian_norm > 0.0 && !continuous()) {
    throw InputError("--jacobian-norm needs a continuous model (odenet or anode), got " +
                     ModelKindName(kind));
  }
}

Classifier::Classifier(const ModelSpec& spec, int threads) : spec_(spec), threads_(threads) {
  spec_.Validate();
  const Index in = spec_.input_size(), W = spec_.state_size(), H = spec_.hidden;
  const bool embed = spec_.kind != ModelKind::kAnode && !(spec_.kind == ModelKind::kOdeNet &&
                                                          spec_.width == 0);
  if (spec_.convolutional()) {
    // Chen et al. (2018)'s ODE-Net: down-sampling convolutions, an ODE block of
    // GroupNorm–ReLU–ConcatConv stages, GroupNorm–ReLU–(pool)–linear read-out.
    const Index C = spec_.width, G = GroupsFor(C);
    const ImageShape image{spec_.input_shape[0], spec_.input_shape[1], spec_.input_shape[2]};
    const Precision p = spec_.precision;
    auto first = std::make_unique<Conv2d>(image, C, 3, 2, 1, false, p);
    const ImageShape half = first->output_shape();
    embed_.Add(std::move(first));
    embed_.Add(std::make_unique<GroupNorm>(half, G));
    embed_.Add(std::make_unique<ActivationLayer>(Activation::kRelu, half.size()));
    auto second = std::make_unique<Conv2d>(half, C, 3, 2, 1, false, p);
    const ImageShape grid = second->output_shape();
    embed_.Add(std::move(second));
    for (int stage = 0; stage < 2; ++stage) {
      field_.Add(std::make_unique<GroupNorm>(grid, G));
      field_.Add(std::make_unique<ActivationLayer>(Activation::kRelu, grid.size()));
      field_.Add(std::make_unique<Conv2d>(grid, C, 3, 1, 1, /*concat_time=*/true, p));
    }
    field_.Add(std::make_unique<GroupNorm>(grid, G));
    // In single precision on oneDNN the field runs as one layer whose activations stay in float
    // in oneDNN's blocked layout (flows/conv_field.h): the same function and θ, without the
    // conversions between layers. The Jacobian-norm term differentiates the separate layers'
    // tangents, so it keeps them.
    if (p == Precision::kSingle && spec_.jacobian_norm == 0.0 &&
        BlockedConvField::Available(C)) {
      blocked_field_.Add(std::make_unique<BlockedConvField>(grid, G, 2));
    }
    readout_.Add(std::make_unique<GroupNorm>(grid, G));
    readout_.Add(std::make_unique<ActivationLayer>(Activation::kRelu, grid.size()));
    if (spec_.readout == Readout::kFlatten) {
      readout_.Add(std::make_unique<Linear>(grid.size(), spec_.classes));
    } else {
      readout_.Add(std::make_unique<GlobalAveragePool>(grid));
      readout_.Add(std::make_unique<Linear>(C, spec_.classes));
    }
  } else {
    if (embed) embed_.Add(std::make_unique<Linear>(in, W));
    readout_.Add(std::make_unique<Linear>(W, spec_.classes));
  }
  if (spec_.continuous() && !spec_.convolutional()) {
    field_ = MlpField(W, {H}, spec_.activation);
  } else if (!spec_.continuous()) {
    for (int l = 0; l < spec_.depth; ++l) {
      Sequential block;
      if (spec_.kind == ModelKind::kMlp) {
        block.Add(std::make_unique<Linear>(W, W));
        block.Add(std::make_unique<ActivationLayer>(spec_.activation, W));
      } else {
        block.Add(std::make_unique<Linear>(W, H));
        block.Add(std::make_unique<ActivationLayer>(spec_.activation, H));
        block.Add(std::make_unique<Linear>(H, W));
      }
      blocks_.push_back(std::move(block));
    }
  }
  if (spec_.convolutional() && threads_ > 1) {
    embed_shards_.assign(static_cast<std::size_t>(threads_), embed_);
  }
  embed_offset_ = 0;
  flow_offset_ = embed_.param_dim();
  Index flow = field_.param_dim();
  for (const Sequential& b : blocks_) flow += b.param_dim();
  readout_offset_ = flow_offset_ + flow;
  param_dim_ = readout_offset_ + readout_.param_dim();
}

Vector Classifier::Initialize(unsigned seed) const {
  std::mt19937 rng(seed);
  Vector theta(param_dim_);
  embed_.Initialize(rng, theta.data() + embed_offset_);
  field_.Initialize(rng, theta.data() + flow_offset_);
  Index offset = flow_offset_;
  for (const Sequential& b : blocks_) {
    b.Initialize(rng, theta.data() + offset);
    offset += b.param_dim();
  }
  readout_.Initialize(rng, theta.data() + readout_offset_);
  return theta;
}

bool Classifier::EmbedsOnShards(Index B) const {
  // A few samples per shard at least: below that a thread costs more than it saves.
  constexpr Index kMinSamplesPerShard = 8;
  return !embed_shards_.empty() &&
         B >= kMinSamplesPerShard * static_cast<Index>(embed_shards_.size());
}

template <typename Job>
void Classifier::ForEmbedShards(Index B, Job&& job) {
  const auto shards = static_cast<Index>(embed_shards_.size());
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(shards));
  for (Index s = shards - 1; s >= 0; --s) {
    const Index first = B * s / shards, count = B * (s + 1) / shards - first;
    auto run = [&job, &errors, s, first, count] {
      try {
        job(s, first, count);
      } catch (...) {
        errors[static_cast<std::size_t>(s)] = std::current_exception();
      }
    };
    if (s > 0) {
      workers.emplace_back(run);
    } else {
      run();
    }
  }
  for (std::thread& w : workers) w.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

Matrix Classifier::Embed(const Vector& theta, const Matrix& x) {
  if (x.rows() != spec_.input_size()) {
    throw InputError("model expects " + std::to_string(spec_.input_size()) +
                     " input features per sample, got " + std::to_string(x.rows()));
  }
  const Index B = x.cols();
  if (EmbedsOnShards(B)) {
    Matrix h(spec_.state_size(), B);
    ForEmbedShards(B, [&](Index s, Index first, Index count) {
      Sequential& net = embed_shards_[static_cast<std::size_t>(s)];
      ConstMatrixView out = net.Forward(0.0, theta.data() + embed_offset_,
                                        ConstMatrixView(x.col(first).data(), x.rows(), count));
      h.middleCols(first, count) = out;
    });
    return h;
  }
  if (embed_.size() > 0) {
    return embed_.Forward(0.0, theta.data() + embed_offset_, ConstMatrixView(x.data(), x.rows(), x.cols()));
  }
  Matrix h = Matrix::Zero(spec_.state_size(), x.cols());
  h.topRows(x.rows()) = x;
  return h;
}

NetworkField& Classifier::FieldFor(Index batch, bool gradient) {
  auto it = fields_.find({batch, gradient});
  if (it == fields_.end()) {
    // Keep one field of each kind (gradient, evaluation): a new batch size replaces the field of
    // its kind. A convolutional field holds its activations for every sample of its batch, so
    // keeping the last partial batch's and the evaluation's fields beside the training batch's
    // (up to four) took the Fashion-MNIST ODE-Net's peak from 0.88 to 1.16 GB after the first
    // epoch, and the later epochs ran slower (docs/flows.md). The price is re-making the fields
    // twice an epoch.
    for (auto kind = fields_.begin(); kind != fields_.end();) {
      kind = kind->first.second == gradient ? fields_.erase(kind) : std::next(kind);
    }
    // Splitting the batch pays once a field evaluation is some tens of µs of work (a convolutional
    // field is about a megaflop a sample).
    const int threads =
        spec_.convolutional() || batch * spec_.hidden >= 16384 ? threads_ : 1;
    CachedField cached;
    cached.field = std::make_unique<NetworkField>(
        blocked_field_.size() > 0 ? blocked_field_ : field_, batch, threads);
    it = fields_.emplace(std::make_pair(batch, gradient), std::move(cached)).first;
  }
  return *it->second.field;
}

JacobianProbe& Classifier::ProbeFor(Index batch, bool gradient) {
  NetworkField& field = FieldFor(batch, gradient);
  std::unique_ptr<JacobianProbe>& probe = fields_.at({batch, gradient}).probe;
  if (!probe) probe = std::make_unique<JacobianProbe>(field);
  return *probe;
}

double Classifier::ReadOut(const Vector& theta, const Matrix& h, const int* labels,
                           double smoothing, Index* correct, Matrix* h_bar, double* theta_bar) {
  const Index B = h.cols();
  const double* th = theta.data() + readout_offset_;
  ConstMatrixView logits = readout_.Forward(0.0, th, ConstMatrixView(h.data(), h.rows(), B));
  if (h_bar == nullptr) return SoftmaxCrossEntropy(logits, labels, nullptr, correct, smoothing);
  Matrix z_bar(spec_.classes, B);
  MatrixView z_bar_view(z_bar.data(), z_bar.rows(), B);
  const double loss = SoftmaxCrossEntropy(logits, labels, &z_bar_view, correct, smoothing);
  h_bar->resize(h.rows(), B);
  readout_.Backward(0.0, th, ConstMatrixView(h.data(), h.rows(), B),
                    ConstMatrixView(z_bar.data(), z_bar.rows(), B),
                    MatrixView(h_bar->data(), h.rows(), B), theta_bar);
  return loss;
}

Matrix DepthRecurrence::Next(const Eigen::Ref<const Matrix>& h,
                             const Eigen::Ref<const Matrix>& h_previous,
                             const Eigen::Ref<const Matrix>& g) const {
  switch (kind_) {
    case ModelKind::kResNet: return h + delta_ * g;
    case ModelKind::kC2: return 2.0 * h - h_previous + delta_ * delta_ * g;
    default: return g;
  }
}

double DepthRecurrence::BlockScale() const {
  switch (kind_) {
    case ModelKind::kResNet: return delta_;
    case ModelKind::kC2: return delta_ * delta_;
    default: return 1.0;
  }
}

void DepthRecurrence::Backward(const Matrix& u, const Matrix& x_bar, Matrix& a_h,
                               Matrix& a_previous) const {
  switch (kind_) {
    case ModelKind::kResNet: a_h += u + x_bar; break;
    case ModelKind::kC2:
      a_h += 2.0 * u + x_bar;
      a_previous -= u;
      break;
    default: a_h += x_bar; break;
  }
}

BatchResult Classifier::Evaluate(const Vector& theta, const Matrix& x, const int* labels,
                                 Vector* gradient, double label_smoothing) {
  if (theta.size() != param_dim_) {
    throw InputError("model has " + std::to_string(param_dim_) + " parameters, θ has " +
                     std::to_string(theta.size()));
  }
  BatchResult result;
  const Index B = x.cols(), W = spec_.state_size();
  Matrix h0 = Embed(theta, x);
  Matrix h0_bar;
  if (gradient != nullptr) gradient->setZero(param_dim_);
  double* grad = gradient != nullptr ? gradient->data() : nullptr;

  if (spec_.continuous()) {
    NetworkField& field = FieldFor(B, gradient != nullptr);
    const Vector theta_f = theta.segment(flow_offset_, field_.param_dim());
    // With the kinetic regulariser the state is [h, e], e(1) = (1/B) Σ_b ∫‖f‖² dt.
    // With the Jacobian-norm regulariser [h, (e,) r], r(1) = (1/B) Σ_b ∫‖ε_bᵀ∂f/∂h‖² dt.
    const double lambda = spec_.kinetic_energy;
    const double lambda_j = spec_.jacobian_norm;
    std::optional<KineticEnergyAugmented> augmented;
    if (lambda > 0.0) augmented.emplace(field, 1.0 / static_cast<double>(B));
    Dynamics& inner = augmented ? static_cast<Dynamics&>(*augmented) : field;
    std::optional<JacobianNormAugmented> jacobian;
    if (lambda_j > 0.0) {
      JacobianProbe& probe = ProbeFor(B, gradient != nullptr);
      std::seed_seq seeds{probe_seed_, static_cast<unsigned>(probe_draw_),
                          static_cast<unsigned>(probe_draw_ >> 32)};
      std::mt19937 rng(seeds);
      probe.DrawProbe(rng);
      jacobian.emplace(inner, probe, 1.0 / static_cast<double>(B));
    }
    Dynamics& dynamics = jacobian ? static_cast<Dynamics&>(*jacobian) : inner;
    const Index n = W * B;
    const Index r_at = n + (augmented ? 1 : 0);
    const Vector h0_flat = Eigen::Map<const Vector>(h0.data(), n);
    Vector z0 = augmented ? augmented->Augment(h0_flat) : h0_flat;
    if (jacobian) z0 = jacobian->Augment(z0);
    const std::vector<double> times = {1.0};
    if (gradient == nullptr) {
      const Solution s = Integrate(dynamics, z0, theta_f, times, spec_.solver);
      result.loss = ReadOut(theta, Eigen::Map<const Matrix>(s.states[0].data(), W, B), labels,
                            label_smoothing, &result.correct, nullptr, nullptr);
      if (lambda > 0.0) {
        result.action = s.states[0][n];
        result.loss += lambda * result.action;
      }
      if (lambda_j > 0.0) {
        result.jacobian_norm = s.states[0][r_at];
        result.loss += lambda_j * result.jacobian_norm;
      }
      result.nfe_forward = s.summary.nfe_forward;
      return result;
    }
    const TrajectoryLoss loss = [&](const std::vector<Vector>& states, std::vector<Vector>& grads) {
      Matrix h_bar;
      double l = ReadOut(theta, Eigen::Map<const Matrix>(states[0].data(), W, B), labels,
                         label_smoothing, &result.correct, &h_bar, grad + readout_offset_);
      grads[0].head(n) = Eigen::Map<const Vector>(h_bar.data(), n);
      if (lambda > 0.0) {
        result.action = states[0][n];
        l += lambda * result.action;
        grads[0][n] = lambda;
      }
      if (lambda_j > 0.0) {
        result.jacobian_norm = states[0][r_at];
        l += lambda_j * result.jacobian_norm;
        grads[0][r_at] = lambda_j;
      }
      return l;
    };
    const GradientResult g =
        Gradient(dynamics, z0, theta_f, times, loss, spec_.solver, spec_.gradient, &workspace_);
    result.loss = g.loss;
    result.nfe_forward = g.summary.nfe_forward;
    result.nfe_backward = g.summary.nfe_backward;
    gradient->segment(flow_offset_, field_.param_dim()) = g.grad_theta;
    h0_bar = Eigen::Map<const Matrix>(g.grad_x0.data(), W, B);
  } else {
    const int L = spec_.depth;
    std::vector<Index> offsets;
    const std::vector<Matrix> hs = LayerStates(theta, std::move(h0), &offsets);
    Matrix hL_bar;
    result.loss = ReadOut(theta, hs.back(), labels, label_smoothing, &result.correct,
                          gradient != nullptr ? &hL_bar : nullptr,
                          grad != nullptr ? grad + readout_offset_ : nullptr);
    if (gradient == nullptr) return result;
    // Back-propagation through the layers; a[l] = ∂L/∂h_l, a_prev for h_{−1} (c2).
    std::vector<Matrix> a(static_cast<std::size_t>(L) + 1, Matrix::Zero(W, B));
    Matrix a_before = Matrix::Zero(W, B);
    a.back() = hL_bar;
    Matrix y_bar(W, B), x_bar(W, B);
    const DepthRecurrence recurrence(spec_.kind, L);
    for (int l = L - 1; l >= 0; --l) {
      const auto k = static_cast<std::size_t>(l);
      Sequential& block = blocks_[k];
      const Matrix& u = a[k + 1];
      y_bar = recurrence.BlockScale() * u;
      block.Backward(l * recurrence.delta(), theta.data() + offsets[k],
                     ConstMatrixView(hs[k].data(), W, B), ConstMatrixView(y_bar.data(), W, B),
                     MatrixView(x_bar.data(), W, B), grad + offsets[k]);
      recurrence.Backward(u, x_bar, a[k], l >= 1 ? a[k - 1] : a_before);
    }
    h0_bar = a[0] + a_before;
  }
  EmbedBackward(theta, x, h0_bar, grad);
  return result;
}

void Classifier::EmbedBackward(const Vector& theta, const Matrix& x, const Matrix& h0_bar,
                               double* grad) {
  if (embed_.size() == 0) return;
  const Index B = x.cols(), W = spec_.state_size(), n = embed_.param_dim();
  if (!EmbedsOnShards(B)) {
    Matrix x_bar(x.rows(), B);
    embed_.Backward(0.0, theta.data() + embed_offset_, ConstMatrixView(x.data(), x.rows(), B),
                    ConstMatrixView(h0_bar.data(), W, B), MatrixView(x_bar.data(), x.rows(), B),
                    grad + embed_offset_);
    return;
  }
  std::vector<Vector> theta_bar(embed_shards_.size(), Vector(n));
  ForEmbedShards(B, [&](Index s, Index first, Index count) {
    Matrix x_bar(x.rows(), count);
    embed_shards_[static_cast<std::size_t>(s)].Backward(
        0.0, theta.data() + embed_offset_, ConstMatrixView(x.col(first).data(), x.rows(), count),
        ConstMatrixView(h0_bar.col(first).data(), W, count),
        MatrixView(x_bar.data(), x.rows(), count), theta_bar[static_cast<std::size_t>(s)].data());
  });
  Eigen::Map<Vector> g(grad + embed_offset_, n);
  g = theta_bar[0];
  for (std::size_t s = 1; s < theta_bar.size(); ++s) g += theta_bar[s];
}

std::vector<double> Classifier::PathTimes(int points) const {
  return UniformTimes(spec_.continuous() ? points - 1 : spec_.depth);
}

std::vector<Matrix> Classifier::Paths(const Vector& theta, const Matrix& x, int points) {
  if (points < 2) throw InputError("paths: at least 2 points are needed");
  const Index B = x.cols(), W = spec_.state_size();
  Matrix h0 = Embed(theta, x);
  std::vector<Matrix> out;
  if (spec_.continuous()) {
    NetworkField& field = FieldFor(B, false);
    const Vector theta_f = theta.segment(flow_offset_, field_.param_dim());
    const Solution s = Integrate(field, Eigen::Map<const Vector>(h0.data(), h0.size()), theta_f,
                                 PathTimes(points), spec_.solver);
    for (const Vector& state : s.states) out.push_back(Eigen::Map<const Matrix>(state.data(), W, B));
    return out;
  }
  return LayerStates(theta, std::move(h0), nullptr);
}

std::vector<Matrix> Classifier::LayerStates(const Vector& theta, Matrix h0,
                                            std::vector<Index>* offsets) {
  const DepthRecurrence recurrence(spec_.kind, spec_.depth);
  const Index B = h0.cols(), W = spec_.state_size();
  std::vector<Matrix> hs;
  hs.reserve(static_cast<std::size_t>(spec_.depth) + 1);
  hs.push_back(std::move(h0));
  Index offset = flow_offset_;
  for (int l = 0; l < spec_.depth; ++l) {
    Sequential& block = blocks_[static_cast<std::size_t>(l)];
    if (offsets != nullptr) offsets->push_back(offset);
    const Matrix& h = hs.back();
    ConstMatrixView g = block.Forward(l * recurrence.delta(), theta.data() + offset,
                                      ConstMatrixView(h.data(), W, B));
    Matrix next = recurrence.Next(h, hs[static_cast<std::size_t>(std::max(l - 1, 0))], g);
    hs.push_back(std::move(next));
    offset += block.param_dim();
  }
  return hs;
}

Matrix Classifier::Logits(const Vector& theta, const Matrix& x, Index batch) {
  Matrix logits(spec_.classes, x.cols());
  for (Index start = 0; start < x.cols(); start += batch) {
    const Index n = std::min(batch, x.cols() - start);
    const Matrix chunk = x.middleCols(start, n);
    const Matrix h = Paths(theta, chunk, 2).back();
    logits.middleCols(start, n) =
        readout_.Forward(0.0, theta.data() + readout_offset_, ConstMatrixView(h.data(), h.rows(), n));
  }
  return logits;
}

std::vector<Classifier::Block> Classifier::Blocks() const {
  std::vector<Block> blocks;
  auto add = [&](const std::string& prefix, const Sequential& net, Index base) {
    for (std::size_t i = 0; i < net.size(); ++i) {
      const auto* linear = dynamic_cast<const Linear*>(&net.layer(i));
      const Index offset = base + net.param_offset(i);
      if (linear == nullptr) {
        const Layer& layer = net.layer(i);
        if (layer.param_dim() > 0) {
          blocks.push_back({prefix + "/" + std::to_string(i) + "/" + layer.name(), offset,
                            layer.param_dim(), 1});
        }
        continue;
      }
      const Index out = linear->output_size(), in = linear->input_size() + linear->concat_time();
      const std::string name = prefix + "/" + std::to_string(i);
      blocks.push_back({name + "/weight", offset, out, in});
      blocks.push_back({name + "/bias", offset + out * in, out, 1});
    }
  };
  add("embed", embed_, embed_offset_);
  if (spec_.continuous()) add("field", field_, flow_offset_);
  Index offset = flow_offset_;
  for (std::size_t l = 0; l < blocks_.size(); ++l) {
    add("block" + std::to_string(l), blocks_[l], offset);
    offset += blocks_[l].param_dim();
  }
  add("readout", readout_, readout_offset_);
  return blocks;
}

}  // namespace diffeoflow::flows
