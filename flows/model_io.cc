#include "flows/model_io.h"

#include "solvers/errors.h"
#include "solvers/hdf5.h"

namespace diffeoflow::flows {

namespace {
constexpr const char* kFormat = "diffeoflow-classifier";
}

void WriteModel(const std::string& path, const Classifier& model, const Vector& theta,
                const std::map<std::string, std::string>& attributes, const DataRecord& data) {
  if (theta.size() != model.param_dim()) {
    throw InputError(path + ": θ has " + std::to_string(theta.size()) + " entries, the model " +
                     std::to_string(model.param_dim()));
  }
  const ModelSpec& s = model.spec();
  h5::Writer out(path);
  out.WriteDoubles("theta", theta.data(), {static_cast<std::uint64_t>(theta.size())});
  for (const Classifier::Block& b : model.Blocks()) {
    h5::Shape shape = {static_cast<std::uint64_t>(b.rows)};
    if (b.cols > 1 || b.name.find("/weight") != std::string::npos) {
      shape.push_back(static_cast<std::uint64_t>(b.cols));
    }
    out.WriteDoubles("weights/" + b.name, theta.data() + b.offset, shape);
  }
  out.SetAttribute("/", "format", kFormat);
  out.SetAttribute("/", "version", std::int64_t{1});
  out.SetAttribute("/", "model", ModelKindName(s.kind));
  out.SetAttribute("/", "input_shape",
                   std::vector<double>(s.input_shape.begin(), s.input_shape.end()));
  out.SetAttribute("/", "classes", std::int64_t{s.classes});
  out.SetAttribute("/", "width", std::int64_t{s.width});
  out.SetAttribute("/", "hidden", std::int64_t{s.hidden});
  out.SetAttribute("/", "augment", std::int64_t{s.augment});
  out.SetAttribute("/", "depth", std::int64_t{s.depth});
  out.SetAttribute("/", "activation", ActivationName(s.activation));
  out.SetAttribute("/", "precision", PrecisionName(s.precision));
  out.SetAttribute("/", "readout", ReadoutName(s.readout));
  out.SetAttribute("/", "solver", MethodName(s.solver.method));
  out.SetAttribute("/", "steps", std::int64_t{s.solver.steps});
  out.SetAttribute("/", "rtol", s.solver.rtol);
  out.SetAttribute("/", "atol", s.solver.atol);
  out.SetAttribute("/", "gradient", GradientModeName(s.gradient.mode));
  out.SetAttribute("/", "kinetic_energy", s.kinetic_energy);
  out.SetAttribute("/", "jacobian_norm", s.jacobian_norm);
  out.SetAttribute("/", "parameters", static_cast<std::int64_t>(theta.size()));
  for (const auto& [key, value] : attributes) out.SetAttribute("/", key, value);
  if (!data.source.empty()) WriteDataRecord(out, data);
  out.Commit();
}

ModelFile ReadModel(const std::string& path) {
  h5::Reader in(path);
  if (!in.HasAttribute("/", "format") || in.StringAttribute("/", "format") != kFormat) {
    throw InputError(path + ": not a diffeoflow classifier (expected attribute format = " +
                     kFormat + ")");
  }
  ModelFile file;
  ModelSpec& s = file.spec;
  try {
    s.kind = ParseModelKind(in.StringAttribute("/", "model"), path + ": attribute model");
    const std::vector<double> shape = in.DoublesAttribute("/", "input_shape");
    s.input_shape.assign(shape.begin(), shape.end());
    s.classes = static_cast<int>(in.IntAttribute("/", "classes"));
    s.width = static_cast<int>(in.IntAttribute("/", "width"));
    s.hidden = static_cast<int>(in.IntAttribute("/", "hidden"));
    s.augment = static_cast<int>(in.IntAttribute("/", "augment"));
    s.depth = static_cast<int>(in.IntAttribute("/", "depth"));
    s.activation = ParseActivation(in.StringAttribute("/", "activation"), path + ": activation");
    // Files written before the attribute existed were computed in double.
    s.precision = in.HasAttribute("/", "precision")
                      ? ParsePrecision(in.StringAttribute("/", "precision"), path + ": precision")
                      : Precision::kDouble;
    // Files written before the attribute existed pooled (the only read-out there was).
    s.readout = in.HasAttribute("/", "readout")
                    ? ParseReadout(in.StringAttribute("/", "readout"), path + ": readout")
                    : Readout::kPool;
    s.solver.method = ParseMethod(in.StringAttribute("/", "solver"), path + ": attribute solver");
    s.solver.steps = static_cast<int>(in.IntAttribute("/", "steps"));
    s.solver.rtol = in.DoubleAttribute("/", "rtol");
    s.solver.atol = in.DoubleAttribute("/", "atol");
    s.gradient.mode =
        ParseGradientMode(in.StringAttribute("/", "gradient"), path + ": attribute gradient");
    // Files written before the regulariser existed trained without it.
    s.kinetic_energy = in.HasAttribute("/", "kinetic_energy")
                           ? in.DoubleAttribute("/", "kinetic_energy")
                           : 0.0;
    s.jacobian_norm = in.HasAttribute("/", "jacobian_norm")
                          ? in.DoubleAttribute("/", "jacobian_norm")
                          : 0.0;
  } catch (const InputError& e) {
    throw InputError(path + ": bad model architecture: " + e.what());
  }
  const Classifier model(s);
  const std::vector<double> theta = in.ReadDoubles("theta");
  if (static_cast<Index>(theta.size()) != model.param_dim()) {
    throw InputError(path + ": /theta has " + std::to_string(theta.size()) +
                     " entries but the architecture needs " + std::to_string(model.param_dim()));
  }
  file.theta = Eigen::Map<const Vector>(theta.data(), model.param_dim());
  for (const char* key : {"dataset"}) {
    if (in.HasAttribute("/", key)) file.attributes[key] = in.StringAttribute("/", key);
  }
  try {
    file.data = ReadDataRecord(in);
  } catch (const InputError& e) {
    throw InputError(path + ": bad data record (/data): " + e.what());
  }
  return file;
}

}  // namespace diffeoflow::flows
