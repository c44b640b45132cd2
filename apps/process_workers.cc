#include "apps/process_workers.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "mpi/mpi_workers.h"

namespace diffeoflow::app {
namespace {

std::unique_ptr<mpi::MpiWorkers>& MpiInstance() {
  static std::unique_ptr<mpi::MpiWorkers> workers;
  return workers;
}

// At exit from any path that did not go through FinishWorkers (std::exit in a library, say).
void FinalizeAtExit() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

}  // namespace

bool UnderMpirun() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

Workers& ProcessWorkers() {
  if (!UnderMpirun()) return Serial();
  std::unique_ptr<mpi::MpiWorkers>& workers = MpiInstance();
  if (!workers) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      throw std::runtime_error("MPI_Init_thread failed");
    }
    std::atexit(FinalizeAtExit);
    workers = std::make_unique<mpi::MpiWorkers>();
  }
  return *workers;
}

std::string RankNote() {
  const std::unique_ptr<mpi::MpiWorkers>& workers = MpiInstance();
  if (!workers || workers->count() < 2) return "";
  return " (rank " + std::to_string(workers->rank()) + " of " + std::to_string(workers->count()) +
         ")";
}

int FinishWorkers(int status) {
  if (MpiInstance()) {
    std::fflush(stdout);
    std::fflush(stderr);
    FinalizeAtExit();
  }
  return status;
}

int FailWorkers(int status) {
  const std::unique_ptr<mpi::MpiWorkers>& workers = MpiInstance();
  if (workers && workers->count() > 1) {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
  }
  return FinishWorkers(status);
}

}  // namespace diffeoflow::app
