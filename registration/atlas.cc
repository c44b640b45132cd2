#include "registration/atlas.h"

#include <chrono>
#include <cmath>
#include <exception>
#include <iterator>
#include <map>
#include <utility>

#include "registration/affine.h"
#include "registration/image_io.h"
#include "registration/image_ops.h"
#include "registration/lddmm.h"
#include "registration/world_space.h"
#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

using Clock = std::chrono::steady_clock;
using Vector = Eigen::VectorXd;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A worker's error as FirstError carries it: its kind in the first character (I: InputError,
// N: NumericalError, E: anything else), then the message.
std::string Tagged(const std::exception_ptr& error, const std::string& context) {
  try {
    std::rethrow_exception(error);
  } catch (const InputError& e) {
    return "I" + context + e.what();
  } catch (const NumericalError& e) {
    return "N" + context + e.what();
  } catch (const std::exception& e) {
    return "E" + context + e.what();
  }
}

// Every worker calls it before a reduction: throws the lowest-ranked worker's error, as its kind.
void StopOnFirstError(Workers& workers, const std::string& local) {
  const std::string first = workers.FirstError(local);
  if (first.empty()) return;
  const std::string message = first.substr(1);
  if (first[0] == 'I') throw InputError(message);
  if (first[0] == 'N') throw NumericalError(message);
  throw std::runtime_error(message);
}

std::string SubjectContext(const AtlasSubjects& subjects, int index) {
  return "atlas: subject " + std::to_string(index) + " (" +
         subjects.names[static_cast<std::size_t>(index)] + "): ";
}

Image Normalized(const Image& image) { return NormalizeIntensity(image); }

// The subjects a worker registers in a round: those it loaded (AtlasSubjects::images) and, after
// a rebalance, those it reads (AtlasSubjects::read), kept only while it owns them.
class HeldSubjects {
 public:
  explicit HeldSubjects(const AtlasSubjects& subjects)
      : subjects_(subjects), owned_(subjects.owned) {}

  const std::vector<int>& owned() const { return owned_; }

  void Own(std::vector<int> owned) {
    owned_ = std::move(owned);
    for (auto it = read_.begin(); it != read_.end();) {
      it = std::binary_search(owned_.begin(), owned_.end(), it->first) ? std::next(it)
                                                                        : read_.erase(it);
    }
  }

  // Subject i's image (it must be owned); reads it on first use when it was not loaded here.
  const Image& image(int i) {
    const auto loaded = std::lower_bound(subjects_.owned.begin(), subjects_.owned.end(), i);
    if (loaded != subjects_.owned.end() && *loaded == i) {
      return subjects_.images[static_cast<std::size_t>(loaded - subjects_.owned.begin())];
    }
    auto found = read_.find(i);
    if (found == read_.end()) found = read_.emplace(i, subjects_.read(i)).first;
    return found->second;
  }

 private:
  const AtlasSubjects& subjects_;
  std::vector<int> owned_;
  std::map<int, Image> read_;
};

}  // namespace

void AtlasOptions::Validate() const {
  if (iterations < 0) {
    throw InputError("--iterations must be >= 0, got " + std::to_string(iterations));
  }
  if (!(tolerance >= 0.0) || !std::isfinite(tolerance)) {
    throw InputError("--atlas-tolerance must be a finite number >= 0");
  }
  if (registration.method != RegistrationMethod::kShooting) {
    throw InputError("--method: the atlas averages initial momenta, which needs geodesic "
                     "shooting (got " + RegistrationMethodName(registration.method) + ")");
  }
  registration.Validate();
}

AtlasSubjects LoadAtlasSubjects(const std::vector<std::string>& paths, const std::string& argument,
                                const Image* template_image, Workers& workers) {
  const int total = static_cast<int>(paths.size());
  if (total < 2) {
    throw InputError(argument + ": an atlas needs at least 2 subjects, got " +
                     std::to_string(total));
  }
  if (workers.count() > total) {
    throw InputError(argument + ": " + std::to_string(total) + " subjects for " +
                     std::to_string(workers.count()) +
                     " workers (every worker needs at least one subject; start fewer ranks)");
  }
  AtlasSubjects subjects;
  subjects.names = paths;
  subjects.owned = OwnedItems(total, workers);
  std::string local;
  try {
    if (template_image != nullptr) {
      subjects.reference = *template_image;
      subjects.reference_is_template = true;
    } else {
      subjects.reference = ReadImage(paths[0], {true, argument});
    }
  } catch (...) {
    local = Tagged(std::current_exception(), SubjectContext(subjects, 0));
  }
  // Subject i, read and checked against the reference (a copy of it: the lambda outlives this
  // frame, and the reference is small beside the subjects a worker holds).
  subjects.read = [paths, argument, reference = subjects.reference,
                   reference_is_template = subjects.reference_is_template](int i) {
    Image image = i == 0 && !reference_is_template
                      ? reference
                      : ReadImage(paths[static_cast<std::size_t>(i)], {true, argument});
    const std::string name = argument + " " + paths[static_cast<std::size_t>(i)];
    const std::string reference_name =
        reference_is_template ? std::string("--template") : argument + " " + paths[0];
    if (image.grid.dim != reference.grid.dim) {
      throw InputError(name + ": a " + std::to_string(image.grid.dim) + "-D image, but " +
                       reference_name + " is " + std::to_string(reference.grid.dim) +
                       "-D (every subject must have the template's dimension)");
    }
    CheckWorldOverlap(image.grid, reference.grid, name, reference_name);
    CheckRegistrationInputs(image, reference);
    return image;
  };
  for (std::size_t k = 0; k < subjects.owned.size() && local.empty(); ++k) {
    const int i = subjects.owned[k];
    try {
      subjects.images.push_back(subjects.read(i));
    } catch (...) {
      local = Tagged(std::current_exception(), SubjectContext(subjects, i));
    }
  }
  StopOnFirstError(workers, local);
  return subjects;
}

Image VoxelwiseMean(const AtlasSubjects& subjects, const RegistrationOptions& options,
                    Workers& workers) {
  const Image& reference = subjects.reference;
  const Eigen::Index n = reference.grid.voxels();
  const int total = static_cast<int>(subjects.names.size());
  std::vector<Vector> pulled(subjects.owned.size());
  std::string local;
  for (std::size_t k = 0; k < subjects.owned.size() && local.empty(); ++k) {
    const int i = subjects.owned[k];
    const Image& image = subjects.images[k];
    try {
      Eigen::Matrix4d affine = Eigen::Matrix4d::Identity();
      const bool is_reference = i == 0 && !subjects.reference_is_template;
      if (options.affine.mode != AffineMode::kNone && !is_reference) {
        affine = RegisterAffine(Normalized(image), Normalized(reference), options.affine).affine;
      }
      const MovingInFixedSpace in_reference(image, reference, affine);
      pulled[k] = in_reference.image().data;
    } catch (...) {
      local = Tagged(std::current_exception(), SubjectContext(subjects, i));
    }
  }
  StopOnFirstError(workers, local);
  std::vector<Workers::Item> items;
  for (std::size_t k = 0; k < subjects.owned.size(); ++k) {
    items.push_back({subjects.owned[k], pulled[k].data()});
  }
  Image mean;
  mean.grid = reference.grid;
  mean.data.resize(n);
  workers.SumInItemOrder(items, total, mean.data.data(), static_cast<std::size_t>(n));
  mean.data /= static_cast<double>(total);
  return mean;
}

AtlasResult BuildAtlas(const AtlasSubjects& subjects, const AtlasOptions& requested,
                       const Image* initial_template, Workers& workers) {
  const auto start = Clock::now();
  requested.Validate();
  const Grid& grid = subjects.reference.grid;
  AtlasResult result;
  // SSD unless asked otherwise: the template is the voxelwise mean of the warped subjects, the
  // minimiser of their summed SSD.
  RegistrationOptions unresolved = requested.registration;
  if (!unresolved.similarity) unresolved.similarity = SimilarityMeasure::kSsd;
  // Three levels, as the atlas was measured with (docs/atlas.md), unless given.
  if (unresolved.levels == RegistrationOptions::kAuto) unresolved.levels = 3;
  RegistrationOptions options = unresolved.ResolvedFor(grid);
  options.checkpoint.clear();
  options.resume = false;
  options.progress = nullptr;
  options.inverse_map = false;  // the subjects' outputs are the forward maps
  result.options = options;
  result.mesh = MeshFor(grid, options);
  const int total = static_cast<int>(subjects.names.size());
  const Eigen::Index n = grid.voxels();
  const Eigen::Index block = result.mesh.dim * result.mesh.voxels();

  if (initial_template != nullptr) {
    if (!initial_template->grid.SameShape(grid)) {
      throw InputError("--template: its grid " + SizeText(initial_template->grid) +
                       " is not the reference grid " + SizeText(grid));
    }
    result.initial_template = *initial_template;
  } else {
    result.initial_template = VoxelwiseMean(subjects, options, workers);
  }
  result.initial_template.grid = grid;
  result.initial_template.source_type = ElementType::kFloat32;
  Image current = result.initial_template;

  // Per subject, summed over the population in item order: m_i, S_i ∘ A_i ∘ φ_i, SSD_i, ‖m_i‖_V,
  // then a table of every subject's summary where only subject i's slots are non-zero (adding
  // zeros is exact, so the sum is the table).
  constexpr int kSummary = 5;
  const Eigen::Index table = block + n + 2;
  const Eigen::Index width = table + kSummary * total;
  const int rounds = requested.iterations + 1;
  HeldSubjects held(subjects);
  for (int round = 0; round < rounds; ++round) {
    if (round > 0 && workers.count() > 1 && subjects.read) {
      std::vector<double> seconds;
      for (const AtlasSubjectSummary& s : result.summaries) {
        seconds.push_back(s.registration_seconds);
      }
      held.Own(BalancedItems(seconds, workers));
    }
    const std::vector<int>& owned = held.owned();
    std::vector<AtlasSubjectMaps> maps(owned.size());
    std::vector<Vector> rows(owned.size());
    std::string local;
    for (std::size_t k = 0; k < owned.size() && local.empty(); ++k) {
      const int i = owned[k];
      try {
        const auto registration_start = Clock::now();
        const RegistrationResult r = Register(held.image(i), current, options);
        const double registration_seconds = SecondsSince(registration_start);
        if (r.interrupted) throw InputError("interrupted");
        AtlasSubjectMaps& m = maps[k];
        m.index = i;
        m.momentum.grid = result.mesh;
        m.momentum.data = r.initial_momentum;
        m.displacement = r.displacement;
        m.jacobian = r.jacobian;
        m.warped = r.warped;
        m.phi = r.phi;
        m.affine = r.affine;
        m.affine_stage_ran = r.affine_stage_ran;
        m.ssd = r.ssd_final;
        m.momentum_norm = r.velocity_norms.empty() ? 0.0 : r.velocity_norms.front();
        m.min_jacobian = r.min_jacobian;
        m.max_jacobian = r.max_jacobian;
        m.world_space_note = r.world_space_note;
        Vector& row = rows[k];
        row.setZero(width);
        row.head(block) = r.initial_momentum;
        row.segment(block, n) = r.warped.data;
        row[block + n] = m.ssd;
        row[block + n + 1] = m.momentum_norm;
        const Eigen::Index slot = table + kSummary * i;
        row[slot] = m.ssd;
        row[slot + 1] = m.momentum_norm;
        row[slot + 2] = m.min_jacobian;
        row[slot + 3] = m.max_jacobian;
        row[slot + 4] = registration_seconds;
      } catch (...) {
        local = Tagged(std::current_exception(), SubjectContext(subjects, i));
      }
      if (requested.progress && local.empty()) {
        AtlasProgress p;
        p.round = round;
        p.rounds = rounds;
        p.subject = i;
        p.subjects = total;
        p.elapsed_seconds = SecondsSince(start);
        requested.progress(p);
      }
    }
    StopOnFirstError(workers, local);
    std::vector<Workers::Item> items;
    for (std::size_t k = 0; k < owned.size(); ++k) items.push_back({owned[k], rows[k].data()});
    Vector sum(width);
    workers.SumInItemOrder(items, total, sum.data(), static_cast<std::size_t>(width));
    result.summaries.assign(static_cast<std::size_t>(total), AtlasSubjectSummary());
    for (int i = 0; i < total; ++i) {
      AtlasSubjectSummary& s = result.summaries[static_cast<std::size_t>(i)];
      const Eigen::Index slot = table + kSummary * i;
      s.ssd = sum[slot];
      s.momentum_norm = sum[slot + 1];
      s.min_jacobian = sum[slot + 2];
      s.max_jacobian = sum[slot + 3];
      s.registration_seconds = sum[slot + 4];
    }
    sum.head(table) /= static_cast<double>(total);
    const Vector mean_momentum = sum.head(block);

    // The geodesic of the mean momentum; every worker computes it from the same bits.
    GeodesicShot shot;
    local.clear();
    try {
      shot = ShootGeodesic(grid, mean_momentum, options);
      if (!shot.inverse_phi.allFinite()) {
        throw NumericalError("the geodesic of the mean momentum is not finite");
      }
    } catch (...) {
      local = Tagged(std::current_exception(), "atlas: round " + std::to_string(round) + ": ");
    }
    StopOnFirstError(workers, local);

    AtlasRound summary;
    summary.mean_momentum_norm = shot.velocity_norm;
    summary.mean_ssd = sum[block + n];
    summary.mean_subject_momentum_norm = sum[block + n + 1];
    summary.template_image = current;
    summary.wall_seconds = SecondsSince(start);
    result.rounds.push_back(summary);
    if (requested.progress) {
      AtlasProgress p;
      p.round = round;
      p.rounds = rounds;
      p.subjects = total;
      p.mean_momentum_norm = summary.mean_momentum_norm;
      p.mean_ssd = summary.mean_ssd;
      p.elapsed_seconds = summary.wall_seconds;
      requested.progress(p);
    }
    result.converged = summary.mean_momentum_norm <=
                       requested.tolerance * summary.mean_subject_momentum_norm;
    if (result.converged || round + 1 == rounds) {
      result.subjects = std::move(maps);
      break;
    }
    // T_{r+1} = W̄ ∘ ψ⁻¹: the mean of the subjects pulled back, moved along the mean geodesic.
    Image next;
    next.grid = grid;
    next.source_type = current.source_type;
    next.data.resize(n);
    const Vector mean_warped = sum.segment(block, n);
    WarpScalar(grid, mean_warped, grid, shot.inverse_phi, next.data);
    current = std::move(next);
  }
  result.template_image = current;
  result.wall_seconds = SecondsSince(start);
  return result;
}

}  // namespace diffeoflow::registration
