// Classifiers whose hidden layers are a flow of the features:
//
//   odenet  h(0) = E x (a linear embedding; none when width = 0), dh/dt = g(t, h; θ) on [0, 1]
//           (an MLP field, Chen et al. 2018), logits = R h(1).  Gradients by the engine's
//           discrete or continuous adjoint (solvers/integrate.h).
//   anode   the same with h(0) = [x; 0_K]: K extra zero dimensions and no embedding (Dupont et al.
//           2019, augmented neural ODEs), so the flow is not confined to a homeomorphism of the
//           input space.
//   resnet  h_{l+1} = h_l + Δ g_l(h_l), Δ = 1/L: residual blocks, forward Euler steps of an ODE
//           whose field changes per layer (a C¹ network in the depth variable; He et al. 2016).
//   c2      h_{l+1} = 2h_l − h_{l−1} + Δ² g_l(h_l), h_{−1} = h_0: second-order differences of
//           d²h/dt² = g (a C² network; zero initial velocity).
//   mlp     h_{l+1} = σ(W_l h_l + b_l): no skip connection (C⁰).
// Each g / g_l is Linear(W → H), σ, Linear(H → W) (time-concatenated at the input for odenet /
// anode). The read-out R is linear; the loss the mean softmax cross-entropy. θ is one contiguous
// vector: [embedding | flow | read-out].
// On images (input_shape {channels, height, width}) odenet is Chen et al.'s convolutional ODE-Net
// with C = width channels: Conv 3×3 stride 2 → GroupNorm → ReLU → Conv 3×3 stride 2 (a grid of
// ¼ the size), the field GN → ReLU → ConcatConv 3×3 → GN → ReLU → ConcatConv 3×3 → GN, and the
// read-out GN → ReLU → global average pool → Linear(C → classes) (Readout::kPool, Chen et al.'s),
// or GN → ReLU → Linear(C·H·W → classes) on every feature of the grid (Readout::kFlatten). Other
// models take the flattened image.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flows/conv.h"
#include "flows/field.h"
#include "flows/jacobian_norm.h"
#include "flows/network.h"
#include "solvers/integrate.h"

namespace diffeoflow::flows {

enum class ModelKind { kOdeNet, kAnode, kResNet, kC2, kMlp };
std::string ModelKindName(ModelKind kind);
ModelKind ParseModelKind(const std::string& name, const std::string& argument = "--model");

// What the convolutional ODE-Net's linear read-out sees after its GroupNorm and ReLU: the mean
// of each channel over the grid (C features; kPool) or the whole grid (C·H·W features, so that
// where a feature lies counts; kFlatten).
enum class Readout { kPool, kFlatten };
std::string ReadoutName(Readout readout);
Readout ParseReadout(const std::string& name, const std::string& argument = "--readout");

struct ModelSpec {
  ModelKind kind = ModelKind::kOdeNet;
  std::vector<std::int64_t> input_shape = {2};  // of one sample
  int classes = 2;
  int width = 16;    // features of the hidden flow (odenet: 0 = no embedding, the input itself)
  int hidden = 32;   // hidden units of each field / block
  int augment = 0;   // anode: extra zero dimensions
  int depth = 10;    // resnet, c2, mlp: number of layers L
  Activation activation = Activation::kTanh;
  // The arithmetic of the convolutions' GEMMs (convolutional ODE-Net only; flows/conv.h).
  Precision precision = Precision::kSingle;
  // The read-out of the convolutional ODE-Net (the other models' is Linear(W → classes)). kPool
  // here, the only value the other models accept; `train` picks kFlatten for images.
  Readout readout = Readout::kPool;
  SolverOptions solver;      // odenet, anode: integration of the ODE block on [0, 1]
  GradientOptions gradient;  // odenet, anode
  // odenet, anode: λ₁ of the kinetic-energy regulariser of RNODE (Finlay et al. 2020), which adds
  // λ₁ · (1/B) Σ_b ∫₀¹ ‖f(t, h_b)‖² dt to the loss of a batch of B, integrated with the flow as an
  // extra state (solvers/kinetic_energy.h). 0: none.
  double kinetic_energy = 0.0;
  // odenet, anode (MLP and convolutional fields): λ₂ of RNODE's Jacobian-norm regulariser,
  // λ₂ · (1/B) Σ_b ∫₀¹ ‖ε_bᵀ ∂f/∂h_b‖² dt with a Rademacher probe ε (Hutchinson's estimate of the
  // Frobenius norm), drawn anew for every training batch (Classifier::UseProbe); integrated as an
  // extra state with an exact gradient (flows/jacobian_norm.h). 0: none.
  double jacobian_norm = 0.0;

  Index input_size() const;
  Index state_size() const;  // features of the hidden flow h
  bool continuous() const { return kind == ModelKind::kOdeNet || kind == ModelKind::kAnode; }
  // odenet on images (input_shape = {channels, height, width}): the convolutional ODE-Net.
  bool convolutional() const;
  void Validate() const;     // InputError naming the flag
};

// The layer recurrence of the discrete-depth models (resnet, c2, mlp above) with Δ = 1/L:
//   h_{l+1} = a h_l + b h_{l−1} + c g_l,
//   (a, b, c) = (1, 0, Δ) resnet, (2, −1, Δ²) c2, (0, 0, 1) mlp,
// g_l being block l applied to h_l and h_{−1} = h_0. It is linear in (h_l, h_{l−1}, g_l), so
// tangents (forward mode, flows/geometry.cc) follow the same rule, and its transpose is the
// backward pass (Classifier::Evaluate).
class DepthRecurrence {
 public:
  DepthRecurrence(ModelKind kind, int depth) : kind_(kind), delta_(1.0 / depth) {}
  double delta() const { return delta_; }  // Δ; block l runs at depth t = l Δ
  // h_{l+1} from h_l, h_{l−1} and g_l (h_previous is read by c2 only).
  Matrix Next(const Eigen::Ref<const Matrix>& h, const Eigen::Ref<const Matrix>& h_previous,
              const Eigen::Ref<const Matrix>& g) const;
  // c = ∂h_{l+1}/∂g_l: block l's output adjoint is c u for u = ∂L/∂h_{l+1}.
  double BlockScale() const;
  // For u = ∂L/∂h_{l+1} and x̄ = the input adjoint block l returned for c u: adds a u + x̄ into
  // a_h (∂L/∂h_l) and b u into a_previous (∂L/∂h_{l−1}).
  void Backward(const Matrix& u, const Matrix& x_bar, Matrix& a_h, Matrix& a_previous) const;

 private:
  ModelKind kind_;
  double delta_;
};

struct BatchResult {
  double loss = 0.0;            // cross-entropy, plus λ₁ · action with the kinetic regulariser
  double action = 0.0;          // (1/B) Σ_b ∫‖f‖² dt when ModelSpec::kinetic_energy > 0
  double jacobian_norm = 0.0;   // (1/B) Σ_b ∫‖ε_bᵀ∂f/∂h‖² dt when ModelSpec::jacobian_norm > 0
  Index correct = 0;
  long nfe_forward = 0;
  long nfe_backward = 0;
};

class Classifier {
 public:
  explicit Classifier(const ModelSpec& spec, int threads = 1);
  const ModelSpec& spec() const { return spec_; }
  Index param_dim() const { return param_dim_; }
  Vector Initialize(unsigned seed) const;

  // Mean cross-entropy of the batch (x: input_size × B) and the number of correct arg-max
  // predictions; the gradient with respect to θ when `gradient` is non-null. `label_smoothing` ε
  // trains towards (1 − ε) onehot + ε / classes (SoftmaxCrossEntropy); 0 is the plain loss.
  BatchResult Evaluate(const Vector& theta, const Matrix& x, const int* labels, Vector* gradient,
                       double label_smoothing = 0.0);
  // The Jacobian-norm probe (ModelSpec::jacobian_norm) that Evaluate uses until the next call:
  // draw `draw` of the sequence `seed` (a function of the two only, so a resumed run draws the
  // same probes). Before any call: draw 0 of seed 0.
  void UseProbe(unsigned seed, unsigned long draw) {
    probe_seed_ = seed;
    probe_draw_ = draw;
  }
  // Logits (classes × N), in batches of at most `batch` samples.
  Matrix Logits(const Vector& theta, const Matrix& x, Index batch = 1024);
  // The hidden state h at `points` equally spaced depths t ∈ [0, 1] (odenet, anode) or after every
  // layer (resnet, c2, mlp: L + 1 states); each state_size × N.
  std::vector<Matrix> Paths(const Vector& theta, const Matrix& x, int points = 21);
  std::vector<double> PathTimes(int points = 21) const;

  // The parts of θ, for the model file: name → (offset, rows, cols) of each weight and bias.
  struct Block {
    std::string name;
    Index offset, rows, cols;
  };
  std::vector<Block> Blocks() const;

  // The parts of the feature map x ↦ h, for its geometry (flows/geometry.h): the embedding (empty
  // when h(0) is the input or its zero padding), the ODE block's field (odenet, anode), the layers
  // (resnet, c2, mlp), and the offsets of their parameters in θ (blocks follow one another).
  const Sequential& embedding() const { return embed_; }
  const Sequential& flow_field() const { return field_; }
  const std::vector<Sequential>& layer_blocks() const { return blocks_; }
  Index embedding_offset() const { return embed_offset_; }
  Index flow_offset() const { return flow_offset_; }

 private:
  Matrix Embed(const Vector& theta, const Matrix& x);
  // h_0 … h_L of a discrete-depth model from h_0 (DepthRecurrence); `offsets`, when non-null,
  // receives the offset in θ of each block.
  std::vector<Matrix> LayerStates(const Vector& theta, Matrix h0, std::vector<Index>* offsets);
  // Whether Embed splits a batch of B over embed_shards_ (EmbedBackward follows the same split).
  bool EmbedsOnShards(Index B) const;
  // The embedding's backward pass after Embed of the same x: writes its θ̄ into grad.
  void EmbedBackward(const Vector& theta, const Matrix& x, const Matrix& h0_bar, double* grad);
  // Runs job(shard, first sample, samples) for the embedding's shards of a batch of B, shard 0
  // on the calling thread and the others on their own threads.
  template <typename Job>
  void ForEmbedShards(Index B, Job&& job);
  // The field for a batch size; for gradients it keeps a forward pass per stage of the method.
  NetworkField& FieldFor(Index batch, bool gradient);
  // The Jacobian-norm passes over that field, made on first use and kept with it.
  JacobianProbe& ProbeFor(Index batch, bool gradient);
  // Read-out and loss of the final state; writes ∂L/∂h into h_bar and the read-out's θ̄ into
  // theta_bar when they are non-null.
  double ReadOut(const Vector& theta, const Matrix& h, const int* labels, double smoothing,
                 Index* correct, Matrix* h_bar, double* theta_bar);

  ModelSpec spec_;
  int threads_;
  Sequential embed_;               // empty when the flow starts at the input (or its padding)
  // Convolutional embedding with threads: one copy per shard of the batch (their workspaces keep
  // the forward pass for EmbedBackward); empty otherwise.
  std::vector<Sequential> embed_shards_;
  Sequential field_;               // odenet, anode
  // The convolutional field as one BlockedConvField, when it can run so (single precision on
  // oneDNN, no Jacobian-norm term); the fields are made of it instead of field_. Empty otherwise.
  Sequential blocked_field_;
  std::vector<Sequential> blocks_; // resnet, c2, mlp
  Sequential readout_;
  Index embed_offset_ = 0, flow_offset_ = 0, readout_offset_ = 0, param_dim_ = 0;
  struct CachedField {
    std::unique_ptr<NetworkField> field;
    std::unique_ptr<JacobianProbe> probe;  // with ModelSpec::jacobian_norm > 0, on first use
  };
  std::map<std::pair<Index, bool>, CachedField> fields_;  // (batch, gradient)
  GradientWorkspace workspace_;  // the discrete adjoint's tape, kept from batch to batch
  unsigned probe_seed_ = 0;  // the Jacobian-norm probe: draw probe_draw_ of seed probe_seed_
  unsigned long probe_draw_ = 0;
};

}  // namespace diffeoflow::flows
