// A recorded trajectory: states at output times, with the shape of one state, units and the options
// of the solve. Stored in HDF5 by the schema in docs/hdf5-schema.md:
//   /times                 (T)            float64, attribute units
//   /states                (T, *state_shape) float64, chunked + gzip, attribute units
//   /parameters            (P)            float64, optional
//   /options               group, one attribute per option (strings or numbers)
//   /  attributes: format = "diffeoflow-trajectory", version = 1, kind
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "solvers/dynamics.h"

namespace diffeoflow {

struct Trajectory {
  std::string kind = "flow";       // what moved: "flow", "landmarks", "velocity", ...
  std::vector<double> times;
  std::vector<Vector> states;      // each of size product(state_shape)
  std::vector<std::uint64_t> state_shape;  // shape of one state, row-major; empty = {n}
  std::string time_units = "1";
  std::string state_units = "1";
  Vector parameters;               // optional (size 0 = not stored)
  std::map<std::string, std::string> options;  // stored as string attributes of /options
};

// Writes atomically (temporary + rename). Throws InputError for inconsistent sizes or an
// unwritable path.
void WriteTrajectory(const std::string& path, const Trajectory& trajectory);
// Throws InputError naming the file when it is missing, not HDF5, or not a trajectory.
Trajectory ReadTrajectory(const std::string& path);

}  // namespace diffeoflow
