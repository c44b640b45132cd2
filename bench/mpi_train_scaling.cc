// Data-parallel training (flows/train.h over mpi/) on this machine, and a model of it to 64 ranks.
//
//   bench_mpi_train_scaling [--max-train N] [--batch B] [--repeat R]
//
// The convolutional ODE-Net of docs/flows.md on the first N Fashion-MNIST training images (the
// Debian package dataset-fashion-mnist; default N = 2048): 32 channels, RK4 with 4 steps, Adam,
// one epoch, one thread a rank, as `diffeoflow train --dataset fashion-mnist --threads 1` trains
// it. The program starts itself under `mpirun -np 1` and `mpirun -np 2`, alternately R times
// (default 2); under mpirun it trains and rank 0 reports the epoch's training samples/s (wall
// clock) and every rank's CPU seconds of the epoch. On a machine shared with other work the wall
// clock measures the share of the cores the ranks got; the CPU time does not: with Open MPI's
// busy polling a rank's CPU time is its computing plus its waiting in the reductions, so
//   cpu speed-up = CPU(1 rank) / max over ranks CPU(2 ranks)
// is what the wall-clock speed-up is when every rank has a core of its own (a lower bound: a rank
// also spins while its partner is descheduled). Then bench_mpi_allreduce on 2 ranks for the
// gradient's size and 1e3..1e7 doubles, and an Adam step on the gradient's size, which every rank
// repeats (the part that is not split). Prints one JSON object: the measurements, the speed-ups,
// and the projection to P = 1..64 ranks described in docs/parallel.md.
#include <mpi.h>
#include <sys/wait.h>
#include <time.h>

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

#include "flows/classifier.h"
#include "flows/datasets.h"
#include "flows/train.h"
#include "mpi/mpi_workers.h"
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

double CpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Under mpirun: one epoch of data-parallel training; rank 0 prints {samples_per_second,
// cpu_seconds: [one a rank], parameters}.
int Worker(int argc, char** argv, long max_train, int batch) {
  using namespace diffeoflow;
  using namespace diffeoflow::flows;
  MPI_Init(&argc, &argv);
  mpi::MpiWorkers workers;
  const Dataset train = LoadFashionMnist(DefaultFashionMnistDir(), true, max_train);
  ModelSpec spec;
  spec.kind = ModelKind::kOdeNet;
  spec.input_shape = train.sample_shape;
  spec.classes = train.classes;
  spec.width = 32;
  spec.hidden = 64;
  spec.solver.method = Method::kRk4;
  spec.solver.steps = 4;
  spec.depth = 4;
  Classifier model(spec, 1);
  Vector theta = model.Initialize(1);
  TrainOptions o;
  o.epochs = 1;
  o.batch = batch;
  o.learning_rate = 0.02;
  o.max_eval_train = 1;
  o.workers = &workers;
  double cpu = 0.0, samples_per_second = 0.0;
  const double cpu_start = CpuSeconds();
  o.progress = [&](const EpochReport& r) {
    cpu = CpuSeconds() - cpu_start;
    samples_per_second = r.samples_per_second;
  };
  Train(model, theta, train, Dataset{}, o);
  std::vector<double> all(static_cast<std::size_t>(workers.count()));
  MPI_Gather(&cpu, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  if (workers.rank() == 0) {
    nlohmann::json j;
    j["samples_per_second"] = samples_per_second;
    j["cpu_seconds"] = all;
    j["parameters"] = theta.size();
    std::cout << j.dump() << std::endl;
  }
  MPI_Finalize();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  long max_train = 2048;
  int batch = 128, repeat = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--max-train") {
      max_train = std::stol(value);
    } else if (flag == "--batch") {
      batch = std::stoi(value);
    } else if (flag == "--repeat") {
      repeat = std::max(1, std::stoi(value));
    } else {
      std::cerr << "bench_mpi_train_scaling: unknown flag " << flag << "\n";
      return 2;
    }
  }
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) return Worker(argc, argv, max_train, batch);
  const std::string mpiexec = std::string(DIFFEOFLOW_MPIEXEC_NP) + " ";
  std::string self = fs::canonical("/proc/self/exe").string();
  for (int i = 1; i < argc; ++i) self += std::string(" ") + argv[i];

  std::vector<double> sps[2], cpu1, cpu2;
  long parameters = 0;
  for (int k = 0; k < repeat; ++k) {
    for (int p = 1; p <= 2; ++p) {
      const auto m = nlohmann::json::parse(Run(mpiexec + std::to_string(p) + " " + self));
      sps[p - 1].push_back(m["samples_per_second"].get<double>());
      const std::vector<double> cpu = m["cpu_seconds"];
      (p == 1 ? cpu1 : cpu2).push_back(*std::max_element(cpu.begin(), cpu.end()));
      parameters = m["parameters"].get<long>();
    }
  }
  const double best1 = *std::max_element(sps[0].begin(), sps[0].end());
  const double best2 = *std::max_element(sps[1].begin(), sps[1].end());

  const std::string sizes = "1000,10000,100000,1000000,10000000," + std::to_string(parameters);
  const auto allreduce = nlohmann::json::parse(
      Run(mpiexec + "2 " + DIFFEOFLOW_BENCH_ALLREDUCE + " --sizes " + sizes));
  double gradient_allreduce = 0.0;
  for (const auto& row : allreduce["sizes"]) {
    if (row["doubles"].get<long>() == parameters) gradient_allreduce = row["seconds"];
  }
  // The loopback's latency α: the time of the smallest sum (8 kB, an upper bound); its bandwidth
  // β: bytes over time of the largest (80 MB).
  const auto& rows = allreduce["sizes"];
  const double alpha = rows[0]["seconds"];
  const double beta = rows[4]["bytes"].get<double>() / rows[4]["seconds"].get<double>();

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
  // The batch time of one rank with a core of its own: its epoch's CPU time over its batches.
  const double batches = std::ceil(static_cast<double>(max_train) / batch);
  const double t1 = Median(cpu1) / batches;
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
  out["model"] = "fashion-mnist odenet, 32 channels, rk4 4 steps, adam, 1 epoch, 1 thread a rank";
  out["train_samples"] = max_train;
  out["batch"] = batch;
  out["parameters"] = parameters;
  out["gradient_bytes"] = bytes;
  out["samples_per_second_1_rank"] = sps[0];
  out["samples_per_second_2_ranks"] = sps[1];
  out["speedup_2_ranks_best"] = best2 / best1;
  out["speedup_2_ranks_median"] = Median(sps[1]) / Median(sps[0]);
  out["epoch_cpu_seconds_1_rank"] = cpu1;
  out["epoch_cpu_seconds_2_ranks_slowest"] = cpu2;
  out["cpu_speedup_2_ranks"] = Median(cpu1) / Median(cpu2);
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
