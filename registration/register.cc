#include "registration/register.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include "plot/figure.h"
#include "registration/image_ops.h"
#include "registration/shooting.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"
#include "solvers/interrupt.h"

namespace diffeoflow::registration {

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string ShapeText(const Grid& g) {
  std::string s = std::to_string(g.size[0]) + "x" + std::to_string(g.size[1]);
  if (g.dim == 3) s += "x" + std::to_string(g.size[2]);
  return s;
}

double VoxelVolume(const Grid& g) {
  return g.spacing_mm[0] * g.spacing_mm[1] * (g.dim == 3 ? g.spacing_mm[2] : 1.0);
}

// Restricts an objective to the band-limited subspace: x ↦ E(P x), ∇ ↦ P ∇E (P an orthogonal
// projector that commutes with K, so the whitened variable stays band-limited).
class BandLimitedObjective : public Objective {
 public:
  BandLimitedObjective(Objective& inner, MetricOperator& metric, int band, int dim)
      : inner_(inner), metric_(metric), band_(band), dim_(dim) {}
  Eigen::Index num_parameters() const override { return inner_.num_parameters(); }
  double Evaluate(const Vector& x, Vector* gradient) override {
    Project(x, &projected_);
    const double value = inner_.Evaluate(projected_, gradient);
    if (gradient != nullptr) Project(*gradient, gradient);
    return value;
  }
  void Project(const Vector& in, Vector* out) {
    const Eigen::Index block = metric_.field_size();
    if (out != &in) *out = in;
    for (Eigen::Index start = 0; start + block <= out->size(); start += block) {
      Eigen::Ref<Eigen::VectorXd> segment = out->segment(start, block);
      metric_.BandLimit(segment, band_, segment);
    }
  }

 private:
  Objective& inner_;
  MetricOperator& metric_;
  int band_;
  int dim_;
  Vector projected_;
};

// One pyramid level's problem, either method.
struct LevelProblem {
  std::unique_ptr<VelocityFieldObjective> lddmm;
  std::unique_ptr<ShootingObjective> shooting;
  Objective& objective() {
    return lddmm ? static_cast<Objective&>(*lddmm) : static_cast<Objective&>(*shooting);
  }
  const FlowEvaluation& last() const { return lddmm ? lddmm->last() : shooting->last(); }
};

// The checkpoint of a registration (see register.h): everything the level loop carries from one
// level to the next, and the counters that end up in metrics.json.
struct LevelCheckpoint {
  int levels_done = 0;
  Vector carried_velocity;  // v on the last completed level's mesh
  Vector w;                 // the last completed level's final (projected) whitened iterate
  int iterations = 0;
  int evaluations = 0;
  std::vector<double> loss_history;
  std::vector<int> level_starts;
  std::string termination;
  bool time_up = false;
};

constexpr const char* kCheckpointFormat = "diffeoflow-registration-checkpoint";

// FNV-1a over the bytes of the image values: resuming with other images is an error.
std::uint64_t HashValues(const Eigen::VectorXd& values, std::uint64_t hash) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(values.data());
  const std::size_t count = static_cast<std::size_t>(values.size()) * sizeof(double);
  for (std::size_t i = 0; i < count; ++i) {
    hash ^= bytes[i];
    hash *= 1099511628211ull;
  }
  return hash;
}

// The images and every option that changes the result (not threads, progress or the time limit).
std::string Fingerprint(const Image& moving, const Image& fixed, const RegistrationOptions& o) {
  nlohmann::json j;
  std::uint64_t hash = 14695981039346656037ull;
  hash = HashValues(moving.data, hash);
  hash = HashValues(fixed.data, hash);
  j["images"] = {{"moving", ShapeText(moving.grid)}, {"fixed", ShapeText(fixed.grid)},
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
  j["coarse_tolerance_factor"] = o.coarse_tolerance_factor;
  j["optimizer"] = OptimizerName(o.optimizer);
  j["learning_rate"] = o.gd_learning_rate;
  j["band_limit"] = o.band_limit;
  j["mesh_fraction"] = o.mesh_spacing_fraction;
  j["normalize"] = o.normalize_intensity;
  return j.dump();
}

void WriteLevelCheckpoint(const std::string& path, const std::string& fingerprint,
                          const LevelCheckpoint& c) {
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
  out.SetAttribute("/", "time_up", std::int64_t{c.time_up ? 1 : 0});
  out.WriteDoubles("carried_velocity", c.carried_velocity.data(),
                   {static_cast<std::uint64_t>(c.carried_velocity.size())});
  out.WriteDoubles("w", c.w.data(), {static_cast<std::uint64_t>(c.w.size())});
  out.WriteDoubles("loss_history", c.loss_history, {c.loss_history.size()});
  std::vector<std::int64_t> starts(c.level_starts.begin(), c.level_starts.end());
  out.WriteInts("level_starts", starts.data(), {starts.size()});
  out.Commit();
}

LevelCheckpoint ReadLevelCheckpoint(const std::string& path, const std::string& fingerprint,
                                    int levels) {
  const h5::Reader in(path);
  if (!in.HasAttribute("/", "format") || in.StringAttribute("/", "format") != kCheckpointFormat) {
    throw InputError(path + ": not a diffeoflow registration checkpoint (attribute format)");
  }
  if (!in.HasAttribute("/", "fingerprint") ||
      in.StringAttribute("/", "fingerprint") != fingerprint) {
    throw InputError(path + ": the checkpoint was written for other images or options; rerun "
                     "with the same arguments, or without --resume after removing it");
  }
  LevelCheckpoint c;
  c.levels_done = static_cast<int>(in.IntAttribute("/", "levels_done"));
  if (c.levels_done < 0 || c.levels_done > levels) {
    throw InputError(path + ": levels_done " + std::to_string(c.levels_done) + " is not in [0, " +
                     std::to_string(levels) + "]");
  }
  c.iterations = static_cast<int>(in.IntAttribute("/", "iterations"));
  c.evaluations = static_cast<int>(in.IntAttribute("/", "evaluations"));
  c.termination = in.StringAttribute("/", "termination");
  c.time_up = in.IntAttribute("/", "time_up") != 0;
  const std::vector<double> carried = in.ReadDoubles("carried_velocity");
  const std::vector<double> w = in.ReadDoubles("w");
  c.carried_velocity = Eigen::Map<const Vector>(carried.data(), static_cast<Eigen::Index>(carried.size()));
  c.w = Eigen::Map<const Vector>(w.data(), static_cast<Eigen::Index>(w.size()));
  c.loss_history = in.ReadDoubles("loss_history");
  for (std::int64_t s : in.ReadInts("level_starts")) c.level_starts.push_back(static_cast<int>(s));
  if (static_cast<int>(c.level_starts.size()) != c.levels_done ||
      (c.levels_done > 0 && (c.carried_velocity.size() == 0 || c.w.size() == 0))) {
    throw InputError(path + ": inconsistent checkpoint (level_starts / carried_velocity)");
  }
  return c;
}

}  // namespace

Grid MeshFor(const Grid& image, const RegistrationOptions& options) {
  Grid mesh = image;
  if (options.mesh_spacing_fraction <= 0) return mesh;
  const double limit = options.mesh_spacing_fraction * std::sqrt(options.metric.alpha_mm2);
  while (true) {
    const Grid next = HalvedGrid(mesh);
    bool ok = true;
    for (int a = 0; a < image.dim; ++a) {
      ok = ok && next.size[a] >= 16 && next.spacing_mm[a] <= limit;
    }
    if (!ok) return mesh;
    mesh = next;
  }
}

std::string RegistrationMethodName(RegistrationMethod method) {
  return method == RegistrationMethod::kShooting ? "shooting" : "lddmm";
}

RegistrationMethod ParseRegistrationMethod(const std::string& name, const std::string& argument) {
  if (name == "shooting") return RegistrationMethod::kShooting;
  if (name == "lddmm") return RegistrationMethod::kLddmm;
  throw InputError(argument + ": unknown method '" + name + "' (expected shooting or lddmm)");
}

void RegistrationOptions::Validate() const {
  auto positive = [](double value, const char* flag) {
    if (!(value > 0) || !std::isfinite(value)) {
      std::ostringstream s;
      s << flag << " must be a finite number > 0, got " << value;
      throw InputError(s.str());
    }
  };
  positive(sigma, "--sigma");
  if (ncc_radius < 1) {
    throw InputError("--ncc-radius must be >= 1 (voxels), got " + std::to_string(ncc_radius));
  }
  positive(metric.alpha_mm2, "--alpha");
  positive(metric.gamma, "--gamma");
  std::string error;
  if (!metric.IsValid(&error)) throw InputError(error);
  if (time_steps < 1) throw InputError("--steps must be >= 1, got " + std::to_string(time_steps));
  if (levels < 1) throw InputError("--levels must be >= 1, got " + std::to_string(levels));
  if (iterations < 0) {
    throw InputError("--iterations must be >= 0, got " + std::to_string(iterations));
  }
  if (max_seconds < 0 || !std::isfinite(max_seconds)) {
    throw InputError("--time-limit must be >= 0 seconds");
  }
  if (!(relative_decrease >= 0)) throw InputError("--tolerance must be >= 0");
  if (band_limit < 0) {
    throw InputError("--band-limit must be >= 0, got " + std::to_string(band_limit));
  }
  positive(gd_learning_rate, "--learning-rate");
  if (!(mesh_spacing_fraction >= 0) || !std::isfinite(mesh_spacing_fraction)) {
    throw InputError("--mesh-fraction must be >= 0");
  }
  if (!(coarse_tolerance_factor >= 1) || !std::isfinite(coarse_tolerance_factor)) {
    throw InputError("coarse_tolerance_factor must be >= 1");
  }
  if (optimizer == Optimizer::kAdam) {
    throw InputError("--optimizer: registration supports lbfgs or gd");
  }
  if (!(max_folded_fraction >= 0 && max_folded_fraction <= 1)) {
    throw InputError("--max-folded-fraction must be in [0, 1]");
  }
  if (resume && checkpoint.empty()) throw InputError("--resume needs a checkpoint path");
}

double RegistrationResult::velocity_norm_spread() const {
  if (velocity_norms.empty()) return 0.0;
  const auto [lo, hi] = std::minmax_element(velocity_norms.begin(), velocity_norms.end());
  double mean = 0.0;
  for (double v : velocity_norms) mean += v;
  mean /= velocity_norms.size();
  return mean > 0 ? (*hi - *lo) / mean : 0.0;
}

std::string RegistrationResult::BriefReport() const {
  char buffer[512];
  std::snprintf(buffer, sizeof(buffer),
                "%s: SSD %.4g -> %.4g (reduction %.2f%%), kinetic energy %.4g, |v_t|_V spread "
                "%.3g%%, det Dphi in [%.3g, %.3g], %d iterations, %.2f s, %ld parameters (%s)",
                RegistrationMethodName(method).c_str(), ssd_initial, ssd_final,
                100.0 * ssd_reduction(), kinetic_energy, 100.0 * velocity_norm_spread(),
                min_jacobian, max_jacobian, iterations, wall_seconds, parameters,
                termination.c_str());
  return buffer;
}

void CheckRegistrationInputs(const Image& moving, const Image& fixed) {
  CheckWorldOverlap(moving.grid, fixed.grid, "--moving", "--fixed");
  if (!AllFinite(moving.data)) throw InputError("--moving: image contains NaN or Inf");
  if (!AllFinite(fixed.data)) throw InputError("--fixed: image contains NaN or Inf");
}

RegistrationResult Register(const Image& moving_given, const Image& fixed_input,
                            const RegistrationOptions& options) {
  options.Validate();
  const auto start = Clock::now();
  CheckRegistrationInputs(moving_given, fixed_input);
  // A moving image on another grid is resampled into the fixed image's world (world_space.h).
  const MovingInFixedSpace moving_in_fixed_space(moving_given, fixed_input);
  const Image& moving_input = moving_in_fixed_space.image();

  Image moving = options.normalize_intensity ? NormalizeIntensity(moving_input) : moving_input;
  Image fixed = options.normalize_intensity ? NormalizeIntensity(fixed_input) : fixed_input;
  // The map samples the moving image in its own voxel coordinates on the fixed grid.
  moving.grid = fixed.grid;

  // Pyramid, finest first; the coarsest axis keeps at least 16 voxels.
  std::vector<Image> moving_levels{moving}, fixed_levels{fixed};
  for (int l = 1; l < options.levels; ++l) {
    const Grid next = HalvedGrid(fixed_levels.back().grid);
    bool too_small = false;
    for (int a = 0; a < next.dim; ++a) too_small = too_small || next.size[a] < 16;
    if (too_small) break;
    fixed_levels.push_back(Downsample(fixed_levels.back()));
    moving_levels.push_back(Downsample(moving_levels.back()));
    moving_levels.back().grid = fixed_levels.back().grid;
  }
  std::reverse(moving_levels.begin(), moving_levels.end());
  std::reverse(fixed_levels.begin(), fixed_levels.end());
  const int levels = static_cast<int>(fixed_levels.size());

  FlowProblemOptions flow;
  flow.sigma = options.sigma;
  flow.similarity = options.similarity;
  flow.ncc_radius = options.ncc_radius;
  flow.time_steps = options.time_steps;
  flow.solver = options.solver;
  // --threads reaches the particle loops of shooting on every mesh; FFTW is capped below.
  flow.threads = options.metric.threads;
  const int dim = fixed.grid.dim;
  const int fields_per_vector = options.method == RegistrationMethod::kLddmm
                                    ? (options.time_steps + 1) * dim
                                    : dim;

  RegistrationResult result;
  result.method = options.method;
  result.options = options;
  result.grid = fixed.grid;
  result.world_space_note = moving_in_fixed_space.note();

  const bool checkpointing = !options.checkpoint.empty();
  const std::string fingerprint =
      checkpointing ? Fingerprint(moving_input, fixed_input, options) : std::string();
  LevelCheckpoint done;  // the state after the last completed level
  if (checkpointing && options.resume && std::filesystem::exists(options.checkpoint)) {
    done = ReadLevelCheckpoint(options.checkpoint, fingerprint, levels);
    result.resumed_from_level = done.levels_done;
  }
  Vector carried_velocity = done.carried_velocity;  // v (mm / unit time) on the previous mesh
  Grid carried_grid;
  if (done.levels_done > 0) carried_grid = MeshFor(fixed_levels[done.levels_done - 1].grid, options);
  result.iterations = done.iterations;
  result.evaluations = done.evaluations;
  result.loss_history = done.loss_history;
  result.level_starts = done.level_starts;
  result.termination = done.termination;
  bool time_up = done.time_up;
  // A level that is already done is rebuilt only when it is the finest one (for the outputs).
  const int first_level = std::min(done.levels_done, levels - 1);

  Vector w;
  std::unique_ptr<LevelProblem> problem;
  std::unique_ptr<MetricOperator> band_metric;
  MetricPowers metric;
  Grid mesh;
  for (int level = first_level; level < levels; ++level) {
    const Image& m = moving_levels[level];
    const Image& f = fixed_levels[level];
    mesh = MeshFor(f.grid, options);
    // FFTW threads only pay on large meshes; on small ones they cost more than they save.
    MetricOptions metric_options = options.metric;
    if (mesh.voxels() < (1 << 16)) metric_options.threads = 1;
    metric = MakeMetricPowers(mesh, metric_options);
    problem = std::make_unique<LevelProblem>();
    if (options.method == RegistrationMethod::kLddmm) {
      problem->lddmm = std::make_unique<VelocityFieldObjective>(m, f, mesh, metric, flow);
    } else {
      problem->shooting = std::make_unique<ShootingObjective>(m, f, mesh, metric, flow);
    }
    if (level < done.levels_done) {
      // Finished before the checkpoint: its final iterate is stored as it was.
      w = done.w;
      if (w.size() != problem->objective().num_parameters()) {
        throw InputError(options.checkpoint + ": stored iterate has " + std::to_string(w.size()) +
                         " values, the finest level " +
                         std::to_string(problem->objective().num_parameters()));
      }
      break;
    }
    const Eigen::Index block = dim * mesh.voxels();
    const int time_points = fields_per_vector / dim;
    w.setZero(time_points * block);
    if (carried_velocity.size() > 0) {
      if (carried_grid.SameShape(mesh)) {
        w = carried_velocity;
      } else {
        const Eigen::Index coarse_block = dim * carried_grid.voxels();
        if (carried_velocity.size() != time_points * coarse_block) {
          throw InputError(options.checkpoint + ": carried velocity has " +
                           std::to_string(carried_velocity.size()) + " values, expected " +
                           std::to_string(time_points * coarse_block));
        }
        for (int k = 0; k < time_points; ++k) {
          VectorField coarse{carried_grid,
                             carried_velocity.segment(k * coarse_block, coarse_block)};
          w.segment(k * block, block) = UpsampleField(coarse, mesh).data;
        }
      }
      metric.inverse_half(w.data(), fields_per_vector);
    }

    Objective* objective = &problem->objective();
    std::unique_ptr<BandLimitedObjective> band;
    if (options.band_limit > 0) {
      band_metric = std::make_unique<MetricOperator>(mesh, metric_options);
      band = std::make_unique<BandLimitedObjective>(*objective, *band_metric, options.band_limit,
                                                    dim);
      band->Project(w, &w);
      objective = band.get();
    }

    OptimizerOptions opt;
    opt.optimizer = options.optimizer;
    opt.max_iterations = options.iterations;
    // Coarse levels only prepare the next one: their stopping rule is looser.
    opt.function_tolerance =
        options.relative_decrease * std::pow(options.coarse_tolerance_factor, levels - 1 - level);
    opt.gradient_tolerance = 1e-12;
    opt.parameter_tolerance = 1e-12;
    opt.learning_rate = options.gd_learning_rate / VoxelVolume(mesh);
    opt.lbfgs_rank = options.method == RegistrationMethod::kLddmm && dim == 3 ? 5 : 10;
    if (options.max_seconds > 0) {
      opt.max_seconds = std::max(options.max_seconds - Seconds(start), 1e-3);
    }
    opt.callback = [&](const IterationReport& report) {
      if (options.progress) {
        options.progress({level, levels, report.iteration, report.cost, Seconds(start)});
      }
      return true;
    };
    result.level_starts.push_back(static_cast<int>(result.loss_history.size()));
    const char* kinds[] = {"coarsest", "intermediate", "finest"};
    const std::string where = "level " + std::to_string(level + 1) + "/" +
                              std::to_string(levels) + " (" +
                              kinds[level == levels - 1 ? 2 : level == 0 ? 0 : 1] + ")";
    const std::string advice =
        " (try a larger --sigma or --alpha, more --steps, or normalised intensities)";
    OptimizerSummary summary;
    double energy = 0.0;
    try {
      if (InterruptRequested()) {
        summary.termination = "interrupted";
      } else if (!time_up && options.iterations > 0) {
        summary = Minimize(*objective, w, opt);
      } else {
        energy = objective->Evaluate(w, nullptr);
      }
    } catch (const NumericalError& e) {
      throw NumericalError("registration at " + where + ": " + e.what() + advice);
    }
    if (summary.termination == "interrupted") {
      // The checkpoint keeps the completed levels; this level restarts on --resume.
      if (checkpointing) WriteLevelCheckpoint(options.checkpoint, fingerprint, done);
      result.interrupted = true;
      result.termination = "interrupted";
      result.iterations = done.iterations + summary.iterations;
      result.wall_seconds = Seconds(start);
      return result;
    }
    if (!time_up && options.iterations > 0) {
      result.iterations += summary.iterations;
      result.evaluations += summary.evaluations;
      result.termination = summary.termination;
      for (double c : summary.cost_history) result.loss_history.push_back(c);
    } else {
      result.loss_history.push_back(energy);
    }
    if (w.allFinite() && !std::isfinite(result.loss_history.back())) {
      // Ceres reports no cost when it stops before its first iteration (e.g. a zero gradient at
      // the start, or an initial point it cannot evaluate): evaluate E where the level ended.
      try {
        result.loss_history.back() = objective->Evaluate(w, nullptr);
      } catch (const NumericalError& e) {
        throw NumericalError("registration at " + where + ": " + e.what() + advice);
      }
    }
    if (!w.allFinite() || !std::isfinite(result.loss_history.back())) {
      throw NumericalError("registration at " + where + ": the energy or the velocity became " +
                           "NaN or Inf" + advice);
    }
    if (options.max_seconds > 0 && Seconds(start) >= options.max_seconds) {
      time_up = true;
      result.termination = "time limit";
    }
    if (band) band->Project(w, &w);
    carried_velocity = w;
    metric.half(carried_velocity.data(), fields_per_vector);
    carried_grid = mesh;
    done.levels_done = level + 1;
    done.carried_velocity = carried_velocity;
    done.w = w;
    done.iterations = result.iterations;
    done.evaluations = result.evaluations;
    done.loss_history = result.loss_history;
    done.level_starts = result.level_starts;
    done.termination = result.termination;
    done.time_up = time_up;
    if (checkpointing) WriteLevelCheckpoint(options.checkpoint, fingerprint, done);
  }
  if (options.iterations == 0) result.termination = "no iterations requested";

  // The path at the finest level: on the mesh, the images and the final map on the image grid.
  const Grid& grid = fixed.grid;
  const Eigen::Index n = grid.voxels();
  const Eigen::Index mesh_block = dim * mesh.voxels();
  const double mesh_dx = VoxelVolume(mesh);
  std::vector<Vector> states;
  const MeshToImageMap& map =
      problem->lddmm ? problem->lddmm->map() : problem->shooting->map();
  result.mesh = mesh;
  if (problem->lddmm) {
    VelocityFieldObjective& objective = *problem->lddmm;
    result.times = objective.OutputTimes();
    states = objective.Path(w);
    const Vector v = objective.Velocities(w);
    for (int k = 0; k <= options.time_steps; ++k) {
      result.velocities.push_back(v.segment(k * mesh_block, mesh_block));
    }
    result.velocity_norms = objective.VelocityNorms(w);
    result.positions = states;
  } else {
    ShootingObjective& objective = *problem->shooting;
    result.times = objective.OutputTimes();
    states = objective.Path(w);
    for (const Vector& state : states) {
      Vector momentum, velocity;
      objective.dynamics().Fields(state, &momentum, &velocity);
      result.velocity_norms.push_back(std::sqrt(std::max(0.0, momentum.dot(velocity)) * mesh_dx));
      result.momenta.push_back(std::move(momentum));
      result.velocities.push_back(std::move(velocity));
      result.positions.push_back(state.head(mesh_block));
    }
  }
  try {
    problem->objective().Evaluate(w, nullptr);
  } catch (const NumericalError& e) {
    throw NumericalError(std::string("registration: final evaluation: ") + e.what());
  }
  result.kinetic_energy = problem->last().kinetic;
  result.energy = problem->last().energy;
  result.parameters = static_cast<long>(w.size());
  if (options.band_limit > 0) {
    // Free variables of the band-limited space: (2B + 1)^dim Fourier modes per component and
    // time point (fewer when the mesh is smaller than the band).
    long modes = 1;
    for (int a = 0; a < dim; ++a) modes *= std::min(2 * options.band_limit + 1, mesh.size[a]);
    result.parameters = modes * fields_per_vector;
  }

  Vector q;
  for (const Vector& mesh_positions : result.positions) {
    map.Positions(mesh_positions, &q);
    Vector image(n);
    SampleScalar(grid, moving.data.data(), q, true, image.data());
    if (&mesh_positions == &result.positions.back()) {
      result.ssd_final = (image - fixed.data).squaredNorm();
    }
    result.images.push_back(image.cast<float>());
  }
  map.Positions(result.positions.back(), &result.phi);
  const Vector& phi = result.phi;
  result.ssd_initial = (moving.data - fixed.data).squaredNorm();

  result.warped.grid = fixed_input.grid;
  result.warped.source_type = moving_input.source_type;
  result.warped.data.resize(n);
  SampleScalar(grid, moving_input.data.data(), phi, true, result.warped.data.data());

  result.displacement.grid = fixed_input.grid;
  result.displacement.data = phi - IdentityPositions(grid);
  for (int c = 0; c < dim; ++c) result.displacement.component(c) *= grid.spacing_mm[c];

  result.jacobian.grid = fixed_input.grid;
  result.jacobian.data = JacobianDeterminantOfPositions(grid, phi);
  result.min_jacobian = result.jacobian.data.minCoeff();
  result.max_jacobian = result.jacobian.data.maxCoeff();
  if (!std::isfinite(result.energy) || !result.phi.allFinite() ||
      !result.jacobian.data.allFinite()) {
    throw NumericalError("registration: the final map or energy is NaN or Inf (try a larger "
                         "--sigma or --alpha, or more --steps)");
  }
  const Eigen::Index folded = (result.jacobian.data.array() <= 0.0).count();
  const double folded_fraction = static_cast<double>(folded) / static_cast<double>(n);
  if (folded_fraction > options.max_folded_fraction) {
    char message[512];
    std::snprintf(message, sizeof(message),
                  "registration folded the map: det Dphi <= 0 at %ld of %ld voxels (%.3g%%, "
                  "min det Dphi %.3g; allowed %.3g%%); not a diffeomorphism, no result written "
                  "(try a larger --alpha or --sigma, or more --steps)",
                  static_cast<long>(folded), static_cast<long>(n), 100.0 * folded_fraction,
                  result.min_jacobian, 100.0 * options.max_folded_fraction);
    throw NumericalError(message);
  }
  result.wall_seconds = Seconds(start);
  return result;
}

nlohmann::json MetricsJson(const RegistrationResult& r) {
  nlohmann::json j;
  j["method"] = RegistrationMethodName(r.method);
  j["similarity"] = SimilarityName(r.options.similarity);
  j["ssd_initial"] = r.ssd_initial;
  j["ssd_final"] = r.ssd_final;
  j["ssd_reduction"] = r.ssd_reduction();
  j["kinetic_energy"] = r.kinetic_energy;
  j["velocity_norm_per_time"] = r.velocity_norms;
  j["velocity_norm_spread"] = r.velocity_norm_spread();
  j["min_jacobian"] = r.min_jacobian;
  j["max_jacobian"] = r.max_jacobian;
  j["iterations"] = r.iterations;
  j["function_evaluations"] = r.evaluations;
  j["wall_seconds"] = r.wall_seconds;
  j["parameters"] = r.parameters;
  j["energy"] = r.energy;
  j["loss_history"] = r.loss_history;
  j["level_starts"] = r.level_starts;
  j["termination"] = r.termination;
  j["grid"] = {{"size", std::vector<int>(r.grid.size.begin(), r.grid.size.begin() + r.grid.dim)},
               {"spacing_mm", std::vector<double>(r.grid.spacing_mm.begin(),
                                                  r.grid.spacing_mm.begin() + r.grid.dim)}};
  const RegistrationOptions& o = r.options;
  j["options"] = {{"method", RegistrationMethodName(o.method)},
                  {"alpha_mm2", o.metric.alpha_mm2},
                  {"gamma", o.metric.gamma},
                  {"sigma", o.sigma},
                  {"similarity", SimilarityName(o.similarity)},
                  {"ncc_radius", o.ncc_radius},
                  {"steps", o.time_steps},
                  {"solver", MethodName(o.solver)},
                  {"levels", o.levels},
                  {"iterations", o.iterations},
                  {"band_limit", o.band_limit},
                  {"optimizer", OptimizerName(o.optimizer)},
                  {"tolerance", o.relative_decrease},
                  {"time_limit_seconds", o.max_seconds}};
  return j;
}

void WriteRegistrationTrajectory(const std::string& path, const RegistrationResult& r) {
  const Grid& g = r.grid;
  const std::uint64_t count = r.times.size();
  auto spatial = [](const Grid& grid) {
    h5::Shape shape;
    if (grid.dim == 3) shape.push_back(grid.size[2]);
    shape.push_back(grid.size[1]);
    shape.push_back(grid.size[0]);
    return shape;
  };
  auto stack = [&](const std::vector<Eigen::VectorXd>& fields) {
    std::vector<double> data;
    for (const auto& f : fields) data.insert(data.end(), f.data(), f.data() + f.size());
    h5::Shape shape{static_cast<std::uint64_t>(fields.size()), static_cast<std::uint64_t>(g.dim)};
    const h5::Shape s = spatial(r.mesh);
    shape.insert(shape.end(), s.begin(), s.end());
    return std::make_pair(std::move(data), shape);
  };
  h5::Writer writer(path);
  writer.SetAttribute("/", "format", "diffeoflow-trajectory");
  writer.SetAttribute("/", "version", std::int64_t{1});
  writer.SetAttribute("/", "kind", "registration-" + RegistrationMethodName(r.method));
  writer.WriteDoubles("times", r.times.data(), {count});
  writer.SetAttribute("times", "units", "1");
  {
    auto [data, shape] = stack(r.positions);
    writer.WriteDoubles("states", data, shape);
    writer.SetAttribute("states", "units", "mesh voxel");
    writer.SetAttribute("states", "description",
                        "phi_t(x): positions of the mesh nodes in mesh voxel coordinates, "
                        "(time, component, [z,] y, x)");
  }
  {
    auto [data, shape] = stack(r.velocities);
    writer.WriteDoubles("velocities", data, shape);
    writer.SetAttribute("velocities", "units", "mm per unit time");
  }
  if (!r.momenta.empty()) {
    auto [data, shape] = stack(r.momenta);
    writer.WriteDoubles("momenta", data, shape);
    writer.SetAttribute("momenta", "units", "dual of mm (v = K m)");
  }
  {
    std::vector<float> data;
    for (const auto& f : r.images) data.insert(data.end(), f.data(), f.data() + f.size());
    h5::Shape shape{count};
    const h5::Shape s = spatial(g);
    shape.insert(shape.end(), s.begin(), s.end());
    writer.WriteFloats("images", data.data(), shape);
    writer.SetAttribute("images", "units", "normalised intensity");
  }
  {
    std::vector<double> phi(r.phi.data(), r.phi.data() + r.phi.size());
    h5::Shape shape{static_cast<std::uint64_t>(g.dim)};
    const h5::Shape s = spatial(g);
    shape.insert(shape.end(), s.begin(), s.end());
    writer.WriteDoubles("map", phi, shape);
    writer.SetAttribute("map", "units", "voxel");
    writer.SetAttribute("map", "description",
                        "phi(x) = x + u(x) at t = 1 on the fixed grid, in voxel coordinates of "
                        "the moving image, (component, [z,] y, x)");
  }
  writer.WriteDoubles("velocity_norms", r.velocity_norms.data(), {count});
  writer.WriteDoubles("loss_history", r.loss_history.data(), {r.loss_history.size()});
  writer.SetAttribute("/", "spacing_mm",
                      std::vector<double>(g.spacing_mm.begin(), g.spacing_mm.begin() + g.dim));
  writer.SetAttribute("/", "mesh_spacing_mm",
                      std::vector<double>(r.mesh.spacing_mm.begin(),
                                          r.mesh.spacing_mm.begin() + r.mesh.dim));
  writer.CreateGroup("options");
  const nlohmann::json options = MetricsJson(r)["options"];
  for (auto it = options.begin(); it != options.end(); ++it) {
    const std::string value = it->is_string() ? it->get<std::string>() : it->dump();
    writer.SetAttribute("options", it.key(), value);
  }
  writer.Commit();
}

Eigen::MatrixXd MidSlice(const Grid& grid, const double* values) {
  const int k = grid.dim == 3 ? grid.size[2] / 2 : 0;
  Eigen::MatrixXd slice(grid.size[1], grid.size[0]);
  for (int j = 0; j < grid.size[1]; ++j) {
    for (int i = 0; i < grid.size[0]; ++i) slice(j, i) = values[grid.index(i, j, k)];
  }
  return slice;
}

namespace {

plot::Extent ExtentOf(const Grid& g) {
  return {0.0, g.size[0] * g.spacing_mm[0], 0.0, g.size[1] * g.spacing_mm[1]};
}

// The deformed grid φ(x) of the mid slice in mm, drawn with y down like the images.
void DrawDeformedGrid(plot::Axes& ax, const Grid& g, const Eigen::VectorXd& positions,
                      const plot::Style& style) {
  const Eigen::Index n = g.voxels();
  const Eigen::MatrixXd px = MidSlice(g, positions.data());
  const Eigen::MatrixXd py = MidSlice(g, positions.data() + n);
  const double height = g.size[1] * g.spacing_mm[1];
  Eigen::MatrixXd X = (px.array() + 0.5) * g.spacing_mm[0];
  Eigen::MatrixXd Y = height - (py.array() + 0.5) * g.spacing_mm[1];
  const int stride = std::max(1, std::max(g.size[0], g.size[1]) / 32);
  ax.Grid(X, Y, stride, style);
  ax.SetLimits(0, g.size[0] * g.spacing_mm[0], 0, height).SetEqualAspect();
}

void ImagePanel(plot::Axes& ax, const Grid& g, const Eigen::VectorXd& values,
                const std::string& title, double vmin, double vmax) {
  ax.SetTitle(title).SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
  plot::ImageOptions io;
  io.colormap = plot::Colormap::kGray;
  io.vmin = vmin;
  io.vmax = vmax;
  io.origin = plot::Origin::kUpper;
  io.colorbar_label = "intensity";
  ax.Image(MidSlice(g, values.data()), ExtentOf(g), io);
}

}  // namespace

void WriteSummaryFigure(const std::string& path, const RegistrationResult& r, const Image& moving,
                        const Image& fixed) {
  const Grid& g = r.grid;
  const double vmin = std::min(moving.data.minCoeff(), fixed.data.minCoeff());
  const double vmax = std::max(moving.data.maxCoeff(), fixed.data.maxCoeff());
  plot::Figure fig(1, 5, 360, 330);
  char title[256];
  std::snprintf(title, sizeof(title),
                "%s: SSD reduction %.2f%%, det Dphi in [%.3f, %.3f], %.2f s%s",
                r.method == RegistrationMethod::kShooting ? "Geodesic shooting" : "LDDMM (GD on v_t)",
                100.0 * r.ssd_reduction(), r.min_jacobian, r.max_jacobian, r.wall_seconds,
                g.dim == 3 ? " (mid z-slice)" : "");
  fig.SetTitle(title);
  ImagePanel(fig.At(0, 0), g, moving.data, "moving", vmin, vmax);
  ImagePanel(fig.At(0, 1), g, fixed.data, "fixed", vmin, vmax);
  ImagePanel(fig.At(0, 2), g, r.warped.data, "warped (moving o phi)", vmin, vmax);
  {
    plot::Axes& ax = fig.At(0, 3);
    ax.SetTitle("deformed grid phi(x)").SetXLabel("x [mm]").SetYLabel("y [mm]");
    plot::ImageOptions io;
    io.colormap = plot::Colormap::kGray;
    io.origin = plot::Origin::kUpper;
    io.colorbar = false;
    io.vmin = vmin - 2.0 * (vmax - vmin);
    io.vmax = vmax;
    ax.Image(MidSlice(g, fixed.data.data()), ExtentOf(g), io);
    plot::Style style;
    style.color = plot::Color::FromHex(0x1f4e9c);
    style.width = 0.8;
    DrawDeformedGrid(ax, g, r.phi, style);
  }
  {
    plot::Axes& ax = fig.At(0, 4);
    ax.SetTitle("det Dphi").SetXLabel("x [mm]").SetYLabel("y [mm]").SetEqualAspect();
    plot::ImageOptions io;
    io.colormap = plot::Colormap::kCoolwarm;
    const double spread = std::max(std::abs(std::log(std::max(r.min_jacobian, 1e-3))),
                                   std::abs(std::log(std::max(r.max_jacobian, 1e-3))));
    Eigen::MatrixXd log_jac = MidSlice(g, r.jacobian.data.data()).array().max(1e-6).log();
    io.vmin = -spread;
    io.vmax = spread;
    io.origin = plot::Origin::kUpper;
    io.colorbar_label = "log det Dphi";
    ax.Image(log_jac, ExtentOf(g), io);
  }
  fig.SavePng(path);
}

void WriteRegistrationOutputs(const std::string& dir, const RegistrationResult& result,
                              const Image& moving, const Image& fixed, ImageFormat fixed_format) {
  EnsureOutputDirectory(dir);
  const std::filesystem::path out(dir);
  ImageWriteOptions write_options;
  if (fixed_format == ImageFormat::kPng) {
    write_options.type = moving.source_type == ElementType::kUint16 ? ElementType::kUint16
                                                                    : ElementType::kUint8;
  }
  WriteImage((out / (std::string("warped") + ExtensionOf(fixed_format))).string(), result.warped,
             write_options);
  WriteVectorField((out / "displacement.nii.gz").string(), result.displacement);
  WriteImage((out / "jacobian.nii.gz").string(), result.jacobian, ElementType::kFloat32);
  WriteRegistrationTrajectory((out / "trajectory.h5").string(), result);
  WriteFileAtomically((out / "metrics.json").string(), MetricsJson(result).dump(2) + "\n");
  WriteSummaryFigure((out / "summary.png").string(), result, moving, fixed);
}

Image ApplyRegistration(const std::string& dir, const Image& image, Interpolation interpolation,
                        std::optional<double> outside_value) {
  const std::filesystem::path path = std::filesystem::path(dir) / "displacement.nii.gz";
  if (!std::filesystem::exists(path)) {
    throw InputError("--transform: '" + dir + "' has no displacement.nii.gz (expected the --out "
                     "folder of `diffeoflow register`)");
  }
  ImageReadOptions read;
  read.argument = "--transform";
  const VectorField displacement = ReadVectorField(path.string(), read);
  CheckWorldOverlap(image.grid, displacement.grid, "--image",
                    "the fixed grid of --transform " + dir);
  const VectorField positions = PositionFromDisplacement(displacement);
  return WarpThroughWorld(image, displacement.grid, positions.data, interpolation, outside_value);
}

}  // namespace diffeoflow::registration
