// Data-parallel training (flows/train.h over mpi/) on this machine, and a model of it to 64 ranks.
//
//   bench_mpi_train_scaling [--dataset fashion-mnist|spirals] [--max-train N] [--batch B]
//                           [--repeat R] [--out DIR]
//
// Runs `mpirun -np 1` and `mpirun -np 2` of `diffeoflow train` (one thread a rank, the same seed),
// alternately R times, and takes each one's best training samples/s (metrics.json; the machine is
// shared, the best run is the least disturbed). Fashion-MNIST (when /usr/share/datasets/fashion-
// mnist holds it): the convolutional ODE-Net of the docs, 32 channels, RK4 4 steps; spirals: a
// wide MLP (--model mlp --hidden 512 --steps 4). Then bench_mpi_allreduce on 2 ranks for the
// gradient's size and 1e3..1e7 doubles, and an Adam step on the gradient's size, which every rank
// repeats (the part that is not split). Prints one JSON object: the measurements, the speed-up,
// and the projection to P = 1..64 ranks described in docs/parallel.md.
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "solvers/optimize.h"

namespace {

namespace fs = std::filesystem;

std::string Run(const std::string& command) {
  const fs::path out = fs::temp_directory_path() / ("bench_mpi_" + std::to_string(::getpid()));
  const int raw = std::system((command + " > " + out.string()).c_str());
  std::stringstream text;
  text << std::ifstream(out).rdbuf();
  fs::remove(out);
  if (!WIFEXITED(raw) || WEXITSTATUS(raw) != 0) {
    std::cerr << "bench_mpi_train_scaling: failed: " << command << "\n";
    std::exit(1);
  }
  return text.str();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string dataset = fs::exists("/usr/share/datasets/fashion-mnist") ? "fashion-mnist"
                                                                        : "spirals";
  long max_train = 4096;
  int batch = 128, repeat = 2;
  fs::path dir = fs::temp_directory_path() / ("bench_mpi_train_" + std::to_string(::getpid()));
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--dataset") {
      dataset = value;
    } else if (flag == "--max-train") {
      max_train = std::stol(value);
    } else if (flag == "--batch") {
      batch = std::stoi(value);
    } else if (flag == "--repeat") {
      repeat = std::max(1, std::stoi(value));
    } else if (flag == "--out") {
      dir = value;
    } else {
      std::cerr << "bench_mpi_train_scaling: unknown flag " << flag << "\n";
      return 2;
    }
  }
  const std::string mpiexec = std::string(DIFFEOFLOW_MPIEXEC_NP) + " ";
  const std::string model =
      dataset == "fashion-mnist"
          ? "--dataset fashion-mnist --model odenet --channels 32 --solver rk4 --steps 4 "
            "--max-train " + std::to_string(max_train) + " --max-test 256"
          : "--dataset spirals --samples " + std::to_string(max_train * 5 / 4) +
                " --model mlp --hidden 512 --steps 4";
  const std::string train = std::string(DIFFEOFLOW_CLI) + " train " + model +
                            " --epochs 1 --batch " + std::to_string(batch) +
                            " --threads 1 --seed 1 --quiet --out ";

  std::vector<double> sps[2];
  long parameters = 0;
  for (int k = 0; k < repeat; ++k) {
    for (int p = 1; p <= 2; ++p) {
      const fs::path out = dir / ("ranks" + std::to_string(p));
      Run(mpiexec + std::to_string(p) + " " + train + out.string());
      std::ifstream in(out / "metrics.json");
      const auto m = nlohmann::json::parse(in);
      sps[p - 1].push_back(m["samples_per_second"].get<double>());
      parameters = m["parameters"].get<long>();
    }
  }
  fs::remove_all(dir);
  const double best1 = *std::max_element(sps[0].begin(), sps[0].end());
  const double best2 = *std::max_element(sps[1].begin(), sps[1].end());

  const std::string sizes = "1000,10000,100000,1000000,10000000," + std::to_string(parameters);
  const auto allreduce = nlohmann::json::parse(
      Run(mpiexec + "2 " + DIFFEOFLOW_BENCH_ALLREDUCE + " --sizes " + sizes));
  double gradient_allreduce = 0.0;
  for (const auto& row : allreduce["sizes"]) {
    if (row["doubles"].get<long>() == parameters) gradient_allreduce = row["seconds"];
  }
  // Latency and bandwidth of the loopback from the smallest and largest size (T = α + bytes/β).
  const auto& rows = allreduce["sizes"];
  const double t_small = rows[0]["seconds"], b_small = rows[0]["bytes"];
  const double t_large = rows[4]["seconds"], b_large = rows[4]["bytes"];
  const double beta = (b_large - b_small) / std::max(t_large - t_small, 1e-12);
  const double alpha = std::max(t_small - b_small / beta, 0.0);

  // The Adam step on the whole gradient, repeated on every rank.
  const long n = parameters;
  diffeoflow::Vector g = diffeoflow::Vector::Constant(n, 1e-3), m = diffeoflow::Vector::Zero(n),
                     v = diffeoflow::Vector::Zero(n), theta = diffeoflow::Vector::Zero(n);
  std::vector<double> step_seconds;
  for (int k = 1; k <= 51; ++k) {
    const auto start = std::chrono::steady_clock::now();
    diffeoflow::AdamStep(diffeoflow::AdamOptions{}, k, 1e-3, g, m, v, theta);
    step_seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  const double t_step = Median(step_seconds);

  // The model: a batch of B samples costs T₁ = B / samples/s on one rank, of which the Adam
  // step t_step is repeated on every rank and the rest splits; P ranks add a ring allreduce of
  // the gradient, 2(P−1)α + 2(P−1)/P · 8N/β, with α and β from the loopback fit (a network is
  // slower: give also 10 GbE, α = 20 µs, β = 1.25 GB/s).
  const double t1 = batch / best1;
  const double bytes = 8.0 * static_cast<double>(n);
  nlohmann::ordered_json projection = nlohmann::json::array();
  for (int p : {1, 2, 4, 8, 16, 32, 64}) {
    const double split = (t1 - t_step) / p;
    const auto ring = [&](double a, double b) {
      return p == 1 ? 0.0 : 2.0 * (p - 1) * a + 2.0 * (p - 1) / p * bytes / b;
    };
    const double loop = split + t_step + ring(alpha, beta);
    const double net = split + t_step + ring(20e-6, 1.25e9);
    projection.push_back({{"ranks", p},
                          {"samples_per_rank", static_cast<double>(batch) / p},
                          {"compute_seconds", split},
                          {"allreduce_seconds_loopback", ring(alpha, beta)},
                          {"allreduce_seconds_10GbE", ring(20e-6, 1.25e9)},
                          {"efficiency_loopback", t1 / (p * loop)},
                          {"efficiency_10GbE", t1 / (p * net)}});
  }

  nlohmann::ordered_json out;
  out["benchmark"] = "mpi_train_scaling";
  out["dataset"] = dataset;
  out["model"] = model;
  out["batch"] = batch;
  out["parameters"] = parameters;
  out["gradient_bytes"] = bytes;
  out["samples_per_second_1_rank"] = sps[0];
  out["samples_per_second_2_ranks"] = sps[1];
  out["speedup_2_ranks_best"] = best2 / best1;
  out["speedup_2_ranks_median"] = Median(sps[1]) / Median(sps[0]);
  out["allreduce_gradient_seconds_2_ranks"] = gradient_allreduce;
  out["loopback_latency_seconds"] = alpha;
  out["loopback_bytes_per_second"] = beta;
  out["adam_step_seconds"] = t_step;
  out["batch_seconds_1_rank"] = t1;
  out["allreduce"] = allreduce["sizes"];
  out["projection"] = projection;
  std::cout << out.dump(2) << std::endl;
  return 0;
}
