// Training throughput of the convolutional ODE-Net (flows/classifier.h) on Fashion-MNIST-sized
// inputs: one forward + gradient of a batch (28 × 28 grey images, 10 classes, random pixels in
// [0, 1]), by default 32 channels, RK4 with 4 steps and the discrete adjoint, as in
// `diffeoflow train --dataset fashion-mnist --model odenet --channels 32 --solver rk4 --steps 4`.
//
//   bench_convnet [--batch B] [--channels C] [--steps S] [--repeat N] [--threads T]...
//                 [--precision single|double] [--convolution auto|onednn|im2col]...
//                 [--readout flatten|pool]
//
// --convolution sets DIFFEOFLOW_CONVOLUTION (flows/conv_onednn.h) for the models it measures; given
// more than once, each thread count is measured with each path in turn, in this process.
// Prints one JSON object with, for each thread count (default 1 and 2), the median wall time of a
// batch, samples/s from it, and the process CPU time per batch (on a shared machine the wall time
// includes waiting for a core; the CPU time does not).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flows/classifier.h"
#include "flows/kernels.h"
#include "solvers/errors.h"

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median wall and CPU time of a batch's loss and gradient, the batches taken in turn.
nlohmann::ordered_json Measure(const diffeoflow::flows::ModelSpec& spec, int threads,
                               const diffeoflow::Matrix (&xs)[2],
                               const std::vector<int> (&labels)[2], int repeat) {
  using namespace diffeoflow;
  using namespace diffeoflow::flows;
  const Index batch = xs[0].cols();
  Classifier model(spec, threads);
  const Vector theta = model.Initialize(1);
  Vector gradient;
  model.Evaluate(theta, xs[1], labels[1].data(), &gradient);  // warm-up, workspaces
  std::vector<double> wall, cpu;
  for (int k = 0; k < repeat; ++k) {
    const Matrix& x = xs[k % 2];
    const auto w0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    model.Evaluate(theta, x, labels[k % 2].data(), &gradient);
    cpu.push_back(1e3 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC);
    wall.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0).count());
  }
  const BatchResult r = model.Evaluate(theta, xs[0], labels[0].data(), &gradient);
  const double ms = Median(wall);
  nlohmann::ordered_json j;
  j["ms_per_batch"] = ms;
  j["samples_per_second"] = 1e3 * static_cast<double>(batch) / ms;
  j["cpu_ms_per_batch"] = Median(cpu);
  j["best_ms_per_batch"] = *std::min_element(wall.begin(), wall.end());
  j["loss"] = r.loss;
  j["gradient_norm"] = gradient.norm();
  j["nfe_forward"] = r.nfe_forward;
  j["nfe_backward"] = r.nfe_backward;
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace diffeoflow;
  using namespace diffeoflow::flows;
  int batch = 128, channels = 32, steps = 4, repeat = 5;
  std::vector<int> threads;
  std::vector<std::string> convolutions;
  Precision precision = Precision::kSingle;
  Readout readout = Readout::kFlatten;  // train's default for images
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    try {
      if (flag == "--precision") {
        precision = ParsePrecision(argv[i + 1]);
        continue;
      }
      if (flag == "--readout") {
        readout = ParseReadout(argv[i + 1]);
        continue;
      }
    } catch (const InputError& e) {
      std::cerr << "bench_convnet: " << e.what() << "\n";
      return 2;
    }
    if (flag == "--convolution") {
      convolutions.push_back(argv[i + 1]);
      continue;
    }
    const int value = std::max(1, std::atoi(argv[i + 1]));
    if (flag == "--batch") batch = value;
    else if (flag == "--channels") channels = value;
    else if (flag == "--steps") steps = value;
    else if (flag == "--repeat") repeat = value;
    else if (flag == "--threads") threads.push_back(value);
    else {
      std::cerr << "bench_convnet: unknown flag " << flag << "\n";
      return 2;
    }
  }
  if (threads.empty()) threads = {1, 2};
  if (convolutions.empty()) convolutions = {""};

  ModelSpec spec;
  spec.kind = ModelKind::kOdeNet;
  spec.input_shape = {1, 28, 28};
  spec.classes = 10;
  spec.width = channels;
  spec.precision = precision;
  spec.readout = readout;
  spec.solver.method = Method::kRk4;
  spec.solver.steps = steps;
  spec.gradient.mode = GradientMode::kDiscrete;

  // Two batches, evaluated in turn as training would see new ones: the field keeps the forward
  // passes of the last solve, and the same batch twice would find them all cached.
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> pixel(0.0, 1.0);
  Matrix xs[2];
  std::vector<int> labels[2];
  for (int k = 0; k < 2; ++k) {
    xs[k].resize(28 * 28, batch);
    for (Index i = 0; i < xs[k].size(); ++i) xs[k].data()[i] = pixel(rng);
    labels[k].resize(static_cast<std::size_t>(batch));
    for (int& l : labels[k]) l = static_cast<int>(rng() % 10);
  }

  nlohmann::ordered_json out;
  out["batch"] = batch;
  out["channels"] = channels;
  out["solver"] = "rk4";
  out["steps"] = steps;
  out["gradient"] = "discrete";
  out["precision"] = PrecisionName(precision);
  out["readout"] = ReadoutName(readout);
  out["instruction_set"] = kernels::InstructionSet();
  for (int t : threads) {
    for (const std::string& convolution : convolutions) {
      if (!convolution.empty()) setenv("DIFFEOFLOW_CONVOLUTION", convolution.c_str(), 1);
      const std::string suffix = convolution.empty() ? "" : "_" + convolution;
      out["threads_" + std::to_string(t) + suffix] = Measure(spec, t, xs, labels, repeat);
    }
  }
  std::cout << out.dump() << std::endl;
  return 0;
}
