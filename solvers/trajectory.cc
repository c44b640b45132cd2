#include "solvers/trajectory.h"

#include <cstdio>
#include <cstring>

#include "solvers/errors.h"
#include "solvers/hdf5.h"

namespace diffeoflow {
namespace {

constexpr const char* kFormat = "diffeoflow-trajectory";
constexpr std::int64_t kVersion = 1;

std::uint64_t Product(const std::vector<std::uint64_t>& shape) {
  std::uint64_t product = 1;
  for (std::uint64_t d : shape) product *= d;
  return product;
}

std::string ShapeText(const std::vector<std::uint64_t>& shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + ")";
}

// An option attribute written by another tool may be a number rather than a string.
std::string OptionText(const h5::Reader& reader, const std::string& key) {
  try {
    return reader.StringAttribute("/options", key);
  } catch (const InputError&) {
  }
  try {
    return std::to_string(reader.IntAttribute("/options", key));
  } catch (const InputError&) {
  }
  const double value = reader.DoubleAttribute("/options", key);
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

}  // namespace

void WriteTrajectory(const std::string& path, const Trajectory& trajectory) {
  const std::string where = "trajectory '" + path + "'";
  const std::size_t count = trajectory.times.size();
  if (trajectory.states.size() != count) {
    throw InputError(where + ": " + std::to_string(count) + " times but " +
                     std::to_string(trajectory.states.size()) + " states");
  }
  std::vector<std::uint64_t> state_shape = trajectory.state_shape;
  if (state_shape.empty()) {
    state_shape.push_back(count > 0 ? static_cast<std::uint64_t>(trajectory.states[0].size()) : 0);
  }
  const std::uint64_t state_size = Product(state_shape);
  for (std::size_t i = 0; i < count; ++i) {
    if (static_cast<std::uint64_t>(trajectory.states[i].size()) != state_size) {
      throw InputError(where + ": state " + std::to_string(i) + " has " +
                       std::to_string(trajectory.states[i].size()) +
                       " values, expected state_shape " + ShapeText(state_shape) + " = " +
                       std::to_string(state_size));
    }
  }
  if (trajectory.kind.empty()) throw InputError(where + ": kind must not be empty");

  std::vector<double> states(count * state_size);
  for (std::size_t i = 0; i < count; ++i) {
    if (state_size > 0) {
      std::memcpy(states.data() + i * state_size, trajectory.states[i].data(),
                  state_size * sizeof(double));
    }
  }
  h5::Shape states_shape{count};
  states_shape.insert(states_shape.end(), state_shape.begin(), state_shape.end());

  h5::Writer writer(path);
  writer.SetAttribute("/", "format", kFormat);
  writer.SetAttribute("/", "version", kVersion);
  writer.SetAttribute("/", "kind", trajectory.kind);
  writer.WriteDoubles("times", trajectory.times.data(), {count});
  writer.SetAttribute("times", "units", trajectory.time_units);
  writer.WriteDoubles("states", states.data(), states_shape);
  writer.SetAttribute("states", "units", trajectory.state_units);
  if (trajectory.parameters.size() > 0) {
    writer.WriteDoubles("parameters", trajectory.parameters.data(),
                        {static_cast<std::uint64_t>(trajectory.parameters.size())});
  }
  writer.CreateGroup("options");
  for (const auto& [key, value] : trajectory.options) {
    writer.SetAttribute("options", key, value);
  }
  writer.Commit();
}

Trajectory ReadTrajectory(const std::string& path) {
  const h5::Reader reader(path);
  const std::string where = "file '" + path + "'";
  if (!reader.HasAttribute("/", "format") ||
      reader.StringAttribute("/", "format") != std::string(kFormat)) {
    throw InputError(where + " is not a diffeoflow trajectory (expected attribute format = \"" +
                     std::string(kFormat) + "\")");
  }
  const std::int64_t version = reader.IntAttribute("/", "version");
  if (version != kVersion) {
    throw InputError(where + ": trajectory version " + std::to_string(version) +
                     " is not supported (expected " + std::to_string(kVersion) + ")");
  }
  Trajectory trajectory;
  trajectory.kind = reader.StringAttribute("/", "kind");

  h5::Shape times_shape;
  trajectory.times = reader.ReadDoubles("times", &times_shape);
  if (times_shape.size() != 1) {
    throw InputError(where + ": dataset 'times' has shape " + ShapeText(times_shape) +
                     ", expected (T)");
  }
  h5::Shape states_shape;
  const std::vector<double> states = reader.ReadDoubles("states", &states_shape);
  if (states_shape.size() < 2 || states_shape[0] != times_shape[0]) {
    throw InputError(where + ": dataset 'states' has shape " + ShapeText(states_shape) +
                     ", expected (" + std::to_string(times_shape[0]) + ", *state_shape)");
  }
  trajectory.state_shape.assign(states_shape.begin() + 1, states_shape.end());
  const std::uint64_t state_size = Product(trajectory.state_shape);
  trajectory.states.reserve(trajectory.times.size());
  for (std::size_t i = 0; i < trajectory.times.size(); ++i) {
    if (state_size == 0) {
      trajectory.states.emplace_back();
    } else {
      trajectory.states.emplace_back(Eigen::Map<const Vector>(
          states.data() + i * state_size, static_cast<Eigen::Index>(state_size)));
    }
  }
  if (reader.HasAttribute("times", "units")) {
    trajectory.time_units = reader.StringAttribute("times", "units");
  }
  if (reader.HasAttribute("states", "units")) {
    trajectory.state_units = reader.StringAttribute("states", "units");
  }
  if (reader.Has("parameters")) {
    h5::Shape parameters_shape;
    const std::vector<double> parameters = reader.ReadDoubles("parameters", &parameters_shape);
    if (parameters_shape.size() != 1) {
      throw InputError(where + ": dataset 'parameters' has shape " +
                       ShapeText(parameters_shape) + ", expected (P)");
    }
    trajectory.parameters = Eigen::Map<const Vector>(
        parameters.data(), static_cast<Eigen::Index>(parameters.size()));
  }
  if (reader.Has("options")) {
    for (const std::string& key : reader.AttributeNames("options")) {
      trajectory.options[key] = OptionText(reader, key);
    }
  }
  return trajectory;
}

}  // namespace diffeoflow
