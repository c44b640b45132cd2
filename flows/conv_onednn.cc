#include "flows/conv_onednn.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include <oneapi/dnnl/dnnl.hpp>

#include "flows/kernels.h"
#include "solvers/errors.h"

namespace diffeoflow::flows {

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

// Where element (n, c, h, w) of a 4-D f32 tensor lives in a blocked oneDNN layout whose only inner
// block, if any, is over channels (nchw, nhwc, nChw8c, nChw16c).
struct Layout {
  Index n = 0, c = 0, h = 0, w = 0;  // strides (c: between channel blocks)
  Index block = 1;
  Index padded_channels = 0;  // channels rounded up to the block; the extra ones must hold zeros
  // Where channel ic of sample in starts; pixel (ih, iw) is at + ih·h + iw·w.
  Index channel(Index in, Index ic) const { return in * n + (ic / block) * c + ic % block; }
};

// The double batch (features × batch: a sample's channels × rows × columns) and an f32 tensor in
// `layout`: f(c, the batch's column of channel c of sample n, where that channel starts in the
// tensor) for every sample n and channel c.
template <typename Double, typename Float, typename Visit>
void ForEachChannel(const Layout& layout, Index channels, Index pixels, Index samples,
                    Double* batch, Float* tensor, Visit f) {
  for (Index n = 0; n < samples; ++n) {
    for (Index c = 0; c < channels; ++c) {
      f(c, batch + (n * channels + c) * pixels, tensor + layout.channel(n, c));
    }
  }
}

// True when the layout keeps the pixels of one channel block contiguous (nChw8c, nChw16c): pixel
// p of channel c0 + cc is at p · block + cc from the block's start.
bool PixelsContiguous(const Layout& layout, Index width) {
  return layout.block > 1 && layout.w == layout.block && layout.h == width * layout.block;
}

// The batch rounded to float into the tensor (zeros in the channels the layout pads); adds Σ_b of
// it into `sum` (pixels × channels) when given.
void ToTensor(const Layout& layout, Index channels, Index height, Index width,
              const double* batch, Index samples, float* tensor, double* sum = nullptr) {
  const Index pixels = height * width;
  if (PixelsContiguous(layout, width)) {
    // A channel block at a time, transposed in registers (the per-channel order below writes
    // one float a cache line).
    const Index block = layout.block;
    for (Index n = 0; n < samples; ++n) {
      for (Index c0 = 0; c0 < layout.padded_channels; c0 += block) {
        float* out = tensor + layout.channel(n, c0);
        const Index live = std::clamp<Index>(channels - c0, 0, block);
        const double* in = batch + (n * channels + c0) * pixels;
        kernels::PackChannels(in, live, pixels, block, out);
        if (sum == nullptr) continue;
        for (Index cc = 0; cc < live; ++cc) {
          double* s = sum + (c0 + cc) * pixels;
          const double* column = in + cc * pixels;
          for (Index p = 0; p < pixels; ++p) s[p] += column[p];
        }
      }
    }
    return;
  }
  for (Index n = 0; n < samples; ++n) {
    for (Index c = channels; c < layout.padded_channels; ++c) {
      float* base = tensor + layout.channel(n, c);
      for (Index h = 0; h < height; ++h) {
        for (Index w = 0; w < width; ++w) base[h * layout.h + w * layout.w] = 0.0F;
      }
    }
  }
  ForEachChannel(layout, channels, pixels, samples, batch, tensor,
                 [&](Index c, const double* column, float* base) {
                   for (Index h = 0; h < height; ++h) {
                     float* row = base + h * layout.h;
                     const double* values = column + h * width;
                     for (Index w = 0; w < width; ++w) {
                       row[w * layout.w] = static_cast<float>(values[w]);
                     }
                   }
                   if (sum == nullptr) return;
                   for (Index p = 0; p < pixels; ++p) sum[c * pixels + p] += column[p];
                 });
}

// The tensor into the batch, plus `add` (pixels × channels) when given.
void FromTensor(const Layout& layout, Index channels, Index height, Index width,
                const float* tensor, Index samples, double* batch, const double* add = nullptr) {
  const Index pixels = height * width;
  if (PixelsContiguous(layout, width)) {
    const Index block = layout.block;
    for (Index n = 0; n < samples; ++n) {
      for (Index c0 = 0; c0 < channels; c0 += block) {
        const float* in = tensor + layout.channel(n, c0);
        const Index live = std::min(block, channels - c0);
        double* out = batch + (n * channels + c0) * pixels;
        kernels::UnpackChannels(in, live, pixels, block, out);
        if (add == nullptr) continue;
        for (Index cc = 0; cc < live; ++cc) {
          double* column = out + cc * pixels;
          const double* a = add + (c0 + cc) * pixels;
          for (Index p = 0; p < pixels; ++p) column[p] += a[p];
        }
      }
    }
    return;
  }
  ForEachChannel(layout, channels, pixels, samples, batch, tensor,
                 [&](Index c, double* column, const float* base) {
                   for (Index h = 0; h < height; ++h) {
                     const float* row = base + h * layout.h;
                     double* values = column + h * width;
                     for (Index w = 0; w < width; ++w) {
                       values[w] = static_cast<double>(row[w * layout.w]);
                     }
                   }
                   if (add == nullptr) return;
                   for (Index p = 0; p < pixels; ++p) column[p] += add[c * pixels + p];
                 });
}

Layout LayoutOf(const memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  if (d.format_kind != dnnl_blocked || d.ndims != 4 || d.offset0 != 0 || b.inner_nblks > 1 ||
      (b.inner_nblks == 1 && b.inner_idxs[0] != 1)) {
    throw std::runtime_error("oneDNN chose an activation layout this converter does not handle");
  }
  return {b.strides[0], b.strides[1], b.strides[2], b.strides[3],
          b.inner_nblks == 1 ? b.inner_blks[0] : 1, d.padded_dims[1]};
}

// A memory of `md` without a buffer: the layer binds its shared ones before each call.
memory Unbound(const memory::desc& md, const dnnl::engine& engine) {
  return memory(md, engine, DNNL_MEMORY_NONE);
}

// Runs `primitive` with `args` through the C API: the C++ execute() builds a vector per call.
void Run(const dnnl::primitive& primitive, const dnnl::stream& stream,
         const std::vector<dnnl_exec_arg_t>& args) {
  const dnnl_status_t status = dnnl_primitive_execute(
      primitive.get(), stream.get(), static_cast<int>(args.size()), args.data());
  if (status != dnnl_success) {
    throw std::runtime_error("oneDNN: a convolution primitive failed (status " + std::to_string(status) + ")");
  }
}

// Keeps oneDNN's OpenMP team to the calling thread for the scope (restores the caller's setting).
class OnCallingThread {
 public:
  OnCallingThread() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OnCallingThread() { omp_set_num_threads(saved_); }
  OnCallingThread(const OnCallingThread&) = delete;
  OnCallingThread& operator=(const OnCallingThread&) = delete;

 private:
  int saved_;
};

}  // namespace

struct OneDnnConvolution::Plan {
  Index batch = 0;
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data backward_data;
  dnnl::convolution_backward_weights backward_weights;
  // Weights: θ's (without the time channel) in oihw, then in each primitive's layout.
  memory user_weights, weights, data_weights, user_diff_weights, diff_weights;
  dnnl::reorder to_weights, to_data_weights, from_diff_weights;
  bool reorder_weights = false, reorder_data_weights = false, reorder_diff_weights = false;
  // Activations in the layouts the primitives chose, bound to the layer's buffers by Bind;
  // `weights_src` and `weights_diff_dst` are the forward's src and backward-data's diff_dst when the
  // layouts agree.
  memory src, dst, diff_dst, diff_src, weights_src, weights_diff_dst;
  memory scratchpad;
  std::vector<dnnl_exec_arg_t> forward_args, data_args, weights_args;
  std::vector<dnnl_exec_arg_t> to_weights_args, to_data_weights_args, from_diff_weights_args;

  // block: 0 lets oneDNN choose the activation layouts; 8 or 16 asks for nChw8c / nChw16c.
  Plan(const ConvolutionGeometry& g, Index n, Index block);
};

OneDnnConvolution::Plan::Plan(const ConvolutionGeometry& g, Index n, Index block) : batch(n) {
  const memory::dims src_dims = {n, g.in_channels, g.in_height, g.in_width};
  const memory::dims dst_dims = {n, g.out_channels, g.out_height, g.out_width};
  const memory::dims weight_dims = {g.out_channels, g.in_channels, g.kernel, g.kernel};
  const memory::dims strides = {g.stride, g.stride};
  const memory::dims padding_l = {g.padding, g.padding};
  // The bottom/right padding that gives the output size (PyTorch drops what does not fit).
  const memory::dims padding_r = {
      (g.out_height - 1) * g.stride + g.kernel - g.in_height - g.padding,
      (g.out_width - 1) * g.stride + g.kernel - g.in_width - g.padding};
  const Tag activations = block == 8 ? Tag::nChw8c : block == 16 ? Tag::nChw16c : Tag::any;
  const memory::desc src_md(src_dims, Type::f32, activations);
  const memory::desc dst_md(dst_dims, Type::f32, activations);
  const memory::desc any_weights(weight_dims, Type::f32, Tag::any);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto algorithm = dnnl::algorithm::convolution_direct;

  const dnnl::convolution_forward::primitive_desc forward_pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algorithm, src_md,
                                      any_weights, dst_md, strides, padding_l, padding_r),
      attr, engine);
  const dnnl::convolution_backward_data::primitive_desc data_pd(
      dnnl::convolution_backward_data::desc(algorithm, src_md, any_weights, dst_md, strides,
                                            padding_l, padding_r),
      attr, engine, forward_pd);
  const dnnl::convolution_backward_weights::primitive_desc weights_pd(
      dnnl::convolution_backward_weights::desc(algorithm, src_md, any_weights, dst_md, strides,
                                               padding_l, padding_r),
      attr, engine, forward_pd);
  forward = dnnl::convolution_forward(forward_pd);
  backward_data = dnnl::convolution_backward_data(data_pd);
  backward_weights = dnnl::convolution_backward_weights(weights_pd);

  src = Unbound(forward_pd.src_desc(), engine);
  dst = Unbound(forward_pd.dst_desc(), engine);
  diff_dst = Unbound(data_pd.diff_dst_desc(), engine);
  diff_src = Unbound(data_pd.diff_src_desc(), engine);
  weights_src = weights_pd.src_desc() == forward_pd.src_desc()
                    ? src
                    : Unbound(weights_pd.src_desc(), engine);
  weights_diff_dst = weights_pd.diff_dst_desc() == data_pd.diff_dst_desc()
                         ? diff_dst
                         : Unbound(weights_pd.diff_dst_desc(), engine);

  const memory::desc plain_weights(weight_dims, Type::f32, Tag::oihw);
  user_weights = memory(plain_weights, engine);
  user_diff_weights = memory(plain_weights, engine);
  reorder_weights = forward_pd.weights_desc() != plain_weights;
  weights = reorder_weights ? memory(forward_pd.weights_desc(), engine) : user_weights;
  reorder_data_weights = data_pd.weights_desc() != plain_weights;
  data_weights = !reorder_data_weights ? user_weights
                 : data_pd.weights_desc() == forward_pd.weights_desc()
                     ? weights
                     : memory(data_pd.weights_desc(), engine);
  // Only reorder once when backward-data reads the forward's layout.
  if (reorder_data_weights && data_weights.get() == weights.get()) reorder_data_weights = false;
  reorder_diff_weights = weights_pd.diff_weights_desc() != plain_weights;
  diff_weights =
      reorder_diff_weights ? memory(weights_pd.diff_weights_desc(), engine) : user_diff_weights;
  if (reorder_weights) {
    to_weights = dnnl::reorder(user_weights, weights);
    to_weights_args = {{DNNL_ARG_FROM, user_weights.get()}, {DNNL_ARG_TO, weights.get()}};
  }
  if (reorder_data_weights) {
    to_data_weights = dnnl::reorder(user_weights, data_weights);
    to_data_weights_args = {{DNNL_ARG_FROM, user_weights.get()},
                            {DNNL_ARG_TO, data_weights.get()}};
  }
  if (reorder_diff_weights) {
    from_diff_weights = dnnl::reorder(diff_weights, user_diff_weights);
    from_diff_weights_args = {{DNNL_ARG_FROM, diff_weights.get()},
                              {DNNL_ARG_TO, user_diff_weights.get()}};
  }

  const std::size_t scratch =
      std::max({forward_pd.scratchpad_desc().get_size(), data_pd.scratchpad_desc().get_size(),
                weights_pd.scratchpad_desc().get_size(), std::size_t{1}});
  scratchpad = memory(memory::desc({static_cast<memory::dim>(scratch)}, Type::u8, Tag::x), engine);

  forward_args = {{DNNL_ARG_SRC, src.get()},
                  {DNNL_ARG_WEIGHTS, weights.get()},
                  {DNNL_ARG_DST, dst.get()},
                  {DNNL_ARG_SCRATCHPAD, scratchpad.get()}};
  data_args = {{DNNL_ARG_DIFF_DST, diff_dst.get()},
               {DNNL_ARG_WEIGHTS, data_weights.get()},
               {DNNL_ARG_DIFF_SRC, diff_src.get()},
               {DNNL_ARG_SCRATCHPAD, scratchpad.get()}};
  weights_args = {{DNNL_ARG_SRC, weights_src.get()},
                  {DNNL_ARG_DIFF_DST, weights_diff_dst.get()},
                  {DNNL_ARG_DIFF_WEIGHTS, diff_weights.get()},
                  {DNNL_ARG_SCRATCHPAD, scratchpad.get()}};
}

bool OneDnnConvolution::Selected(Index in_channels) {
  const char* value = std::getenv("DIFFEOFLOW_CONVOLUTION");
  const std::string path = value == nullptr ? "" : value;
  if (path.empty() || path == "auto") return in_channels >= kMinChannels;
  if (path == "onednn") return true;
  if (path == "im2col") return false;
  throw InputError("DIFFEOFLOW_CONVOLUTION: unknown convolution path '" + path +
                   "' (expected auto, onednn or im2col)");
}

OneDnnConvolution::OneDnnConvolution(const ConvolutionGeometry& geometry) : geometry_(geometry) {
  const ConvolutionGeometry& g = geometry_;
  const Index P = g.out_height * g.out_width, taps = g.kernel * g.kernel;
  inside_.resize(static_cast<std::size_t>(taps * P));
  for (Index u = 0; u < g.kernel; ++u) {
    for (Index v = 0; v < g.kernel; ++v) {
      for (Index i = 0; i < g.out_height; ++i) {
        for (Index j = 0; j < g.out_width; ++j) {
          const Index row = g.stride * i - g.padding + u, col = g.stride * j - g.padding + v;
          inside_[static_cast<std::size_t>((u * g.kernel + v) * P + i * g.out_width + j)] =
              row >= 0 && row < g.in_height && col >= 0 && col < g.in_width;
        }
      }
    }
  }
  shift_.resize(P, g.out_channels);
}

OneDnnConvolution::OneDnnConvolution(const ConvolutionGeometry& geometry, Index block)
    : OneDnnConvolution(geometry) {
  if ((block != 8 && block != 16) || geometry.in_channels % block != 0 ||
      geometry.out_channels % block != 0) {
    throw InputError("OneDnnConvolution: a blocked layout needs a block of 8 or 16 channels "
                     "dividing both channel counts (got block " + std::to_string(block) + ", " +
                     std::to_string(geometry.in_channels) + " → " +
                     std::to_string(geometry.out_channels) + " channels)");
  }
  block_ = block;
  shift_blocked_.resize(geometry.out_channels * geometry.out_height * geometry.out_width);
  sum_blocked_.resize(shift_blocked_.size());
}

OneDnnConvolution::OneDnnConvolution(const OneDnnConvolution& other)
    : geometry_(other.geometry_), block_(other.block_), inside_(other.inside_),
      shift_(other.shift_), shift_blocked_(other.shift_blocked_),
      sum_blocked_(other.sum_blocked_) {
  for (const auto& plan : other.plans_) Reserve(plan->batch);
}

OneDnnConvolution& OneDnnConvolution::operator=(const OneDnnConvolution& other) {
  if (this != &other) {
    OneDnnConvolution copy(other);
    std::swap(geometry_, copy.geometry_);
    std::swap(block_, copy.block_);
    std::swap(shift_blocked_, copy.shift_blocked_);
    std::swap(sum_blocked_, copy.sum_blocked_);
    std::swap(plans_, copy.plans_);
    std::swap(inside_, copy.inside_);
    std::swap(shift_, copy.shift_);
    std::swap(buffers_, copy.buffers_);
    input_held_ = nullptr;
  }
  return *this;
}

OneDnnConvolution::~OneDnnConvolution() = default;

void OneDnnConvolution::Reserve(Index batch) {
  if (batch > 0) PlanFor(batch);
}

OneDnnConvolution::Plan& OneDnnConvolution::PlanFor(Index batch) {
  for (const auto& plan : plans_) {
    if (plan->batch == batch) return *plan;
  }
  // oneDNN splits the work by the thread count at creation: the same as at execution.
  const OnCallingThread single_thread;
  input_held_ = nullptr;  // the buffers may grow below
  plans_.push_back(std::make_unique<Plan>(geometry_, batch, block_));
  Plan& plan = *plans_.back();
  if (block_ != 0) {
    // The blocked calls bind the caller's tensors; every primitive must read them as they are.
    if (plan.weights_src.get() != plan.src.get() ||
        plan.weights_diff_dst.get() != plan.diff_dst.get() ||
        plan.diff_src.get_desc() != plan.src.get_desc()) {
      throw std::runtime_error("oneDNN: the backward primitives did not keep the blocked layout");
    }
    return plan;
  }
  const auto grow = [](Buffer& buffer, const memory& m) {
    const auto floats = static_cast<Index>(m.get_desc().get_size() / sizeof(float));
    if (buffer.size() < floats) buffer.resize(floats);
  };
  grow(buffers_[kInput], plan.src);
  grow(buffers_[kInput], plan.weights_src);
  grow(buffers_[kOutput], plan.dst);
  grow(buffers_[kOutput], plan.diff_src);
  grow(buffers_[kOutputAdjoint], plan.diff_dst);
  if (plan.weights_diff_dst.get() != plan.diff_dst.get()) {
    grow(buffers_[kSecondOutputAdjoint], plan.weights_diff_dst);
  }
  return plan;
}

void OneDnnConvolution::Bind(Plan& plan) {
  plan.src.set_data_handle(buffers_[kInput].data());
  plan.weights_src.set_data_handle(buffers_[kInput].data());
  plan.dst.set_data_handle(buffers_[kOutput].data());
  plan.diff_src.set_data_handle(buffers_[kOutput].data());
  plan.diff_dst.set_data_handle(buffers_[kOutputAdjoint].data());
  if (plan.weights_diff_dst.get() != plan.diff_dst.get()) {
    plan.weights_diff_dst.set_data_handle(buffers_[kSecondOutputAdjoint].data());
  }
}

void OneDnnConvolution::LoadWeights(Plan& plan, const double* theta) {
  const ConvolutionGeometry& g = geometry_;
  const Index taps = g.kernel * g.kernel, per_output = (g.in_channels + g.concat_time) * taps;
  auto* w = static_cast<float*>(plan.user_weights.get_data_handle());
  for (Index o = 0; o < g.out_channels; ++o) {
    for (Index k = 0; k < g.in_channels * taps; ++k) {
      *w++ = static_cast<float>(theta[o * per_output + k]);
    }
  }
  if (plan.reorder_weights) Run(plan.to_weights, plan.stream, plan.to_weights_args);
  if (plan.reorder_data_weights) Run(plan.to_data_weights, plan.stream, plan.to_data_weights_args);
}

OneDnnConvolution::Plan& OneDnnConvolution::Prepare(Index batch, const double* theta) {
  Plan& plan = PlanFor(batch);
  Bind(plan);
  LoadWeights(plan, theta);
  return plan;
}

void OneDnnConvolution::Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) {
  if (block_ != 0) {
    throw std::logic_error("OneDnnConvolution::Forward: a blocked object (use ForwardBlocked)");
  }
  const ConvolutionGeometry& g = geometry_;
  const Index batch = x.cols();
  const OnCallingThread single_thread;
  Plan& plan = Prepare(batch, theta);
  ComputeShift(t, theta);
  ToTensor(LayoutOf(plan.src.get_desc()), g.in_channels, g.in_height, g.in_width, x.data(),
           batch, static_cast<float*>(plan.src.get_data_handle()));
  input_held_ = x.data();
  input_held_batch_ = batch;
  Run(plan.forward, plan.stream, plan.forward_args);
  plan.stream.wait();
  FromTensor(LayoutOf(plan.dst.get_desc()), g.out_channels, g.out_height, g.out_width,
             static_cast<const float*>(plan.dst.get_data_handle()), batch, y.data(),
             shift_.data());
}

void OneDnnConvolution::Backward(double t, const double* theta, ConstMatrixView x,
                                 ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) {
  if (block_ != 0) {
    throw std::logic_error("OneDnnConvolution::Backward: a blocked object (use BackwardBlocked)");
  }
  const ConvolutionGeometry& g = geometry_;
  const Index batch = x.cols();
  const OnCallingThread single_thread;
  Plan& plan = Prepare(batch, theta);
  // ȳ into both backward primitives' layouts (once when they agree); S(p, o) = Σ_b ȳ[b, o, p]
  // in shift_.
  shift_.setZero();
  ToTensor(LayoutOf(plan.diff_dst.get_desc()), g.out_channels, g.out_height, g.out_width,
           y_bar.data(), batch, static_cast<float*>(plan.diff_dst.get_data_handle()),
           shift_.data());
  if (plan.weights_diff_dst.get() != plan.diff_dst.get()) {
    ToTensor(LayoutOf(plan.weights_diff_dst.get_desc()), g.out_channels, g.out_height,
             g.out_width, y_bar.data(), batch,
             static_cast<float*>(plan.weights_diff_dst.get_data_handle()));
  }
  // The weight gradient reads x from the input buffer, which still holds it when this Backward
  // follows the Forward of x in the same layout.
  if (x.data() != input_held_ || batch != input_held_batch_ ||
      plan.weights_src.get_desc() != plan.src.get_desc()) {
    ToTensor(LayoutOf(plan.weights_src.get_desc()), g.in_channels, g.in_height, g.in_width,
             x.data(), batch, static_cast<float*>(plan.weights_src.get_data_handle()));
    input_held_ = nullptr;
  }
  Run(plan.backward_data, plan.stream, plan.data_args);
  Run(plan.backward_weights, plan.stream, plan.weights_args);
  if (plan.reorder_diff_weights) {
    Run(plan.from_diff_weights, plan.stream, plan.from_diff_weights_args);
  }
  plan.stream.wait();

  FromTensor(LayoutOf(plan.diff_src.get_desc()), g.in_channels, g.in_height, g.in_width,
             static_cast<const float*>(plan.diff_src.get_data_handle()), batch, x_bar.data());
  WriteThetaBar(t, plan, theta_bar);
}

void OneDnnConvolution::ComputeShift(double t, const double* theta) {
  const ConvolutionGeometry& g = geometry_;
  const Index P = g.out_height * g.out_width, taps = g.kernel * g.kernel;
  // shift(p, o) = b_o + t M[o, p].
  const Index per_output = (g.in_channels + g.concat_time) * taps;
  const double* bias = theta + g.out_channels * per_output;
  for (Index o = 0; o < g.out_channels; ++o) {
    shift_.col(o).setConstant(bias[o]);
    if (!g.concat_time) continue;
    const double* w_time = theta + o * per_output + g.in_channels * taps;
    for (Index tap = 0; tap < taps; ++tap) {
      const unsigned char* inside = inside_.data() + tap * P;
      const double w = t * w_time[tap];
      for (Index p = 0; p < P; ++p) shift_(p, o) += inside[p] ? w : 0.0;
    }
  }
  if (block_ == 0) return;
  for (Index o = 0; o < g.out_channels; ++o) {
    const Index start = (o / block_) * P * block_ + o % block_;
    for (Index p = 0; p < P; ++p) {
      shift_blocked_[start + p * block_] = static_cast<float>(shift_(p, o));
    }
  }
}

void OneDnnConvolution::WriteThetaBar(double t, const Plan& plan, double* theta_bar) const {
  const ConvolutionGeometry& g = geometry_;
  const Index P = g.out_height * g.out_width, taps = g.kernel * g.kernel;
  const Index per_output = (g.in_channels + g.concat_time) * taps;
  const auto* w_bar = static_cast<const float*>(plan.user_diff_weights.get_data_handle());
  double* bias_bar = theta_bar + g.out_channels * per_output;
  for (Index o = 0; o < g.out_channels; ++o) {
    double* row = theta_bar + o * per_output;
    for (Index k = 0; k < g.in_channels * taps; ++k) row[k] = static_cast<double>(*w_bar++);
    bias_bar[o] = shift_.col(o).sum();
    if (!g.concat_time) continue;
    for (Index tap = 0; tap < taps; ++tap) {
      const unsigned char* inside = inside_.data() + tap * P;
      double sum = 0.0;
      for (Index p = 0; p < P; ++p) sum += inside[p] ? shift_(p, o) : 0.0;
      row[g.in_channels * taps + tap] = t * sum;
    }
  }
}

void OneDnnConvolution::ForwardBlocked(double t, const double* theta, const float* src,
                                       Index batch, float* dst) {
  if (block_ == 0) throw std::logic_error("OneDnnConvolution::ForwardBlocked: not blocked");
  const OnCallingThread single_thread;
  Plan& plan = PlanFor(batch);
  input_held_ = nullptr;
  LoadWeights(plan, theta);
  ComputeShift(t, theta);
  plan.src.set_data_handle(const_cast<float*>(src));
  plan.dst.set_data_handle(dst);
  Run(plan.forward, plan.stream, plan.forward_args);
  plan.stream.wait();
  const Index per_sample = shift_blocked_.size();
  const float* shift = shift_blocked_.data();
  for (Index n = 0; n < batch; ++n) {
    float* out = dst + n * per_sample;
    for (Index i = 0; i < per_sample; ++i) out[i] += shift[i];
  }
}

void OneDnnConvolution::BackwardBlocked(double t, const double* theta, const float* src,
                                        const float* diff_dst, Index batch, float* diff_src,
                                        double* theta_bar) {
  if (block_ == 0) throw std::logic_error("OneDnnConvolution::BackwardBlocked: not blocked");
  const ConvolutionGeometry& g = geometry_;
  const Index P = g.out_height * g.out_width;
  const OnCallingThread single_thread;
  Plan& plan = PlanFor(batch);
  input_held_ = nullptr;
  LoadWeights(plan, theta);
  plan.src.set_data_handle(const_cast<float*>(src));
  plan.diff_dst.set_data_handle(const_cast<float*>(diff_dst));
  plan.diff_src.set_data_handle(diff_src);
  Run(plan.backward_data, plan.stream, plan.data_args);
  Run(plan.backward_weights, plan.stream, plan.weights_args);
  if (plan.reorder_diff_weights) {
    Run(plan.from_diff_weights, plan.stream, plan.from_diff_weights_args);
  }
  // S = Σ_b ȳ, in the blocked order and then as shift_(p, o).
  const Index per_sample = sum_blocked_.size();
  sum_blocked_.setZero();
  double* sum = sum_blocked_.data();
  for (Index n = 0; n < batch; ++n) {
    const float* in = diff_dst + n * per_sample;
    for (Index i = 0; i < per_sample; ++i) sum[i] += static_cast<double>(in[i]);
  }
  for (Index o = 0; o < g.out_channels; ++o) {
    const Index start = (o / block_) * P * block_ + o % block_;
    for (Index p = 0; p < P; ++p) shift_(p, o) = sum[start + p * block_];
  }
  plan.stream.wait();
  WriteThetaBar(t, plan, theta_bar);
}

}  // namespace diffeoflow::flows
