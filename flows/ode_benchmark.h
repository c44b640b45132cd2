// The solver benchmark behind `diffeoflow bench ode` (../shared/CLI.md): forward solve + gradient of
//     dx/dt = W2 tanh(W1 [x; t] + b1) + b2,  t ∈ [0, 1],   L = Σ x(1)²
// for a batch of B points in D dimensions with H hidden units, timed over repeats.
// Weights and the initial batch can come from an HDF5 file in PyTorch nn.Linear layout
// (l1/weight H×(D+1), l1/bias H, l2/weight D×H, l2/bias D, x0 B×D), and the result (loss, x1 and
// the gradients under grad/, same layout) can be written for comparison with another
// implementation of the same field.
#pragma once

#include <string>
#include <vector>

#include "solvers/integrate.h"

namespace diffeoflow::flows {

struct OdeBenchmarkOptions {
  int dim = 2;
  int hidden = 64;
  int batch = 512;
  SolverOptions solver;      // method, steps, rtol, atol (t0 = 0, integrated to t = 1)
  GradientOptions gradient;  // mode, adjoint tolerances, seminorm
  int repeat = 5;
  int threads = 1;
  unsigned seed = 1;
  std::string weights;  // HDF5 file with l1/…, l2/…, x0; empty: random (seeded)
  std::string out;      // HDF5 result file; empty: none

  void Validate() const;  // InputError naming the flag
};

struct OdeBenchmarkResult {
  double ms_per_iteration = 0.0;  // median over repeats of forward + gradient
  std::vector<double> ms_all;
  // Median process CPU time per iteration (all threads): on a loaded machine, the wall time
  // includes waiting for a core and this does not.
  double cpu_ms_per_iteration = 0.0;
  long nfe_forward = 0;
  long nfe_backward = 0;
  double loss = 0.0;
  GradientResult gradient;  // of the last repeat
  std::string instruction_set;
  std::string Json() const;  // one JSON object
};

OdeBenchmarkResult RunOdeBenchmark(const OdeBenchmarkOptions& options);

}  // namespace diffeoflow::flows
