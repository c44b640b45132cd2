#include "apps/process_workers.h"

namespace diffeoflow::app {

// Serial until the MPI implementation lands (issue 17).
Workers& ProcessWorkers() { return Serial(); }

}  // namespace diffeoflow::app
