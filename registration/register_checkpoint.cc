#include "registration/register_checkpoint.h"

#include <cstdint>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "registration/lddmm.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"

namespace diffeoflow::registration {

namespace {

constexpr const char* kCheckpointFormat = "diffeoflow-registration-checkpoint";

// FNV-1a over the bytes of the image values as doubles (x fastest, as Image::data holds them, so
// that an image hashes the same through any view): resuming with other images is an error.
std::uint64_t HashValues(const ImageView& image, std::uint64_t hash) {
  ForEachVoxel(image, [&](int, int, int, double value) {
    unsigned char bytes[sizeof(double)];
    std::memcpy(bytes, &value, sizeof(double));
    for (unsigned char b : bytes) {
      hash ^= b;
      hash *= 1099511628211ull;
    }
  });
  return hash;
}

}  // namespace

std::string CheckpointFingerprint(const ImageView& moving, const ImageView& fixed,
                                  const RegistrationOptions& o) {
  nlohmann::json j;
  std::uint64_t hash = 14695981039346656037ull;
  hash = HashValues(moving, hash);
  hash = HashValues(fixed, hash);
  j["images"] = {{"moving", SizeText(moving.grid)}, {"fixed", SizeText(fixed.grid)},
                 {"hash", std::to_string(hash)}};
  j["method"] = RegistrationMethodName(o.method);
  j["metric"] = {{"kernel", static_cast<int>(o.metric.kernel)},
                 {"alpha_mm2", o.metric.alpha_mm2},
                 {"gamma", o.metric.gamma},
                 {"gaussian_sigma_mm", o.metric.gaussian_sigma_mm},
                 {"boundary", static_cast<int>(o.metric.boundary)},
                 {"padding_voxels", o.metric.padding_voxels}};
  j["sigma"] = o.sigma;
  j["similarity"] = SimilarityName(o.similarity);
  if (o.similarity == SimilarityMeasure::kLocalNcc) j["ncc_radius"] = o.ncc_radius;
  j["steps"] = o.time_steps;
  j["solver"] = MethodName(o.solver);
  j["levels"] = o.levels;
  j["iterations"] = o.iterations;
  j["tolerance"] = o.relative_decrease;
  j["tolerance_window"] = o.tolerance_window;
  j["coarse_tolerance_factor"] = o.coarse_tolerance_factor;
  j["optimizer"] = OptimizerName(o.optimizer);
  j["learning_rate"] = o.gd_learning_rate;
  j["band_limit"] = o.band_limit;
  if (o.method == RegistrationMethod::kShooting) {
    j["shooting_start"] = o.shooting_start == ShootingStart::kZero ? "zero" : "velocity-field";
  }
  j["mesh_fraction"] = o.mesh_spacing_fraction;
  j["normalize"] = o.normalize_intensity;
  // The affine stage: its result is in the moving image's hash (pulled back by A) as well.
  j["affine"] = AffineModeName(o.affine.mode);
  return j.dump();
}

void WriteRegistrationCheckpoint(const std::string& path, const std::string& fingerprint,
                                 const RegistrationCheckpoint& c) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) EnsureOutputDirectory(parent.string());
  h5::Writer out(path);
  out.SetAttribute("/", "format", kCheckpointFormat);
  out.SetAttribute("/", "version", std::int64_t{1});
  out.SetAttribute("/", "fingerprint", fingerprint);
  out.SetAttribute("/", "levels_done", std::int64_t{c.levels_done});
  out.SetAttribute("/", "iterations", std::int64_t{c.iterations});
  out.SetAttribute("/", "evaluations", std::int64_t{c.evaluations});
  out.SetAttribute("/", "termination", c.termination);
  out.SetAttribute("/", "termination_type", static_cast<std::int64_t>(c.termination_type));
  out.SetAttribute("/", "time_up", std::int64_t{c.time_up ? 1 : 0});
  out.WriteDoubles("carried_velocity", c.carried_velocity.data(),
                   {static_cast<std::uint64_t>(c.carried_velocity.size())});
  out.WriteDoubles("w", c.w.data(), {static_cast<std::uint64_t>(c.w.size())});
  out.WriteDoubles("loss_history", c.loss_history, {c.loss_history.size()});
  std::vector<std::int64_t> starts(c.level_starts.begin(), c.level_starts.end());
  out.WriteInts("level_starts", starts.data(), {starts.size()});
  out.Commit();
}

RegistrationCheckpoint ReadRegistrationCheckpoint(const std::string& path,
                                                  const std::string& fingerprint, int levels) {
  const h5::Reader in(path);
  if (!in.HasAttribute("/", "format") || in.StringAttribute("/", "format") != kCheckpointFormat) {
    throw InputError(path + ": not a diffeoflow registration checkpoint (attribute format)");
  }
  if (!in.HasAttribute("/", "fingerprint") ||
      in.StringAttribute("/", "fingerprint") != fingerprint) {
    throw InputError(path + ": the checkpoint was written for other images or options; rerun "
                     "with the same arguments, or without --resume after removing it");
  }
  RegistrationCheckpoint c;
  c.levels_done = static_cast<int>(in.IntAttribute("/", "levels_done"));
  if (c.levels_done < 0 || c.levels_done > levels) {
    throw InputError(path + ": levels_done " + std::to_string(c.levels_done) + " is not in [0, " +
                     std::to_string(levels) + "]");
  }
  c.iterations = static_cast<int>(in.IntAttribute("/", "iterations"));
  c.evaluations = static_cast<int>(in.IntAttribute("/", "evaluations"));
  c.termination = in.StringAttribute("/", "termination");
  // Checkpoints written before the attribute existed keep the default.
  if (in.HasAttribute("/", "termination_type")) {
    const std::int64_t type = in.IntAttribute("/", "termination_type");
    if (type < 0 || type > static_cast<std::int64_t>(Termination::kFailed)) {
      throw InputError(path + ": termination_type " + std::to_string(type) + " is not a Termination");
    }
    c.termination_type = static_cast<Termination>(type);
  }
  c.time_up = in.IntAttribute("/", "time_up") != 0;
  const std::vector<double> carried = in.ReadDoubles("carried_velocity");
  const std::vector<double> w = in.ReadDoubles("w");
  c.carried_velocity =
      Eigen::Map<const Eigen::VectorXd>(carried.data(), static_cast<Eigen::Index>(carried.size()));
  c.w = Eigen::Map<const Eigen::VectorXd>(w.data(), static_cast<Eigen::Index>(w.size()));
  c.loss_history = in.ReadDoubles("loss_history");
  for (std::int64_t s : in.ReadInts("level_starts")) c.level_starts.push_back(static_cast<int>(s));
  if (static_cast<int>(c.level_starts.size()) != c.levels_done ||
      (c.levels_done > 0 && (c.carried_velocity.size() == 0 || c.w.size() == 0))) {
    throw InputError(path + ": inconsistent checkpoint (level_starts / carried_velocity)");
  }
  return c;
}

}  // namespace diffeoflow::registration
