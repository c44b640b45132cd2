// The Workers of this process (solvers/workers.h): MPI's when the program runs under mpirun, the
// serial ones otherwise. Only apps/ and the MPI folder (mpi/) know which.
//
// Under mpirun (Open MPI's OMPI_COMM_WORLD_SIZE, PMIx's PMIX_RANK or Hydra's PMI_RANK in the
// environment) the first call initialises MPI (MPI_THREAD_FUNNELED: only the main thread calls
// MPI) and returns MpiWorkers over MPI_COMM_WORLD; otherwise it returns Serial() and never touches
// MPI, so `diffeoflow` without mpirun is exactly the serial program.
//
// How the process ends (apps/main.cc): FinishWorkers after a subcommand returned (MPI_Finalize
// when MPI was started), FailWorkers after it threw. A rank that throws while the others wait in
// a collective would leave them waiting forever, so FailWorkers on a run of several ranks calls
// MPI_Abort(MPI_COMM_WORLD, status): mpirun stops every rank and exits with that status (2 for an
// InputError), after the failing rank printed its one-line error.
#pragma once

#include <string>

#include "solvers/workers.h"

namespace diffeoflow::app {

// Started on first use; the same object for the life of the process.
Workers& ProcessWorkers();

// True when this process was started by mpirun (whether or not MPI is initialised yet).
bool UnderMpirun();

// " (rank r of P)" when MPI runs more than one rank, else "": appended to error lines.
std::string RankNote();

// Returns `status` after finalising MPI if ProcessWorkers started it.
int FinishWorkers(int status);

// After an error on this rank: with more than one rank, MPI_Abort with `status` (does not
// return); otherwise FinishWorkers(status).
int FailWorkers(int status);

}  // namespace diffeoflow::app
