// MPI_Allreduce (MPI_SUM over doubles, through MpiWorkers::Sum, mpi/mpi_workers.h) on this
// machine: the reduction every data-parallel training step does on its gradient. Run under mpirun:
//
//   mpirun -np 2 bench_mpi_allreduce [--sizes N1,N2,...] [--repeat R]
//
// Default sizes 1e3, 1e4, 1e5, 1e6, 1e7 doubles. Rank 0 prints one JSON object: the ranks, and for
// every size the median seconds of one Sum over R repetitions (after one warm-up), the bytes a
// rank contributes and the algorithmic bandwidth bytes / seconds.
#include <mpi.h>

#include <algorithm>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mpi/mpi_workers.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  std::vector<long> sizes = {1000, 10000, 100000, 1000000, 10000000};
  int repeat = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--repeat") {
      repeat = std::max(1, std::stoi(argv[i + 1]));
    } else if (flag == "--sizes") {
      sizes.clear();
      std::stringstream list(argv[i + 1]);
      for (std::string item; std::getline(list, item, ',');) sizes.push_back(std::stol(item));
    } else {
      std::cerr << "bench_mpi_allreduce: unknown flag " << flag << "\n";
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
  }
  diffeoflow::mpi::MpiWorkers workers;
  nlohmann::ordered_json out;
  out["benchmark"] = "mpi_allreduce";
  out["ranks"] = workers.count();
  nlohmann::ordered_json rows = nlohmann::json::array();
  for (long n : sizes) {
    std::vector<double> data(static_cast<std::size_t>(n), 1.0 + workers.rank());
    // Fewer repetitions of the large sizes keep the run short.
    const int r = n >= 10000000 ? std::max(3, repeat / 4) : repeat;
    std::vector<double> seconds;
    for (int k = 0; k <= r; ++k) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double start = MPI_Wtime();
      workers.Sum(data.data(), data.size());
      double elapsed = MPI_Wtime() - start;
      // The slowest rank's time is the step's.
      MPI_Allreduce(MPI_IN_PLACE, &elapsed, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (k > 0) seconds.push_back(elapsed);
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    const double bytes = 8.0 * static_cast<double>(n);
    rows.push_back({{"doubles", n}, {"bytes", bytes}, {"seconds", median},
                    {"bytes_per_second", bytes / median}, {"repeat", r}});
  }
  out["sizes"] = rows;
  if (workers.rank() == 0) std::cout << out.dump(2) << std::endl;
  MPI_Finalize();
  return 0;
}
