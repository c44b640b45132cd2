// Atlas benchmark (issue 17): a population of N brains with a known mean, its template by
// geodesic shooting (registration/atlas.h), and how close the template is to the true mean.
//
// The Colin27 brain (ch2bet, Debian mricron-data) resampled to size³ and normalised to [0, 1] is
// the true mean; the subjects are it under N random smooth diffeomorphisms in antithetic pairs
// (registration/population.h: velocities summing to zero), the AAL labels (aal.nii.gz) carried
// along by nearest neighbour. Prints one JSON object:
//   - ssd_template_to_true_mean, ssd_voxelwise_mean_to_true_mean, mean_ssd_subject_to_true_mean
//     and their ratios (target: template ≤ 0.3 × subjects);
//   - sharpness: mean gradient magnitude |∇I| (per mm, over the voxels where the true mean or
//     the image is above 0.05) of the true mean, the template and the voxel-wise mean;
//   - dice_template_labels: the subjects' labels carried onto the template by their maps
//     (labels_i ∘ A_i ∘ φ_i, nearest), majority vote, mean Dice over the AAL labels against the
//     true mean's labels (target ≥ 0.9); dice_subject_labels: the subjects' own labels against
//     the true mean's (the misalignment the atlas removes);
//   - rounds (mean momentum norm, mean SSD, wall time), wall_seconds, peak_rss_mb (getrusage)
//     and memory per subject: the arrays BuildAtlas holds per subject at this size, and
//     scaled by (128/size)³ for 128³.
//
//   bench_atlas [size=64] [subjects=8] [fraction=0.06] [seed=1] [iterations=3] [threads=2]
//               [tolerance=0] [affine=none] [levels=3] [registration_iterations=100]
//               [steps=…] [sigma=…] [alpha=…] [mesh=…] [write=DIR] [atlas=1]
//               [base=brain|shape] [fixed=/usr/share/mricron/templates/ch2bet.nii.gz]
//               [labels=/usr/share/mricron/templates/aal.nii.gz]
// write=DIR writes the population there (subject_<i>.nii.gz, labels_<i>.nii.gz,
// true_mean.nii.gz, true_mean_labels.nii.gz, subjects.txt for `diffeoflow atlas --list`) and,
// after the atlas, template.nii.gz, voxelwise_mean.nii.gz and template_labels.nii.gz; atlas=0
// stops after writing the population. base=shape: the 2-D C shape of shapes.h (size², no labels)
// instead of the brain — the population of the docs/atlas.md demo.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_args.h"
#include "registration/atlas.h"
#include "registration/image_io.h"
#include "registration/image_ops.h"
#include "registration/label_overlap.h"
#include "registration/population.h"
#include "registration/shapes.h"
#include "registration/world_space.h"

namespace {

using namespace diffeoflow::registration;
using diffeoflow::bench::Number;
using diffeoflow::bench::Text;

double Ssd(const Image& a, const Image& b) { return (a.data - b.data).squaredNorm(); }

// Mean |∇I| (per mm) over the voxels where `mask` or `image` exceeds 0.05.
double MeanGradient(const Image& image, const Image& mask) {
  const VectorField g = ImageGradient(image);
  const Eigen::Index n = image.grid.voxels();
  double sum = 0.0;
  long count = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    if (mask.data[i] <= 0.05 && image.data[i] <= 0.05) continue;
    double squares = 0.0;
    for (int c = 0; c < image.grid.dim; ++c) squares += g.data[c * n + i] * g.data[c * n + i];
    sum += std::sqrt(squares);
    ++count;
  }
  return count > 0 ? sum / static_cast<double>(count) : 0.0;
}

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  if (!diffeoflow::bench::ParseKeyValues(argc, argv, "bench_atlas", args)) return 2;
  nlohmann::json out;
  try {
    const int size = static_cast<int>(Number(args, "size", 64));
    const bool brain_base = Text(args, "base", "brain") == "brain";
    Image base, base_labels;
    if (brain_base) {
      const Image brain =
          ReadImage(Text(args, "fixed", "/usr/share/mricron/templates/ch2bet.nii.gz"));
      const Image aal = ReadImage(Text(args, "labels", "/usr/share/mricron/templates/aal.nii.gz"));
      const Grid brain_grid = ResizedGrid(brain.grid, {size, size, size});
      base = NormalizeIntensity(Resample(brain, brain_grid, Interpolation::kLinear));
      base_labels = Resample(aal, brain_grid, Interpolation::kNearest);
    } else {
      ShapeOptions shape;
      shape.size = size;
      shape.edge_width_px = 2.0;
      base = CShapeImage(shape);
    }
    base.source_type = diffeoflow::ElementType::kFloat32;
    const Grid grid = base.grid;

    PopulationOptions population_options;
    population_options.subjects = static_cast<int>(Number(args, "subjects", 8));
    population_options.max_displacement_fraction = Number(args, "fraction", 0.06);
    population_options.seed = static_cast<std::uint64_t>(Number(args, "seed", 1));
    const auto start_population = std::chrono::steady_clock::now();
    const Population population =
        MakePopulation(base, population_options, brain_base ? &base_labels : nullptr);
    out["size"] = size;
    out["subjects"] = population_options.subjects;
    out["max_displacement_fraction"] = population_options.max_displacement_fraction;
    out["population_seconds"] = std::chrono::duration<double>(
        std::chrono::steady_clock::now() - start_population).count();
    if (brain_base) out["labels_present"] = CountLabels(base_labels);

    const std::string write = Text(args, "write", "");
    if (!write.empty()) {
      std::filesystem::create_directories(write);
      const std::filesystem::path dir(write);
      WriteImage((dir / "true_mean.nii.gz").string(), base, diffeoflow::ElementType::kFloat32);
      if (brain_base) {
        WriteImage((dir / "true_mean_labels.nii.gz").string(), base_labels,
                   diffeoflow::ElementType::kInt16);
      }
      std::ofstream list(dir / "subjects.txt");
      for (std::size_t i = 0; i < population.subjects.size(); ++i) {
        const std::string k = std::to_string(i);
        WriteImage((dir / ("subject_" + k + ".nii.gz")).string(), population.subjects[i],
                   diffeoflow::ElementType::kFloat32);
        if (brain_base) {
          WriteImage((dir / ("labels_" + k + ".nii.gz")).string(), population.labels[i],
                     diffeoflow::ElementType::kInt16);
        }
        list << "subject_" << k << ".nii.gz\n";
      }
    }
    if (Number(args, "atlas", 1) == 0) {
      std::cout << out.dump(2) << "\n";
      return 0;
    }

    AtlasOptions options;
    options.iterations = static_cast<int>(Number(args, "iterations", 3));
    options.tolerance = Number(args, "tolerance", 0.0);
    RegistrationOptions& r = options.registration;
    r.affine.mode = ParseAffineMode(Text(args, "affine", "none"));
    r.metric.threads = static_cast<int>(Number(args, "threads", 2));
    r.levels = static_cast<int>(Number(args, "levels", 3));
    r.iterations = static_cast<int>(Number(args, "registration_iterations", 100));
    if (args.count("steps")) r.time_steps = static_cast<int>(Number(args, "steps", 5));
    if (args.count("sigma")) r.sigma = Number(args, "sigma", 0.005);
    if (args.count("alpha")) r.metric.alpha_mm2 = Number(args, "alpha", 64.0);
    if (args.count("mesh")) r.mesh_spacing_fraction = Number(args, "mesh", 1.2);
    options.progress = [](const AtlasProgress& p) {
      if (p.subject < 0) {
        std::fprintf(stderr, "round %d/%d: |mean m| %.4g, mean SSD %.4g, %.1f s\n", p.round + 1,
                     p.rounds, p.mean_momentum_norm, p.mean_ssd, p.elapsed_seconds);
      } else {
        std::fprintf(stderr, "round %d/%d: subject %d registered, %.1f s\n", p.round + 1,
                     p.rounds, p.subject, p.elapsed_seconds);
      }
    };

    AtlasSubjects subjects;
    for (std::size_t i = 0; i < population.subjects.size(); ++i) {
      subjects.names.push_back("subject_" + std::to_string(i));
      subjects.owned.push_back(static_cast<int>(i));
    }
    subjects.images = population.subjects;
    subjects.reference = population.subjects[0];
    const AtlasResult atlas = BuildAtlas(subjects, options);

    const double subject_ssd = [&] {
      double s = 0.0;
      for (const Image& image : population.subjects) s += Ssd(image, base);
      return s / static_cast<double>(population.subjects.size());
    }();
    const double template_ssd = Ssd(atlas.template_image, base);
    const double mean_ssd = Ssd(atlas.initial_template, base);
    out["mean_ssd_subject_to_true_mean"] = subject_ssd;
    out["ssd_voxelwise_mean_to_true_mean"] = mean_ssd;
    out["ssd_template_to_true_mean"] = template_ssd;
    out["ratio_template_to_subjects"] = template_ssd / subject_ssd;
    out["ratio_voxelwise_mean_to_subjects"] = mean_ssd / subject_ssd;
    out["mean_gradient_true_mean"] = MeanGradient(base, base);
    out["mean_gradient_template"] = MeanGradient(atlas.template_image, base);
    out["mean_gradient_voxelwise_mean"] = MeanGradient(atlas.initial_template, base);

    Image vote;
    if (brain_base) {
      std::vector<Image> carried;
      double dice_subjects = 0.0;
      for (const AtlasSubjectMaps& m : atlas.subjects) {
        const Image& labels = population.labels[static_cast<std::size_t>(m.index)];
        carried.push_back(WarpThroughWorld(labels, grid, m.phi, Interpolation::kNearest, 0.0,
                                           m.affine));
        dice_subjects += MeanDice(base_labels, labels);
      }
      vote = MajorityVote(carried);
      out["dice_template_labels"] = MeanDice(base_labels, vote);
      out["dice_subject_labels"] = dice_subjects / static_cast<double>(atlas.subjects.size());
      double dice_each = 0.0;
      for (const Image& c : carried) dice_each += MeanDice(base_labels, c);
      out["dice_each_carried_label_map"] = dice_each / static_cast<double>(carried.size());
    }

    nlohmann::json rounds = nlohmann::json::array();
    for (const AtlasRound& round : atlas.rounds) {
      rounds.push_back({{"mean_momentum_norm", round.mean_momentum_norm},
                        {"mean_subject_momentum_norm", round.mean_subject_momentum_norm},
                        {"mean_ssd", round.mean_ssd},
                        {"ssd_to_true_mean", Ssd(round.template_image, base)},
                        {"wall_seconds", round.wall_seconds}});
    }
    out["rounds"] = rounds;
    out["converged"] = atlas.converged;
    out["wall_seconds"] = atlas.wall_seconds;
    out["threads"] = r.metric.threads;
    out["registration_options"] = {{"levels", atlas.options.levels},
                                   {"iterations", atlas.options.iterations},
                                   {"steps", atlas.options.time_steps},
                                   {"sigma", atlas.options.sigma},
                                   {"alpha_mm2", atlas.options.metric.alpha_mm2},
                                   {"mesh_fraction", atlas.options.mesh_spacing_fraction},
                                   {"affine", AffineModeName(atlas.options.affine.mode)}};
    out["mesh_size"] = {atlas.mesh.size[0], atlas.mesh.size[1], atlas.mesh.size[2]};

    // Memory: what BuildAtlas keeps per subject (its image, the last round's maps, its row of the
    // reduction) at this size, and scaled to 128³ (the mesh scales with the grid).
    const AtlasSubjectMaps& m = atlas.subjects.front();
    const double doubles = static_cast<double>(
        population.subjects.front().data.size() + m.momentum.data.size() +
        m.displacement.data.size() + m.jacobian.data.size() + m.warped.data.size() +
        m.phi.size() + m.momentum.data.size() + m.warped.data.size());
    const double per_subject_mb = 8.0 * doubles / (1024.0 * 1024.0);
    const double scale = std::pow(128.0 / size, 3);
    out["held_per_subject_mb"] = per_subject_mb;
    out["held_per_subject_mb_at_128"] = per_subject_mb * scale;
    out["peak_rss_mb"] = PeakRssMb();
    out["peak_rss_mb_scaled_to_128"] = PeakRssMb() * scale;

    if (!write.empty()) {
      const std::filesystem::path dir(write);
      WriteImage((dir / "template.nii.gz").string(), atlas.template_image,
                 diffeoflow::ElementType::kFloat32);
      WriteImage((dir / "voxelwise_mean.nii.gz").string(), atlas.initial_template,
                 diffeoflow::ElementType::kFloat32);
      if (brain_base) {
        WriteImage((dir / "template_labels.nii.gz").string(), vote,
                   diffeoflow::ElementType::kInt16);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_atlas: " << e.what() << "\n";
    return 1;
  }
  std::cout << out.dump(2) << "\n";
  return 0;
}
