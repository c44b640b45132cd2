// One Conv2d's forward and backward (x̄ and θ̄) at the convolutional ODE-Net's Fashion-MNIST shapes
// (flows/classifier.cc: 1×28×28 → 32×14×14 and 32×14×14 → 32×7×7 with stride 2, the field's
// ConcatConv2d 32×7×7 → 32×7×7), in single precision on the hand-written im2col path and on oneDNN,
// and in double (im2col), all in this process, the paths taking turns call by call.
//
//   bench_conv_layer [batch=128] [repeat=30]
//
// Prints one JSON object: for each shape and path the median milliseconds of a forward, of a
// backward and of both, and the ratio im2col / oneDNN of the medians (> 1: oneDNN is faster).
// Training with two threads gives each thread half the batch: try batch=64 as well.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_args.h"
#include "flows/conv.h"

namespace {

using namespace diffeoflow;
using namespace diffeoflow::flows;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

struct Path {
  std::string name;
  Precision precision;
  const char* convolution;  // DIFFEOFLOW_CONVOLUTION when the layer is made
};

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  if (!bench::ParseKeyValues(argc, argv, "bench_conv_layer", args)) return 2;
  const Index batch = std::max<Index>(1, static_cast<Index>(bench::Number(args, "batch", 128)));
  const int repeat = std::max(1, static_cast<int>(bench::Number(args, "repeat", 30)));

  struct Shape {
    std::string name;
    ImageShape in;
    Index stride;
    bool time;
  };
  const Shape shapes[] = {{"embed_1x28x28_s2", {1, 28, 28}, 2, false},
                          {"embed_32x14x14_s2", {32, 14, 14}, 2, false},
                          {"field_32x7x7_time", {32, 7, 7}, 1, true}};
  const Path paths[] = {{"single_im2col", Precision::kSingle, "im2col"},
                        {"single_onednn", Precision::kSingle, "onednn"},
                        {"double_im2col", Precision::kDouble, "im2col"}};

  nlohmann::ordered_json out;
  out["batch"] = batch;
  out["repeat"] = repeat;
  out["channels"] = 32;
  std::mt19937 rng(1);
  std::normal_distribution<double> normal;
  for (const Shape& s : shapes) {
    std::vector<Conv2d> layers;
    for (const Path& p : paths) {
      setenv("DIFFEOFLOW_CONVOLUTION", p.convolution, 1);
      layers.emplace_back(s.in, 32, 3, s.stride, 1, s.time, p.precision);
      layers.back().Reserve(batch);
    }
    unsetenv("DIFFEOFLOW_CONVOLUTION");
    const Index n_in = s.in.size(), n_out = layers[0].output_size();
    Vector theta(layers[0].param_dim()), theta_bar(layers[0].param_dim());
    Matrix x(n_in, batch), y(n_out, batch), y_bar(n_out, batch), x_bar(n_in, batch);
    for (Vector* v : {&theta}) {
      for (Index i = 0; i < v->size(); ++i) (*v)[i] = 0.1 * normal(rng);
    }
    for (Matrix* m : {&x, &y_bar}) {
      for (Index i = 0; i < m->size(); ++i) m->data()[i] = normal(rng);
    }
    std::vector<std::vector<double>> forward(layers.size()), backward(layers.size());
    for (int k = -1; k < repeat; ++k) {  // k = −1: warm-up
      for (std::size_t l = 0; l < layers.size(); ++l) {
        const auto t0 = std::chrono::steady_clock::now();
        layers[l].Forward(0.5, theta.data(), ConstMatrixView(x.data(), n_in, batch),
                          MatrixView(y.data(), n_out, batch));
        const double f = MillisecondsSince(t0);
        const auto t1 = std::chrono::steady_clock::now();
        layers[l].Backward(0.5, theta.data(), ConstMatrixView(x.data(), n_in, batch),
                           ConstMatrixView(y.data(), n_out, batch),
                           ConstMatrixView(y_bar.data(), n_out, batch),
                           MatrixView(x_bar.data(), n_in, batch), theta_bar.data());
        const double b = MillisecondsSince(t1);
        if (k >= 0) {
          forward[l].push_back(f);
          backward[l].push_back(b);
        }
      }
    }
    nlohmann::ordered_json j;
    std::vector<double> total(layers.size());
    for (std::size_t l = 0; l < layers.size(); ++l) {
      std::vector<double> sum(forward[l].size());
      for (std::size_t k = 0; k < sum.size(); ++k) sum[k] = forward[l][k] + backward[l][k];
      total[l] = Median(sum);
      j[paths[l].name] = {{"forward_ms", Median(forward[l])},
                          {"backward_ms", Median(backward[l])},
                          {"forward_backward_ms", total[l]},
                          {"on_onednn", layers[l].on_onednn()}};
    }
    j["im2col_over_onednn"] = total[0] / total[1];
    out[s.name] = j;
  }
  std::cout << out.dump() << std::endl;
  return 0;
}
