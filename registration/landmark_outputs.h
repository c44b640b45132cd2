// The files of a landmark match (registration/landmark_matching.h) and its landmark files: the
// metrics.json object, trajectory.h5, and landmarks as CSV. The summary figure is
// WriteLandmarkSummaryFigure in registration/outputs/summary_figure.h.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "registration/landmark_matching.h"

namespace diffeoflow::registration {

// metrics.json: method, residual_rms, kinetic_energy, iterations, wall_seconds, parameters, and
// data_term, velocity_norm_per_time, kernel_width, sigma, steps, landmarks, dim, evaluations,
// loss_history, residual_history, termination, converged.
nlohmann::json LandmarkMetricsJson(const LandmarkMatchingResult& result);

// trajectory.h5 (kind "landmarks"): /times (T+1), /states (T+1, 2, N, d) with [positions, momenta],
// /positions and /momenta (T+1, N, d), /source and /target (N, d), /parameters, /options.
void WriteLandmarkTrajectory(const std::string& path, const LandmarkMatchingResult& result);

// CSV: one landmark a row, 2 or 3 comma-separated numbers, an optional header row (the first row,
// when it holds no number), blank lines ignored. Throws InputError naming the file and line for a
// missing file, a malformed row, a row of another width, or fewer than one landmark.
Matrix ReadLandmarksCsv(const std::string& path);
// Writes atomically, "x,y[,z]" header then one row a landmark, full precision.
void WriteLandmarksCsv(const std::string& path, const Matrix& landmarks);

}  // namespace diffeoflow::registration
