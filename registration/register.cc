#include "registration/register.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include "registration/image_ops.h"
#include "registration/register_checkpoint.h"
#include "registration/shooting.h"
#include "registration/traced_map.h"
#include "solvers/clock.h"
#include "solvers/errors.h"
#include "solvers/interrupt.h"

namespace diffeoflow::registration {

namespace {

using Clock = std::chrono::steady_clock;

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


// The images of every pyramid level, coarsest first; at each level the moving image lies on the
// fixed image's grid (the map samples it in its own voxel coordinates) or on its own grid.
struct Pyramid {
  std::vector<Image> moving, fixed;
  int levels() const { return static_cast<int>(fixed.size()); }
};

// Up to `levels` levels of a Gaussian pyramid (image_ops.h Downsample, which halves the grid);
// a level is added only while every axis keeps at least 16 voxels.
// A moving image on the fixed grid stays on each level's fixed grid; one on its own grid (the
// data term reads it through the world, DataTerm) is halved on its own grid.
Pyramid BuildPyramid(const Image& moving, const Image& fixed, int levels) {
  const bool on_fixed_grid = SameWorldGrid(moving.grid, fixed.grid);
  Pyramid pyramid{{moving}, {fixed}};  // finest first while building
  for (int l = 1; l < levels; ++l) {
    const Grid next = HalvedGrid(pyramid.fixed.back().grid);
    bool too_small = false;
    for (int a = 0; a < next.dim; ++a) too_small = too_small || next.size[a] < 16;
    if (too_small) break;
    pyramid.fixed.push_back(Downsample(pyramid.fixed.back()));
    pyramid.moving.push_back(Downsample(pyramid.moving.back()));
    if (on_fixed_grid) pyramid.moving.back().grid = pyramid.fixed.back().grid;
  }
  std::reverse(pyramid.moving.begin(), pyramid.moving.end());
  std::reverse(pyramid.fixed.begin(), pyramid.fixed.end());
  return pyramid;
}

FlowProblemOptions FlowOptionsOf(const RegistrationOptions& options) {
  FlowProblemOptions flow;
  flow.sigma = options.sigma;
  flow.similarity = options.similarity.value();  // resolved (ResolvedFor)
  flow.ncc_radius = options.ncc_radius;
  flow.time_steps = options.time_steps;
  flow.solver = options.solver;
  // --threads reaches the particle loops of shooting and LDDMM; FFTW is capped per level.
  flow.threads = options.metric.threads;
  return flow;
}

// Fields (dim components each) in one vector of free variables: the T + 1 velocity grids of
// LDDMM, or the one initial velocity of shooting.
int FieldsPerVector(const RegistrationOptions& options, int dim) {
  return options.method == RegistrationMethod::kLddmm ? (options.time_steps + 1) * dim : dim;
}

// One pyramid level's problem, either method: the flow mesh, the metric on it and the objective
// E(w) of the whitened variable w, optionally restricted to the band-limited subspace.
struct LevelProblem {
  Grid mesh;
  MetricOptions metric_options;  // options.metric, FFTW threads capped on small meshes
  MetricPowers metric;           // K, K^{1/2}, K^{−1/2} on the mesh
  std::unique_ptr<VelocityFieldObjective> lddmm;
  std::unique_ptr<ShootingObjective> shooting;
  std::unique_ptr<MetricOperator> band_metric;
  std::unique_ptr<BandLimitedObjective> band;

  Objective& objective() {
    return lddmm ? static_cast<Objective&>(*lddmm) : static_cast<Objective&>(*shooting);
  }
  // What the optimiser sees: the band-limited objective once RestrictToBand ran.
  Objective& optimised() { return band ? static_cast<Objective&>(*band) : objective(); }
  const FlowEvaluation& last() const { return lddmm ? lddmm->last() : shooting->last(); }
  const MeshToImageMap& map() const { return lddmm ? lddmm->map() : shooting->map(); }

  // Keeps only the Fourier modes |k_d| ≤ B of the whitened variable (see band_limit in
  // register.h) from now on, and projects w onto them.
  void RestrictToBand(int band_limit, Vector& w) {
    band_metric = std::make_unique<MetricOperator>(mesh, metric_options);
    band = std::make_unique<BandLimitedObjective>(objective(), *band_metric, band_limit, mesh.dim);
    band->Project(w, &w);
  }
};

// The problem of one level on the mesh MeshFor(fixed.grid).
std::unique_ptr<LevelProblem> MakeLevelProblem(const Image& moving, const Image& fixed,
                                               const RegistrationOptions& options,
                                               const FlowProblemOptions& flow) {
  auto problem = std::make_unique<LevelProblem>();
  problem->mesh = MeshFor(fixed.grid, options);
  problem->metric_options = options.metric;
  // FFTW threads only pay on large meshes; on small ones they cost more than they save.
  if (problem->mesh.voxels() < (1 << 16)) problem->metric_options.threads = 1;
  problem->metric = MakeMetricPowers(problem->mesh, problem->metric_options);
  if (options.method == RegistrationMethod::kLddmm) {
    problem->lddmm =
        std::make_unique<VelocityFieldObjective>(moving, fixed, problem->mesh, problem->metric, flow);
  } else {
    problem->shooting =
        std::make_unique<ShootingObjective>(moving, fixed, problem->mesh, problem->metric, flow);
  }
  return problem;
}

// The starting point of a level in the whitened variable: zero on the first level; above it the
// velocity v carried from the coarser level (on `carried_grid`), interpolated linearly in mm onto
// this level's mesh when the mesh changed, and whitened again, w = K^{−1/2} v.
Vector CarriedInitialValue(const Vector& carried_velocity, const Grid& carried_grid,
                           const LevelProblem& problem, int fields_per_vector,
                           const std::string& checkpoint) {
  const Grid& mesh = problem.mesh;
  const Eigen::Index block = mesh.dim * mesh.voxels();
  const int time_points = fields_per_vector / mesh.dim;
  Vector w;
  w.setZero(time_points * block);
  if (carried_velocity.size() == 0) return w;
  if (carried_grid.SameShape(mesh)) {
    w = carried_velocity;
  } else {
    const Eigen::Index coarse_block = mesh.dim * carried_grid.voxels();
    if (carried_velocity.size() != time_points * coarse_block) {
      throw InputError(checkpoint + ": carried velocity has " +
                       std::to_string(carried_velocity.size()) + " values, expected " +
                       std::to_string(time_points * coarse_block));
    }
    for (int k = 0; k < time_points; ++k) {
      VectorField coarse{carried_grid, carried_velocity.segment(k * coarse_block, coarse_block)};
      w.segment(k * block, block) = UpsampleField(coarse, mesh).data;
    }
  }
  problem.metric.inverse_half(w.data(), fields_per_vector);
  return w;
}

// A level starts from the carried (or velocity-field) value only when its energy is below that
// of the identity, w = 0: a map carried up from a coarser level can be worse than no map on the
// finer images (extreme compressions do not survive the change of resolution), and the
// optimiser would then stay in that worse basin. A start whose energy cannot be evaluated also
// falls back to zero.
void KeepStartBelowIdentity(Objective& objective, Vector& w) {
  if (w.size() == 0 || w.isZero(0.0)) return;
  const Vector zero = Vector::Zero(w.size());
  double carried = 0.0;
  try {
    carried = objective.Evaluate(w, nullptr);
  } catch (const NumericalError&) {
    w = zero;
    return;
  }
  if (!(carried < objective.Evaluate(zero, nullptr))) w = zero;
}

// "level 2/3 (intermediate)", for messages.
std::string LevelName(int level, int levels) {
  const char* kinds[] = {"coarsest", "intermediate", "finest"};
  return "level " + std::to_string(level + 1) + "/" + std::to_string(levels) + " (" +
         kinds[level == levels - 1 ? 2 : level == 0 ? 0 : 1] + ")";
}

struct LevelRun {
  bool interrupted = false;
  int iterations = 0;  // of this level
};

// Minimises the level's objective from `w` (in place) and records the level in `state`: where it
// starts in the loss history, E after each iteration, the counters, the termination, and whether
// the total time limit ran out. When the time is up or no iterations are requested, E is only
// evaluated at w. A SIGINT/SIGTERM (solvers/interrupt.h) returns `interrupted` with `state` left
// as it was. Throws NumericalError naming the level when E or w is not finite.
LevelRun SolveLevel(Objective& objective, Vector& w, const Grid& mesh, int level, int levels,
                    const RegistrationOptions& options, Clock::time_point start,
                    RegistrationCheckpoint& state) {
  const int dim = mesh.dim;
  OptimizerOptions opt;
  opt.optimizer = options.optimizer;
  opt.max_iterations = options.iterations;
  // Coarse levels only prepare the next one: their stopping rule is looser.
  opt.function_tolerance =
      options.relative_decrease * std::pow(options.coarse_tolerance_factor, levels - 1 - level);
  opt.tolerance_window = options.tolerance_window;
  opt.gradient_tolerance = 1e-12;
  opt.parameter_tolerance = 1e-12;
  opt.learning_rate = options.gd_learning_rate / VoxelVolume(mesh);
  opt.lbfgs_rank = options.method == RegistrationMethod::kLddmm && dim == 3 ? 5 : 10;
  if (options.max_seconds > 0) {
    opt.max_seconds = std::max(options.max_seconds - SecondsSince(start), 1e-3);
  }
  opt.callback = [&](const IterationReport& report) {
    if (options.progress) {
      options.progress({level, levels, report.iteration, report.cost, SecondsSince(start)});
    }
    return true;
  };
  const std::string where = LevelName(level, levels);
  const std::string advice =
      " (try a larger --sigma or --alpha, more --steps, or normalised intensities)";
  const bool optimise = !state.time_up && options.iterations > 0;
  OptimizerSummary summary;
  double energy = 0.0;
  try {
    if (InterruptRequested()) {
      summary.termination_type = Termination::kInterrupted;
      summary.termination = "interrupted";
    } else if (optimise) {
      summary = Minimize(objective, w, opt);
    } else {
      energy = objective.Evaluate(w, nullptr);
    }
  } catch (const NumericalError& e) {
    throw NumericalError("registration at " + where + ": " + e.what() + advice);
  }
  if (summary.termination_type == Termination::kInterrupted) return {true, summary.iterations};

  state.level_starts.push_back(static_cast<int>(state.loss_history.size()));
  if (optimise) {
    state.iterations += summary.iterations;
    state.evaluations += summary.evaluations;
    state.termination_type = summary.termination_type;
    state.termination = summary.termination;
    for (double c : summary.cost_history) state.loss_history.push_back(c);
  } else {
    state.loss_history.push_back(energy);
  }
  if (w.allFinite() && !std::isfinite(state.loss_history.back())) {
    // Ceres reports no cost when it stops before its first iteration (e.g. a zero gradient at
    // the start, or an initial point it cannot evaluate): evaluate E where the level ended.
    try {
      state.loss_history.back() = objective.Evaluate(w, nullptr);
    } catch (const NumericalError& e) {
      throw NumericalError("registration at " + where + ": " + e.what() + advice);
    }
  }
  if (!w.allFinite() || !std::isfinite(state.loss_history.back())) {
    throw NumericalError("registration at " + where + ": the energy or the velocity became " +
                         "NaN or Inf" + advice);
  }
  if (options.max_seconds > 0 && SecondsSince(start) >= options.max_seconds) {
    state.time_up = true;
    state.termination_type = Termination::kTimeLimit;
    state.termination = "time limit";
  }
  return {false, summary.iterations};
}

// The start of shooting on the coarsest level (ShootingStart::kVelocityField): velocity-field
// LDDMM solved on the same level, and its initial velocity v_0 whitened for shooting,
// w = K^{−1/2} v_0. At its optimum the velocity-field path is a geodesic, so v_0 is where the
// shooting energy's basin lies; its iterations and evaluations are added to `counts` (the caller
// adds them to the run's totals once the level is complete, so that a resumed level counts them
// once).
Vector VelocityFieldStart(const Image& moving, const Image& fixed,
                          const RegistrationOptions& options, const FlowProblemOptions& flow,
                          const LevelProblem& shooting, int levels, Clock::time_point start,
                          bool time_up, RegistrationCheckpoint& counts) {
  RegistrationOptions lddmm = options;
  lddmm.method = RegistrationMethod::kLddmm;
  lddmm.progress = nullptr;  // the level's progress reports are shooting's iterations
  std::unique_ptr<LevelProblem> problem = MakeLevelProblem(moving, fixed, lddmm, flow);
  Vector w = Vector::Zero(problem->objective().num_parameters());
  if (options.band_limit > 0) problem->RestrictToBand(options.band_limit, w);
  RegistrationCheckpoint scratch;
  scratch.time_up = time_up;
  const Eigen::Index block = shooting.mesh.dim * shooting.mesh.voxels();
  try {
    SolveLevel(problem->optimised(), w, problem->mesh, 0, levels, lddmm, start, scratch);
  } catch (const NumericalError&) {
    return Vector::Zero(block);  // the start is a help, not a requirement: shoot from m_0 = 0
  }
  counts.iterations += scratch.iterations;
  counts.evaluations += scratch.evaluations;
  if (problem->band) problem->band->Project(w, &w);
  Vector v0 = w.head(problem->mesh.dim * problem->mesh.voxels());
  problem->metric.half(v0.data(), problem->mesh.dim);
  shooting.metric.inverse_half(v0.data(), shooting.mesh.dim);
  // The geodesic of v_0 is not the velocity-field path (only at an exact optimum would it be):
  // KeepStartBelowIdentity keeps it only when its shooting energy is below that of m_0 = 0.
  return v0;
}

// The velocity fields the final map was traced through, as TraceMap took them.
struct TracedFlow {
  Grid mesh;
  std::vector<Vector> fields;
  MeshKernel kernel = MeshKernel::kMultilinear;
  int steps = 0;
};

// φ⁻¹ by the traced flow run backward (BackwardFields), sampled on `target`: for each voxel y of
// `target`, the world point q = A_target(y) starts at s = A_fixed⁻¹(q) (fixed voxel coordinates;
// in 2-D the plane's coordinates), ends at s' = φ⁻¹(s), and the displacement is the world step
// A_fixed(s') − q = D_fixed S_fixed (s' − s), stored in mm along target's axes. Also the RMS over
// the points with s inside the fixed grid of φ(φ⁻¹(s)) − s, φ linearly interpolated from
// result.phi, in fixed voxels.
void AssembleInverse(const TracedFlow& flow, const Grid& target, const RegistrationOptions& options,
                     RegistrationResult& result) {
  const auto start = Clock::now();
  const Grid& fixed = result.grid;
  const int dim = fixed.dim;
  const Eigen::Index n = target.voxels();
  Vector s(dim * n);
  const Vector identity = IdentityPositions(target);
  for (Eigen::Index y = 0; y < n; ++y) {
    Eigen::Vector3d p = Eigen::Vector3d::Zero();
    for (int a = 0; a < dim; ++a) p[a] = identity[a * n + y];
    const Eigen::Vector3d q = fixed.PhysicalToVoxel(target.VoxelToPhysical(p));
    for (int a = 0; a < dim; ++a) s[a * n + y] = q[a];
  }
  const TracedMap inverse = TracePoints(fixed, flow.mesh, BackwardFields(flow.fields), flow.kernel,
                                        flow.steps, s, options.solver, options.metric.threads);
  Eigen::Matrix3d to_target = Eigen::Matrix3d::Identity();
  to_target.topLeftCorner(dim, dim) = target.direction.topLeftCorner(dim, dim).inverse() *
                                      fixed.direction.topLeftCorner(dim, dim);
  result.inverse_displacement.grid = target;
  result.inverse_displacement.data.resize(dim * n);
  double squares = 0.0;
  Eigen::Index inside = 0;
  for (Eigen::Index y = 0; y < n; ++y) {
    Eigen::Vector3d step = Eigen::Vector3d::Zero();
    for (int a = 0; a < dim; ++a) {
      step[a] = (inverse.positions[a * n + y] - s[a * n + y]) * fixed.spacing_mm[a];
    }
    const Eigen::Vector3d u = to_target * step;
    for (int a = 0; a < dim; ++a) result.inverse_displacement.data[a * n + y] = u[a];
    bool in = true;
    double back[3] = {0.0, 0.0, 0.0};
    for (int a = 0; a < dim; ++a) {
      in = in && s[a * n + y] >= 0.0 && s[a * n + y] <= fixed.size[a] - 1.0;
      back[a] = inverse.positions[a * n + y];
    }
    if (!in) continue;
    for (int a = 0; a < dim; ++a) {
      const double there = SampleLinear(fixed, result.phi.data() + a * fixed.voxels(), back[0],
                                        back[1], back[2]);
      squares += (there - s[a * n + y]) * (there - s[a * n + y]);
    }
    ++inside;
  }
  result.inverse_consistency_rms_voxels =
      inside > 0 ? std::sqrt(squares / static_cast<double>(inside)) : 0.0;
  result.inverse_seconds = SecondsSince(start);
}

// Fills the result from the finest level's final iterate w: the path on the mesh (positions φ_t,
// velocities, momenta for shooting, ‖v_t‖_V), E and its kinetic part, the free-variable count, the
// normalised moving image along the path and φ on the fixed grid with the SSDs, and from the
// images as given the warped moving image, u (mm) and det Dφ.
void AssembleResult(LevelProblem& problem, const Vector& w, const Image& moving,
                    const Image& fixed, const ImageView& moving_input, const Grid& fixed_input,
                    const RegistrationOptions& options, RegistrationResult& result,
                    TracedFlow& flow_used) {
  const Grid& grid = fixed.grid;
  const Grid& mesh = problem.mesh;
  const int dim = grid.dim;
  const Eigen::Index n = grid.voxels();
  const Eigen::Index mesh_block = dim * mesh.voxels();
  const double mesh_dx = VoxelVolume(mesh);
  std::vector<Vector> states;
  const MeshToImageMap& map = problem.map();
  result.mesh = mesh;
  if (problem.lddmm) {
    VelocityFieldObjective& objective = *problem.lddmm;
    result.times = objective.OutputTimes();
    states = objective.Path(w);
    const Vector v = objective.Velocities(w);
    for (int k = 0; k <= options.time_steps; ++k) {
      result.velocities.push_back(v.segment(k * mesh_block, mesh_block));
    }
    result.velocity_norms = objective.VelocityNorms(w);
    result.positions = states;
  } else {
    ShootingObjective& objective = *problem.shooting;
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
    result.initial_momentum = objective.InitialMomentum(w);
  }
  try {
    problem.objective().Evaluate(w, nullptr);
  } catch (const NumericalError& e) {
    throw NumericalError(std::string("registration: final evaluation: ") + e.what());
  }
  result.kinetic_energy = problem.last().kinetic;
  result.energy = problem.last().energy;
  result.parameters = static_cast<long>(w.size());
  if (options.band_limit > 0) {
    // Free variables of the band-limited space: (2B + 1)^dim Fourier modes per component and
    // time point (fewer when the mesh is smaller than the band).
    long modes = 1;
    for (int a = 0; a < dim; ++a) modes *= std::min(2 * options.band_limit + 1, mesh.size[a]);
    result.parameters = modes * FieldsPerVector(options, dim);
  }

  // The outputs come from the map traced at image resolution through the same velocities, with
  // det Dφ carried along the flow (traced_map.h): the mesh map interpolated onto the image grid
  // serves the optimiser but can fold between mesh nodes where the flow compresses strongly.
  const int threads = options.metric.threads;
  flow_used.mesh = mesh;
  if (problem.lddmm) {
    const int substeps = problem.lddmm->Substeps(problem.lddmm->Velocities(w));
    flow_used.fields = result.velocities;
    flow_used.kernel = MeshKernel::kMultilinear;
    flow_used.steps = options.time_steps * substeps;
  } else {
    int substeps = 1;
    flow_used.fields = problem.shooting->StepVelocities(w, &substeps);
    flow_used.kernel = MeshKernel::kQuadraticBSpline;
    flow_used.steps = options.time_steps * substeps;
  }
  const TracedMap traced = TraceMap(grid, mesh, flow_used.fields, flow_used.kernel,
                                    flow_used.steps, options.solver, threads);
  result.substeps = traced.steps / options.time_steps;
  Vector q;
  for (std::size_t k = 0; k < result.positions.size(); ++k) {
    const bool last = k + 1 == result.positions.size();
    if (last) {
      q = traced.positions;
    } else {
      map.Positions(result.positions[k], &q);
    }
    Vector image(n);
    SampleScalar(grid, moving.data.data(), q, true, image.data());
    if (last) result.ssd_final = (image - fixed.data).squaredNorm();
    result.images.push_back(image.cast<float>());
  }
  result.phi = traced.positions;
  const Vector& phi = result.phi;
  result.ssd_initial = (moving.data - fixed.data).squaredNorm();

  result.warped.grid = fixed_input;
  result.warped.source_type = moving_input.source_type;
  result.warped.data.resize(n);
  // The moving image as given, on the fixed grid (its grid is that size, see MovingInFixedSpace).
  SampleScalar(moving_input, phi, true, result.warped.data.data());

  result.displacement.grid = fixed_input;
  result.displacement.data = phi - IdentityPositions(grid);
  for (int c = 0; c < dim; ++c) result.displacement.component(c) *= grid.spacing_mm[c];

  result.jacobian.grid = fixed_input;
  result.jacobian.data = traced.jacobian;
  result.min_jacobian = result.jacobian.data.minCoeff();
  result.max_jacobian = result.jacobian.data.maxCoeff();
}

// Throws NumericalError unless E, φ and det Dφ are finite and at most `max_folded_fraction` of
// the voxels have det Dφ ≤ 0 (a fold: φ is not a diffeomorphism there).
void CheckMapHealth(const RegistrationResult& result, double max_folded_fraction) {
  if (!std::isfinite(result.energy) || !result.phi.allFinite() ||
      !result.jacobian.data.allFinite()) {
    throw NumericalError("registration: the final map or energy is NaN or Inf (try a larger "
                         "--sigma or --alpha, or more --steps)");
  }
  const Eigen::Index n = result.jacobian.data.size();
  const Eigen::Index folded = (result.jacobian.data.array() <= 0.0).count();
  const double folded_fraction = static_cast<double>(folded) / static_cast<double>(n);
  if (folded_fraction > max_folded_fraction) {
    char message[512];
    std::snprintf(message, sizeof(message),
                  "registration folded the map: det Dphi <= 0 at %ld of %ld voxels (%.3g%%, "
                  "min det Dphi %.3g; allowed %.3g%%); not a diffeomorphism, no result written "
                  "(try a larger --alpha or --sigma, or more --steps)",
                  static_cast<long>(folded), static_cast<long>(n), 100.0 * folded_fraction,
                  result.min_jacobian, 100.0 * max_folded_fraction);
    throw NumericalError(message);
  }
}

// The counters and the loss history of the completed levels.
void CopyProgress(const RegistrationCheckpoint& state, RegistrationResult& result) {
  result.iterations = state.iterations;
  result.evaluations = state.evaluations;
  result.loss_history = state.loss_history;
  result.level_starts = state.level_starts;
  result.termination_type = state.termination_type;
  result.termination = state.termination;
}

}  // namespace


Grid MeshFor(const Grid& image, const RegistrationOptions& requested) {
  const RegistrationOptions options = requested.ResolvedFor(image);
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
  if (sigma != kAuto) positive(sigma, "--sigma");
  if (ncc_radius < 1) {
    throw InputError("--ncc-radius must be >= 1 (voxels), got " + std::to_string(ncc_radius));
  }
  positive(metric.alpha_mm2, "--alpha");
  positive(metric.gamma, "--gamma");
  std::string error;
  if (!metric.IsValid(&error)) throw InputError(error);
  if (time_steps < 1 && time_steps != kAuto) {
    throw InputError("--steps must be >= 1, got " + std::to_string(time_steps));
  }
  if (levels < 1 && levels != kAuto) {
    throw InputError("--levels must be >= 1, got " + std::to_string(levels));
  }
  if (iterations < 0) {
    throw InputError("--iterations must be >= 0, got " + std::to_string(iterations));
  }
  if (max_seconds < 0 || !std::isfinite(max_seconds)) {
    throw InputError("--time-limit must be >= 0 seconds");
  }
  if (!(relative_decrease >= 0)) throw InputError("--tolerance must be >= 0");
  if (tolerance_window < 1 && tolerance_window != kAuto) {
    throw InputError("tolerance_window must be >= 1, got " + std::to_string(tolerance_window));
  }
  if (band_limit < 0) {
    throw InputError("--band-limit must be >= 0, got " + std::to_string(band_limit));
  }
  positive(gd_learning_rate, "--learning-rate");
  if ((!(mesh_spacing_fraction >= 0) || !std::isfinite(mesh_spacing_fraction)) &&
      mesh_spacing_fraction != kAuto) {
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
  affine.Validate();
  if (initial_affine && !initial_affine->allFinite()) {
    throw InputError("--initial-affine: the matrix holds NaN or Inf");
  }
}

RegistrationOptions RegistrationOptions::ResolvedFor(const Grid& fixed) const {
  RegistrationOptions o = *this;
  const bool volume = fixed.dim == 3;
  if (o.sigma == kAuto) o.sigma = volume ? 0.005 : 0.002;
  if (o.time_steps == kAuto) o.time_steps = volume ? 5 : 8;
  if (o.levels == kAuto) o.levels = volume ? 2 : 3;
  if (o.mesh_spacing_fraction == kAuto) o.mesh_spacing_fraction = volume ? 1.2 : 0.5;
  if (o.tolerance_window == kAuto) o.tolerance_window = volume ? 1 : 10;
  if (!o.affine.similarity) o.affine.similarity = o.similarity.value_or(SimilarityMeasure::kSsd);
  o.affine.ncc_radius = o.ncc_radius;
  o.affine.threads = o.metric.threads;
  if (!o.similarity) o.similarity = volume ? SimilarityMeasure::kLocalNcc : SimilarityMeasure::kSsd;
  return o;
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

std::string RegistrationResult::FullReport() const {
  std::ostringstream out;
  out << "method              " << RegistrationMethodName(method) << "\n"
      << "parameters          " << parameters << "\n"
      << "levels              " << level_starts.size() << "\n"
      << "iterations          " << iterations << "\n"
      << "evaluations         " << evaluations << "\n"
      << "SSD                 " << ssd_initial << " -> " << ssd_final << " (reduction "
      << 100.0 * ssd_reduction() << " %)\n"
      << "energy              " << energy << "\n"
      << "kinetic energy      " << kinetic_energy << "\n"
      << "|v_t|_V spread      " << 100.0 * velocity_norm_spread() << " %\n"
      << "det Dphi            [" << min_jacobian << ", " << max_jacobian << "]\n"
      << "substeps            " << substeps << "\n"
      << "inverse consistency " << inverse_consistency_rms_voxels << " voxels (rms)\n"
      << "termination         " << TerminationName(termination_type) << ": " << termination
      << "\n"
      << "interrupted         " << (interrupted ? "yes" : "no") << "\n"
      << "wall time           " << wall_seconds << " s\n";
  if (!world_space_note.empty()) out << "world space         " << world_space_note << "\n";
  return out.str();
}

void CheckRegistrationInputs(const ImageView& moving, const ImageView& fixed) {
  CheckWorldOverlap(moving.grid, fixed.grid, "--moving", "--fixed");
  if (!AllFinite(moving)) throw InputError("--moving: image contains NaN or Inf");
  if (!AllFinite(fixed)) throw InputError("--fixed: image contains NaN or Inf");
}

RegistrationResult Register(const ImageView& moving_given, const ImageView& fixed_input,
                            const RegistrationOptions& requested) {
  requested.Validate();
  const RegistrationOptions options = requested.ResolvedFor(fixed_input.grid);
  const auto start = Clock::now();
  CheckRegistrationInputs(moving_given, fixed_input);
  // The first working images, computed straight from the inputs' views.
  auto normalized = [&](const ImageView& image) {
    return options.normalize_intensity ? NormalizeIntensity(image) : CopyImage(image);
  };
  Image fixed = normalized(fixed_input);
  // The moving image as given, normalised, for the affine stage and for the data term's read
  // through the world; a grid equal to the fixed one within float tolerance is the fixed grid
  // (world_space.h).
  std::optional<Image> moving_as_given;
  auto as_given = [&]() -> const Image& {
    if (!moving_as_given) {
      moving_as_given = normalized(moving_given);
      if (SameWorldGrid(moving_given.grid, fixed.grid)) moving_as_given->grid = fixed.grid;
    }
    return *moving_as_given;
  };
  // The affine stage (affine.h) on the images as given, each on its own grid.
  AffineStageResult affine_stage;
  const bool affine_stage_runs =
      options.affine.mode != AffineMode::kNone || options.initial_affine.has_value();
  if (affine_stage_runs) {
    affine_stage = RegisterAffine(as_given(), fixed, options.affine,
                                  options.initial_affine ? &*options.initial_affine : nullptr);
    if (InterruptRequested()) {
      // Stopped inside the affine stage: nothing to keep (it takes seconds), no checkpoint.
      RegistrationResult stopped;
      stopped.method = options.method;
      stopped.options = options;
      stopped.interrupted = true;
      stopped.termination_type = Termination::kInterrupted;
      stopped.termination = "interrupted";
      stopped.wall_seconds = SecondsSince(start);
      return stopped;
    }
  }
  // A moving image on another grid is resampled into the fixed image's world (world_space.h),
  // through the affine stage's map when there is one.
  const MovingInFixedSpace moving_in_fixed_space(moving_given, fixed_input.grid,
                                                 affine_stage.affine);
  const ImageView moving_input = moving_in_fixed_space.view();

  Image moving = normalized(moving_input);
  // The map samples the moving image in its own voxel coordinates on the fixed grid.
  moving.grid = fixed.grid;
  FlowProblemOptions flow = FlowOptionsOf(options);
  // The flow's data term reads the moving image as given, on its own grid through the world and
  // the affine (DataTerm), so that it is interpolated once: the pulled-back copy `moving` serves
  // the figures of the result only.
  const bool through_world = moving_in_fixed_space.resampled();
  if (through_world) flow.moving_world_affine = affine_stage.affine;
  const Pyramid pyramid =
      BuildPyramid(through_world ? as_given() : moving, fixed, options.levels);
  moving_as_given.reset();  // the pyramid holds its finest level
  const int levels = pyramid.levels();
  const int fields_per_vector = FieldsPerVector(options, fixed.grid.dim);

  RegistrationResult result;
  result.method = options.method;
  result.options = options;
  result.grid = fixed.grid;
  result.world_space_note = moving_in_fixed_space.note();
  result.affine = affine_stage.affine;
  result.affine_stage = affine_stage;
  result.affine_stage_ran = affine_stage_runs;

  const bool checkpointing = !options.checkpoint.empty();
  const std::string fingerprint =
      checkpointing ? CheckpointFingerprint(moving_input, fixed_input, options) : std::string();
  RegistrationCheckpoint state;  // after the last completed level
  if (checkpointing && options.resume && std::filesystem::exists(options.checkpoint)) {
    state = ReadRegistrationCheckpoint(options.checkpoint, fingerprint, levels);
    result.resumed_from_level = state.levels_done;
  }
  // A level that is already done is rebuilt only when it is the finest one (for the outputs).
  const int first_level = std::min(state.levels_done, levels - 1);

  Vector w;
  std::unique_ptr<LevelProblem> problem;
  for (int level = first_level; level < levels; ++level) {
    problem.reset();
    problem = MakeLevelProblem(pyramid.moving[level], pyramid.fixed[level], options, flow);
    if (level < state.levels_done) {
      // Finished before the checkpoint: its final iterate is stored as it was.
      w = state.w;
      if (w.size() != problem->objective().num_parameters()) {
        throw InputError(options.checkpoint + ": stored iterate has " + std::to_string(w.size()) +
                         " values, the finest level " +
                         std::to_string(problem->objective().num_parameters()));
      }
      break;
    }
    const Grid carried_grid =
        level > 0 ? MeshFor(pyramid.fixed[level - 1].grid, options) : Grid();
    w = CarriedInitialValue(state.carried_velocity, carried_grid, *problem, fields_per_vector,
                            options.checkpoint);
    RegistrationCheckpoint start_counts;
    if (level == 0 && options.method == RegistrationMethod::kShooting &&
        options.shooting_start == ShootingStart::kVelocityField) {
      w = VelocityFieldStart(pyramid.moving[0], pyramid.fixed[0], options, flow, *problem, levels,
                             start, state.time_up, start_counts);
    }
    if (options.band_limit > 0) problem->RestrictToBand(options.band_limit, w);
    KeepStartBelowIdentity(problem->optimised(), w);

    const LevelRun run = SolveLevel(problem->optimised(), w, problem->mesh, level, levels, options,
                                    start, state);
    if (run.interrupted) {
      // The checkpoint keeps the completed levels; this level restarts on --resume.
      if (checkpointing) WriteRegistrationCheckpoint(options.checkpoint, fingerprint, state);
      CopyProgress(state, result);
      result.interrupted = true;
      result.termination_type = Termination::kInterrupted;
      result.termination = "interrupted";
      result.iterations = state.iterations + run.iterations;
      result.wall_seconds = SecondsSince(start);
      return result;
    }
    state.iterations += start_counts.iterations;
    state.evaluations += start_counts.evaluations;
    // Carried up: v = K^{1/2} w of the band-limited iterate.
    if (problem->band) problem->band->Project(w, &w);
    state.carried_velocity = w;
    problem->metric.half(state.carried_velocity.data(), fields_per_vector);
    state.w = w;
    state.levels_done = level + 1;
    if (checkpointing) WriteRegistrationCheckpoint(options.checkpoint, fingerprint, state);
  }
  CopyProgress(state, result);
  if (options.iterations == 0) {
    result.termination_type = Termination::kNoIterations;
    result.termination = "no iterations requested";
  }

  TracedFlow flow_used;
  AssembleResult(*problem, w, moving, fixed, moving_input, fixed_input.grid, options, result,
                 flow_used);
  if (moving_in_fixed_space.resampled()) {
    // The warped image from the moving image as given, interpolated once through x ↦ A(φ(x))
    // (not the resampled copy warped again).
    result.warped = WarpThroughWorld(moving_given, fixed_input.grid, result.phi,
                                     Interpolation::kLinear, std::nullopt, result.affine);
  }
  if (affine_stage_runs) {
    // AssembleResult measured the SSD against the moving image pulled back by A; ssd_initial is
    // at the identity map (the images as given, as without an affine stage).
    result.ssd_after_affine = result.ssd_initial;
    const MovingInFixedSpace identity(moving_given, fixed_input.grid);
    result.ssd_initial = (normalized(identity.view()).data - fixed.data).squaredNorm();
  }
  CheckMapHealth(result, options.max_folded_fraction);
  result.moving_grid = moving_given.grid;
  // With an affine stage the moving image's grid is not where φ⁻¹ acts: sample it on the fixed
  // grid (ANTs' InverseWarp), the affine's inverse applied before it.
  if (options.inverse_map) {
    AssembleInverse(flow_used,
                    result.affine.isIdentity(1e-12) ? moving_given.grid : fixed_input.grid, options,
                    result);
  }
  result.wall_seconds = SecondsSince(start);
  return result;
}

GeodesicShot ShootGeodesic(const Grid& grid, const Vector& initial_momentum,
                           const RegistrationOptions& requested) {
  const RegistrationOptions options = requested.ResolvedFor(grid);  // idempotent
  const Grid mesh = MeshFor(grid, options);
  const Eigen::Index block = mesh.dim * mesh.voxels();
  if (initial_momentum.size() != block) {
    throw InputError("initial momentum has " + std::to_string(initial_momentum.size()) +
                     " values, the mesh " + SizeText(mesh) + " of the grid " + SizeText(grid) +
                     " needs " + std::to_string(block));
  }
  MetricOptions metric_options = options.metric;
  if (mesh.voxels() < (1 << 16)) metric_options.threads = 1;  // as MakeLevelProblem
  const MetricPowers metric = MakeMetricPowers(mesh, metric_options);
  Image blank;
  blank.grid = grid;
  blank.data = Vector::Zero(grid.voxels());
  ShootingObjective objective(blank, blank, mesh, metric, FlowOptionsOf(options));
  // StepVelocities takes the whitened w with m_0 = K^{−1/2} w.
  Vector w = initial_momentum;
  metric.half(w.data(), mesh.dim);
  GeodesicShot shot;
  const std::vector<Vector> fields = objective.StepVelocities(w, &shot.substeps);
  const int steps = options.time_steps * shot.substeps;
  const int threads = options.metric.threads;
  const TracedMap forward = TraceMap(grid, mesh, fields, MeshKernel::kQuadraticBSpline, steps,
                                     options.solver, threads);
  shot.phi = forward.positions;
  shot.jacobian = forward.jacobian;
  const TracedMap backward =
      TracePoints(grid, mesh, BackwardFields(fields), MeshKernel::kQuadraticBSpline, steps,
                  IdentityPositions(grid), options.solver, threads);
  shot.inverse_phi = backward.positions;
  Vector state(2 * block);
  state.head(block) = IdentityPositions(mesh);
  state.tail(block) = initial_momentum;
  shot.velocity_norm = objective.dynamics().VelocityNorm(state) * std::sqrt(metric.voxel_volume);
  return shot;
}

}  // namespace diffeoflow::registration
