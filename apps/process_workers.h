// The Workers of this process (solvers/workers.h): MPI's when the program runs under mpirun, the
// serial ones otherwise. Only apps/ and the MPI folder know which.
#pragma once

#include "solvers/workers.h"

namespace diffeoflow::app {

// Started on first use; the same object for the life of the process.
Workers& ProcessWorkers();

}  // namespace diffeoflow::app
