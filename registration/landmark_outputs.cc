#include "registration/landmark_outputs.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"

namespace diffeoflow::registration {
namespace {

// Option values in trajectory.h5, as the run reports them: six significant digits.
std::string SixDigits(double value) {
  std::ostringstream out;
  out << std::setprecision(6) << value;
  return out.str();
}

}  // namespace

nlohmann::json LandmarkMetricsJson(const LandmarkMatchingResult& result) {
  nlohmann::json j;
  j["method"] = LandmarkMethodName(result.method);
  j["residual_rms"] = result.residual_rms;
  j["kinetic_energy"] = result.kinetic_energy;
  j["iterations"] = result.iterations;
  j["wall_seconds"] = result.wall_seconds;
  j["parameters"] = result.num_parameters();
  j["data_term"] = result.data_term;
  j["velocity_norm_per_time"] = result.velocity_norm_per_time;
  j["kernel_width"] = result.kernel_width;
  j["sigma"] = result.options.sigma;
  j["steps"] = result.options.steps;
  j["landmarks"] = result.source.rows();
  j["dim"] = result.dim;
  j["evaluations"] = result.evaluations;
  j["loss_history"] = result.loss_history;
  j["residual_history"] = result.residual_history;
  j["termination"] = result.termination;
  j["converged"] = result.converged;
  return j;
}

void WriteLandmarkTrajectory(const std::string& path, const LandmarkMatchingResult& result) {
  const std::uint64_t T = result.times.size();
  const std::uint64_t n = result.source.rows(), d = result.dim;
  std::vector<double> states, positions, momenta;
  for (std::size_t k = 0; k < T; ++k) {
    positions.insert(positions.end(), result.positions[k].begin(), result.positions[k].end());
    momenta.insert(momenta.end(), result.momenta[k].begin(), result.momenta[k].end());
    states.insert(states.end(), result.positions[k].begin(), result.positions[k].end());
    states.insert(states.end(), result.momenta[k].begin(), result.momenta[k].end());
  }
  h5::Writer writer(path);
  writer.SetAttribute("/", "format", "diffeoflow-trajectory");
  writer.SetAttribute("/", "version", std::int64_t{1});
  writer.SetAttribute("/", "kind", "landmarks");
  writer.WriteDoubles("times", result.times, {T});
  writer.SetAttribute("times", "units", "1");
  writer.WriteDoubles("states", states, {T, 2, n, d});
  writer.SetAttribute("states", "units", "landmark units; [positions, momenta]");
  writer.WriteDoubles("positions", positions, {T, n, d});
  writer.WriteDoubles("momenta", momenta, {T, n, d});
  writer.WriteDoubles("source", Matrix(result.source.transpose()).data(), {n, d});
  writer.WriteDoubles("target", Matrix(result.target.transpose()).data(), {n, d});
  writer.WriteDoubles("velocity_norm_per_time", result.velocity_norm_per_time, {T});
  writer.WriteDoubles("parameters", result.parameters.data(),
                      {static_cast<std::uint64_t>(result.parameters.size())});
  writer.CreateGroup("options");
  writer.SetAttribute("options", "method", LandmarkMethodName(result.method));
  writer.SetAttribute("options", "kernel", "gaussian exp(-|x-y|^2/(2 W^2))");
  writer.SetAttribute("options", "kernel_width", SixDigits(result.kernel_width));
  writer.SetAttribute("options", "sigma", SixDigits(result.options.sigma));
  writer.SetAttribute("options", "steps", std::to_string(result.options.steps));
  writer.SetAttribute("options", "solver", MethodName(result.options.solver));
  if (result.method == LandmarkMethod::kLddmm) {
    writer.SetAttribute("options", "time_points",
                        std::to_string(result.parameters.size() / (n * d)));
    writer.SetAttribute("options", "interpolation",
                        MomentumInterpolationName(result.options.interpolation));
    writer.SetAttribute("options", "optimizer", OptimizerName(result.options.optimizer));
  }
  writer.Commit();
}

Matrix ReadLandmarksCsv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot open the landmark file");
  std::vector<std::vector<double>> rows;
  std::string line;
  int line_number = 0;
  bool seen_data_or_header = false;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<double> values;
    bool numeric = true;      // every field a finite number
    bool any_number = false;  // some field parses as a number (a header row has none)
    std::size_t begin = 0;
    while (begin <= line.size()) {
      std::size_t end = line.find(',', begin);
      if (end == std::string::npos) end = line.size();
      std::string field = line.substr(begin, end - begin);
      const std::size_t a = field.find_first_not_of(" \t");
      const std::size_t b = field.find_last_not_of(" \t");
      field = a == std::string::npos ? "" : field.substr(a, b - a + 1);
      if (!field.empty() && field[0] == '+') field.erase(0, 1);
      double value = 0.0;
      const auto parsed = std::from_chars(field.data(), field.data() + field.size(), value);
      const bool is_number = !field.empty() && parsed.ec == std::errc() &&
                             parsed.ptr == field.data() + field.size();
      any_number = any_number || is_number;
      if (!is_number || !std::isfinite(value)) numeric = false;
      values.push_back(value);
      begin = end + 1;
    }
    const std::string where = path + ":" + std::to_string(line_number);
    if (!numeric) {
      if (!seen_data_or_header && !any_number) {  // the header row
        seen_data_or_header = true;
        if (values.size() != 2 && values.size() != 3) {
          throw InputError(where + ": header must name 2 or 3 columns");
        }
        continue;
      }
      throw InputError(where + ": expected 2 or 3 comma-separated finite numbers, got '" + line +
                       "'");
    }
    seen_data_or_header = true;
    if (values.size() != 2 && values.size() != 3) {
      throw InputError(where + ": expected 2 or 3 columns, got " + std::to_string(values.size()));
    }
    if (!rows.empty() && values.size() != rows.front().size()) {
      throw InputError(where + ": expected " + std::to_string(rows.front().size()) +
                       " columns like the first landmark, got " + std::to_string(values.size()));
    }
    rows.push_back(std::move(values));
  }
  if (rows.empty()) throw InputError(path + ": no landmarks (expected rows of 2 or 3 numbers)");
  Matrix points(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(rows[0].size()));
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (std::size_t c = 0; c < rows[i].size(); ++c) points(i, c) = rows[i][c];
  }
  return points;
}

void WriteLandmarksCsv(const std::string& path, const Matrix& landmarks) {
  std::ostringstream out;
  out << std::setprecision(17);
  out << (landmarks.cols() == 3 ? "x,y,z\n" : "x,y\n");
  for (Eigen::Index i = 0; i < landmarks.rows(); ++i) {
    for (Eigen::Index c = 0; c < landmarks.cols(); ++c) {
      out << (c ? "," : "") << landmarks(i, c);
    }
    out << "\n";
  }
  WriteFileAtomically(path, out.str());
}

}  // namespace diffeoflow::registration
