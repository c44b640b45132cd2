// 3-D brain benchmark: the Colin27 brain (ch2bet, from the Debian package mricron-data) resampled
// to size³ voxels against a smoothly warped copy of itself, registered with `register`'s defaults
// (every option below can be changed); the AAL atlas labels are carried by the resulting map with
// nearest-neighbour interpolation, as `diffeoflow apply --interpolation nearest` does. Prints one
// JSON object: mean Dice over the AAL labels present in the fixed labels, before and after, min
// det Dφ, wall time and peak resident memory (getrusage ru_maxrss).
//
// The warp ψ(x) = x + u(x) is a sum of a few random low-frequency sine modes per component (1 or 2
// cycles per field of view, seeded), scaled so that max |u| = `displacement` voxels of the
// resampled grid; det Dψ > 0 is checked. moving = fixed ∘ ψ (linear), moving labels = labels ∘ ψ
// (nearest), and the registration maps the fixed grid into the moving image.
//
//   bench_brain [size=96] [displacement=4] [seed=1] [method=shooting|lddmm] [threads=2]
//               [levels=…] [iterations=…] [steps=…] [alpha=…] [gamma=…] [sigma=…]
//               [similarity=auto|ssd|ncc] [ncc_radius=2] [mesh=…] [band_limit=…]
//               [tolerance=…] [window=…] [out=DIR] [register=1] [moving_grid=same|las]
//               [coarser=1.25]
//               [affine=none|rigid|affine] [known_affine=0|1] [affine_degrees=12]
//               [affine_scale=1.08] [affine_shear=0.03] [affine_translation=8]
//               [affine_max_voxels=262144]
//               [fixed=/usr/share/mricron/templates/ch2bet.nii.gz]
//               [labels=/usr/share/mricron/templates/aal.nii.gz]
// affine= is register's --affine (default affine). known_affine=1 moves the moving image (after
// the warp) by a known affine A about the fixed image's centre — a rotation of affine_degrees about
// the tilted axis (1, 0.5, 0.3), scales about affine_scale, shears of affine_shear, a translation
// of affine_translation mm — so that the whole known map is x ↦ A(ψ⁻¹(x)); it then reports the
// recovered affine's error against A and against the least-squares affine fit of the whole known
// map over the brain (the part the warp does not explain), and the affine stage's time.
// With out=DIR the pair is written there (fixed.nii.gz, moving.nii.gz, fixed_labels.nii.gz,
// moving_labels.nii.gz, and for a same-grid pair without known_affine true_map_labels.nii.gz:
// the moving labels carried by ψ⁻¹, the ceiling's labels) for the command-line route
// (docs/registration.md); register=0 stops after writing it.
// moving_grid=las records the moving image and its labels on another grid of the same world, as
// a scanner would: voxels `coarser` times larger (default 1.25), 6 more voxels an axis, the centre
// moved by (6, −4, 5) mm, the first axis flipped (LAS). The sources (the 1 mm brain and atlas) are
// sampled once at the warped world points A_fixed(ψ(A_fixed⁻¹(p))) of that grid's voxels p —
// linearly, labels by nearest neighbour — so the moving image has been interpolated as often as in
// the same-grid run (sources → fixed grid → ∘ψ) before `register` resamples it into the fixed
// world. The labels are carried through world coordinates as `apply` does. In this mode
// `dice_before` is the moving labels brought onto the fixed grid with the identity, and
// `dice_after_labels_on_fixed_grid` carries the same-grid run's moving labels (fixed labels ∘ ψ,
// on the fixed grid) with the map this run found: the registration's own share of any loss, apart
// from what the other label grid costs. That cost is `dice_label_grid_ceiling`: the atlas recorded
// on the other grid without the warp and brought onto the fixed grid (what a perfect registration
// could reach; the same-grid run's labels share one rasterisation with the reference, these do
// not).
// Every run also reports `dice_after_label_interpolation`: the same map carrying the labels as
// `apply --interpolation label` does. A same-grid run without known_affine reports what the true
// map ψ⁻¹ (fixed-point inverse, `true_inverse_max_residual_voxels`) gives, `dice_true_map` and
// `dice_true_map_label_interpolation`: the ceiling of the protocol, whose moving labels have been
// resampled once already. moving_grid=las adds `dice_label_grid_ceiling_label_interpolation`.
#include <sys/resource.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <numbers>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Geometry>
#include <Eigen/LU>
#include <nlohmann/json.hpp>

#include "bench/bench_args.h"
#include "registration/affine.h"
#include "registration/image_io.h"
#include "registration/image_ops.h"
#include "registration/label_overlap.h"
#include "registration/outputs/register_outputs.h"
#include "registration/register.h"
#include "registration/similarity.h"
#include "registration/world_space.h"

namespace {

using namespace diffeoflow::registration;

// u (mm) = a sum of random sine modes of 1 or 2 cycles per field of view, max |u| = `voxels`.
VectorField SmoothWarp(const Grid& grid, double voxels, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> phase(0.0, 2.0 * std::numbers::pi);
  std::uniform_real_distribution<double> amplitude(-1.0, 1.0);
  std::uniform_int_distribution<int> cycles(0, 2);
  const Eigen::Index n = grid.voxels();
  VectorField u{grid, Eigen::VectorXd::Zero(3 * n)};
  for (int c = 0; c < 3; ++c) {
    for (int mode = 0; mode < 4; ++mode) {
      int k[3];
      do {
        for (int& ki : k) ki = cycles(rng);
      } while (k[0] + k[1] + k[2] == 0);
      const double p = phase(rng), a = amplitude(rng);
      for (int z = 0; z < grid.size[2]; ++z) {
        for (int y = 0; y < grid.size[1]; ++y) {
          for (int x = 0; x < grid.size[0]; ++x) {
            const double s = 2.0 * std::numbers::pi *
                             (k[0] * (x + 0.5) / grid.size[0] + k[1] * (y + 0.5) / grid.size[1] +
                              k[2] * (z + 0.5) / grid.size[2]);
            u.data[c * n + grid.index(x, y, z)] += a * std::sin(s + p);
          }
        }
      }
    }
  }
  // Scale so that the largest displacement, in voxels, is `voxels`.
  double largest = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    double r2 = 0.0;
    for (int c = 0; c < 3; ++c) r2 += u.data[c * n + i] * u.data[c * n + i];
    largest = std::max(largest, std::sqrt(r2));
  }
  if (largest > 0) u.data *= voxels / largest;
  for (int c = 0; c < 3; ++c) u.component(c) *= grid.spacing_mm[c];
  return u;
}

// The moving grid of moving_grid=las: same world, voxels `coarser` times larger, another size and
// origin, the first axis flipped.
Grid LasGrid(const Grid& grid, double coarser) {
  Grid las = grid;
  const Eigen::Vector3d centre = grid.VoxelToPhysical(Eigen::Vector3d(
      0.5 * (grid.size[0] - 1), 0.5 * (grid.size[1] - 1), 0.5 * (grid.size[2] - 1)));
  for (int d = 0; d < 3; ++d) {
    las.spacing_mm[d] = coarser * grid.spacing_mm[d];
    las.size[d] = static_cast<int>(std::lround(grid.size[d] / coarser)) + 6;
  }
  las.direction.col(0) *= -1.0;
  const Eigen::Vector3d origin =
      centre + Eigen::Vector3d(6.0, -4.0, 5.0) -
      las.direction * Eigen::Vector3d(las.spacing_mm[0] * 0.5 * (las.size[0] - 1),
                                      las.spacing_mm[1] * 0.5 * (las.size[1] - 1),
                                      las.spacing_mm[2] * 0.5 * (las.size[2] - 1));
  las.origin_mm = {origin[0], origin[1], origin[2]};
  return las;
}

// `source` (on its own grid) sampled at the world points A_fixed(ψ(A_fixed⁻¹(pre·p))) for the
// voxels p of `target` (world points), with ψ(y) = y + u(y) (u in mm on the fixed grid,
// interpolated linearly) and `pre` a world affine (the inverse of the known affine); points outside
// the source's field of view get `outside`.
Image SampleWarpedSource(const Image& source, const Grid& fixed, const VectorField& u,
                         const Grid& target, Interpolation interpolation, double outside,
                         const Eigen::Matrix4d& pre = Eigen::Matrix4d::Identity()) {
  Image out{target, Eigen::VectorXd(target.voxels()), source.source_type};
  const Eigen::Index n = fixed.voxels();
  for (int k = 0; k < target.size[2]; ++k) {
    for (int j = 0; j < target.size[1]; ++j) {
      for (int i = 0; i < target.size[0]; ++i) {
        const Eigen::Vector3d world = target.VoxelToPhysical(Eigen::Vector3d(i, j, k));
        const Eigen::Vector3d y = fixed.PhysicalToVoxel((pre * world.homogeneous()).head<3>());
        Eigen::Vector3d psi = y;
        for (int c = 0; c < 3; ++c) {
          psi[c] +=
              SampleLinear(fixed, u.data.data() + c * n, y[0], y[1], y[2]) / fixed.spacing_mm[c];
        }
        const Eigen::Vector3d q = source.grid.PhysicalToVoxel(fixed.VoxelToPhysical(psi));
        bool inside = true;
        for (int d = 0; d < 3; ++d) {
          inside = inside && q[d] >= -0.5 && q[d] <= source.grid.size[d] - 0.5;
        }
        double value = outside;
        if (inside) {
          value = interpolation == Interpolation::kLinear
                      ? SampleLinear(source.grid, source.data.data(), q[0], q[1], q[2])
                      : SampleNearest(source.grid, source.data.data(), q[0], q[1], q[2]);
        }
        out.data[target.index(i, j, k)] = value;
      }
    }
  }
  return out;
}

// The known affine of known_affine=1 (fixed world → moving world, about the fixed image's centre):
// a rotation of `degrees` about the tilted axis (1, 0.5, 0.3), scales (s, s/1.08^0.5, s^0.5),
// shear (h, −h, h/2) and a translation (5, −4, 5)·translation/8.1 (|t| = translation mm).
Eigen::Matrix4d KnownAffine(const Grid& grid, double degrees, double scale, double shear,
                            double translation) {
  Eigen::VectorXd p(12);
  const Eigen::Vector3d axis =
      Eigen::Vector3d(1.0, 0.5, 0.3).normalized() * degrees * std::numbers::pi / 180.0;
  const Eigen::Vector3d t = Eigen::Vector3d(5.0, -4.0, 5.0).normalized() * translation;
  p << axis[0], axis[1], axis[2], t[0], t[1], t[2], std::log(scale),
      std::log(scale) - 0.5 * std::log(1.08), 0.5 * std::log(scale), shear, -shear, 0.5 * shear;
  return AffineFromParameters(p, FieldOfViewCentre(grid), 3);
}

// ψ⁻¹(x) by the fixed-point iteration z ← x − u(z) (u in mm on `grid`, world points).
Eigen::Vector3d InverseWarp(const Grid& grid, const VectorField& u, const Eigen::Vector3d& x) {
  const Eigen::Index n = grid.voxels();
  const Eigen::Vector3d xv = grid.PhysicalToVoxel(x);
  Eigen::Vector3d z = xv;
  for (int it = 0; it < 30; ++it) {
    Eigen::Vector3d next = xv;
    for (int c = 0; c < 3; ++c) {
      next[c] -= SampleLinear(grid, u.data.data() + c * n, z[0], z[1], z[2]) / grid.spacing_mm[c];
    }
    z = next;
  }
  return grid.VoxelToPhysical(z);
}

// The recovered affine against a reference over the voxels where `mask` > 0.1·max: the rotation
// angle between them (degrees) and the RMS and largest distance between the points they map (mm).
nlohmann::json AffineError(const Eigen::Matrix4d& recovered, const Eigen::Matrix4d& reference,
                           const Image& mask) {
  const Grid& g = mask.grid;
  const double threshold = 0.1 * mask.data.maxCoeff();
  double sum = 0.0, worst = 0.0;
  long count = 0;
  for (int k = 0; k < g.size[2]; ++k) {
    for (int j = 0; j < g.size[1]; ++j) {
      for (int i = 0; i < g.size[0]; ++i) {
        if (mask.data[g.index(i, j, k)] <= threshold) continue;
        const Eigen::Vector4d x = g.VoxelToPhysical(Eigen::Vector3d(i, j, k)).homogeneous();
        const double e = ((recovered - reference) * x).head<3>().norm();
        sum += e * e;
        worst = std::max(worst, e);
        ++count;
      }
    }
  }
  return {{"rotation_degrees", DescribeAffine(reference.inverse() * recovered, 3).rotation_degrees},
          {"rms_mm", std::sqrt(sum / std::max(count, 1L))},
          {"max_mm", worst}};
}

// The least-squares affine fit of the known whole map x ↦ A(ψ⁻¹(x)) over the brain voxels: the
// part of the known map an affine explains.
Eigen::Matrix4d AffinePartOfKnownMap(const Eigen::Matrix4d& A, const Grid& grid,
                                     const VectorField& u, const Image& mask) {
  const double threshold = 0.1 * mask.data.maxCoeff();
  Eigen::Matrix4d xx = Eigen::Matrix4d::Zero();
  Eigen::Matrix<double, 3, 4> yx = Eigen::Matrix<double, 3, 4>::Zero();
  for (int k = 0; k < grid.size[2]; k += 2) {
    for (int j = 0; j < grid.size[1]; j += 2) {
      for (int i = 0; i < grid.size[0]; i += 2) {
        if (mask.data[grid.index(i, j, k)] <= threshold) continue;
        const Eigen::Vector4d x = grid.VoxelToPhysical(Eigen::Vector3d(i, j, k)).homogeneous();
        const Eigen::Vector4d y = A * InverseWarp(grid, u, x.head<3>()).homogeneous();
        xx += x * x.transpose();
        yx += y.head<3>() * x.transpose();
      }
    }
  }
  Eigen::Matrix4d fit = Eigen::Matrix4d::Identity();
  fit.topRows<3>() = yx * xx.inverse();
  return fit;
}

long PeakMemoryKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  if (!diffeoflow::bench::ParseKeyValues(argc, argv, "bench_brain", args)) return 2;
  auto number = [&](const std::string& key, double fallback) {
    return diffeoflow::bench::Number(args, key, fallback);
  };
  auto text = [&](const std::string& key, const std::string& fallback) {
    return diffeoflow::bench::Text(args, key, fallback);
  };
  nlohmann::json out;
  try {
    if (args.count("reference")) {
      const Image reference = ReadImage(args["reference"]);
      const Image labels = ReadImage(text("labels", ""));
      if (!reference.grid.SameShape(labels.grid)) {
        throw std::runtime_error("reference= and labels= have different grid sizes");
      }
      out["dice"] = MeanDice(reference, labels);
      out["labels_present"] = CountLabels(reference);
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    const int size = static_cast<int>(number("size", 96));
    const Image brain = ReadImage(text("fixed", "/usr/share/mricron/templates/ch2bet.nii.gz"));
    const Image atlas = ReadImage(text("labels", "/usr/share/mricron/templates/aal.nii.gz"));
    const Grid grid = ResizedGrid(brain.grid, {size, size, size});
    const Image fixed = Resample(brain, grid, Interpolation::kLinear);
    const Image fixed_labels = Resample(atlas, grid, Interpolation::kNearest);

    const VectorField u = SmoothWarp(grid, number("displacement", 4.0),
                                     static_cast<unsigned>(number("seed", 1)));
    const Image warp_jacobian = JacobianDeterminant(u);
    const VectorField psi = PositionFromDisplacement(u);
    Image moving = WarpImage(fixed, psi, Interpolation::kLinear);
    Image moving_labels = WarpImage(fixed_labels, psi, Interpolation::kNearest);
    moving_labels.source_type = atlas.source_type;
    out["size"] = size;
    out["spacing_mm"] = {grid.spacing_mm[0], grid.spacing_mm[1], grid.spacing_mm[2]};
    out["labels_present"] = CountLabels(fixed_labels);
    out["warp_max_displacement_voxels"] = number("displacement", 4.0);
    out["warp_min_jacobian"] = warp_jacobian.data.minCoeff();
    if (!(warp_jacobian.data.minCoeff() > 0)) {
      throw std::runtime_error("the synthetic warp folds (det <= 0): lower displacement=");
    }
    out["dice_before"] = MeanDice(fixed_labels, moving_labels);
    const std::string moving_grid = text("moving_grid", "same");
    // known_affine=1: the moving image is the fixed one moved by a known affine A after the warp:
    // moving(y) = fixed(ψ(A⁻¹ y)), so the whole known map is x ↦ A(ψ⁻¹(x)).
    const bool known_affine = number("known_affine", 0) != 0;
    Eigen::Matrix4d truth = Eigen::Matrix4d::Identity();
    if (known_affine) {
      truth = KnownAffine(grid, number("affine_degrees", 12.0), number("affine_scale", 1.08),
                          number("affine_shear", 0.03), number("affine_translation", 8.0));
      if (moving_grid != "same") {
        throw std::runtime_error("known_affine=1 needs moving_grid=same");
      }
      // As in the same-grid run, the moving image and labels are the fixed ones carried through
      // the known map (so that both label maps share one rasterisation and a perfect map gives
      // Dice 1).
      moving = SampleWarpedSource(fixed, grid, u, grid, Interpolation::kLinear,
                                  BackgroundValue(fixed), truth.inverse());
      moving_labels = SampleWarpedSource(fixed_labels, grid, u, grid, Interpolation::kNearest, 0.0,
                                         truth.inverse());
      moving_labels.source_type = atlas.source_type;
      out["dice_before"] = MeanDice(fixed_labels, moving_labels);
      const AffineDescription d = DescribeAffine(truth, 3);
      out["known_affine"] = {{"rotation_degrees", d.rotation_degrees},
                             {"scales", d.scales},
                             {"translation_mm", std::vector<double>{truth(0, 3), truth(1, 3),
                                                                    truth(2, 3)}}};
    }
    const Image labels_on_fixed_grid = moving_labels;
    std::optional<Image> true_map_labels;  // the moving labels through ψ⁻¹, for out=DIR
    if (moving_grid == "same" && !known_affine) {
      // What the true map ψ⁻¹ gives (the ceiling of this protocol: the moving labels went through
      // one nearest-neighbour resampling already), by both label interpolations.
      VectorField inverse = IdentityPositionField(grid);
      const Eigen::Index n = grid.voxels();
      double residual = 0.0;
      for (int k = 0; k < grid.size[2]; ++k) {
        for (int j = 0; j < grid.size[1]; ++j) {
          for (int i = 0; i < grid.size[0]; ++i) {
            const Eigen::Vector3d x = grid.VoxelToPhysical(Eigen::Vector3d(i, j, k));
            const Eigen::Vector3d z = grid.PhysicalToVoxel(InverseWarp(grid, u, x));
            const Eigen::Index v = grid.index(i, j, k);
            double r2 = 0.0;
            for (int c = 0; c < 3; ++c) {
              inverse.data[c * n + v] = z[c];
              const double back =
                  z[c] + SampleLinear(grid, u.data.data() + c * n, z[0], z[1], z[2]) /
                             grid.spacing_mm[c] -
                  (c == 0 ? i : c == 1 ? j : k);
              r2 += back * back;
            }
            residual = std::max(residual, std::sqrt(r2));
          }
        }
      }
      out["true_inverse_max_residual_voxels"] = residual;
      true_map_labels = WarpImage(moving_labels, inverse, Interpolation::kNearest);
      out["dice_true_map"] = MeanDice(fixed_labels, *true_map_labels);
      out["dice_true_map_label_interpolation"] =
          MeanDice(fixed_labels, WarpImage(moving_labels, inverse, Interpolation::kLabel));
    }
    if (moving_grid == "las") {
      const double coarser = number("coarser", 1.25);
      if (!(coarser > 0.2 && coarser < 5)) throw std::runtime_error("coarser: expected (0.2, 5)");
      const Grid las = LasGrid(grid, coarser);
      moving =
          SampleWarpedSource(brain, grid, u, las, Interpolation::kLinear, BackgroundValue(brain));
      moving_labels = SampleWarpedSource(atlas, grid, u, las, Interpolation::kNearest, 0.0);
      const Image before = WarpThroughWorld(moving_labels, grid, IdentityPositionField(grid).data,
                                            Interpolation::kNearest);
      out["dice_before"] = MeanDice(fixed_labels, before);
      // The ceiling for a perfect registration: the atlas recorded on this grid without the warp,
      // brought onto the fixed grid — two independent nearest-neighbour rasterisations.
      const Image unwarped = SampleWarpedSource(atlas, grid, VectorField{grid, 0.0 * u.data}, las,
                                                Interpolation::kNearest, 0.0);
      out["dice_label_grid_ceiling"] =
          MeanDice(fixed_labels, WarpThroughWorld(unwarped, grid, IdentityPositionField(grid).data,
                                                  Interpolation::kNearest));
      out["dice_label_grid_ceiling_label_interpolation"] =
          MeanDice(fixed_labels, WarpThroughWorld(unwarped, grid, IdentityPositionField(grid).data,
                                                  Interpolation::kLabel));
      out["moving_grid"] = {
          {"coarser", coarser},
          {"size", {las.size[0], las.size[1], las.size[2]}},
          {"spacing_mm", {las.spacing_mm[0], las.spacing_mm[1], las.spacing_mm[2]}},
          {"origin_mm", {las.origin_mm[0], las.origin_mm[1], las.origin_mm[2]}},
          {"orientation", OrientationCode(las)}};
    } else if (moving_grid != "same") {
      throw std::runtime_error("moving_grid: expected same or las, got '" + moving_grid + "'");
    }

    if (args.count("out")) {
      const std::filesystem::path dir = args["out"];
      std::filesystem::create_directories(dir);
      WriteImage((dir / "fixed.nii.gz").string(), fixed, ElementType::kFloat32);
      WriteImage((dir / "moving.nii.gz").string(), moving, ElementType::kFloat32);
      WriteImage((dir / "fixed_labels.nii.gz").string(), fixed_labels, atlas.source_type);
      WriteImage((dir / "moving_labels.nii.gz").string(), moving_labels, atlas.source_type);
      if (true_map_labels) {
        WriteImage((dir / "true_map_labels.nii.gz").string(), *true_map_labels,
                   atlas.source_type);
      }
      out["written"] = dir.string();
    }
    if (number("register", 1) != 0) {
      RegistrationOptions options;
      options.method = ParseRegistrationMethod(text("method", "shooting"), "method");
      options.levels = static_cast<int>(number("levels", options.levels));
      options.iterations = static_cast<int>(number("iterations", options.iterations));
      // Unset options keep register's defaults (RegistrationOptions::ResolvedFor).
      options.time_steps = static_cast<int>(number("steps", options.time_steps));
      options.metric.alpha_mm2 = number("alpha", options.metric.alpha_mm2);
      options.metric.gamma = number("gamma", options.metric.gamma);
      options.similarity = ParseSimilarityOrAuto(text("similarity", "auto"), "similarity");
      options.ncc_radius = static_cast<int>(number("ncc_radius", options.ncc_radius));
      options.sigma = number("sigma", options.sigma);
      options.mesh_spacing_fraction = number("mesh", options.mesh_spacing_fraction);
      options.band_limit = static_cast<int>(number("band_limit", options.band_limit));
      options.relative_decrease = number("tolerance", options.relative_decrease);
      options.tolerance_window =
          static_cast<int>(number("window", options.tolerance_window));
      options.metric.threads = static_cast<int>(number("threads", 2));
      options.affine.mode = ParseAffineMode(text("affine", "affine"), "affine");
      options.affine.max_voxels = static_cast<long>(
          number("affine_max_voxels", static_cast<double>(options.affine.max_voxels)));
      const auto start = std::chrono::steady_clock::now();
      const RegistrationResult r = Register(moving, fixed, options);
      // What `apply --interpolation nearest` does with the displacement `register` writes.
      const VectorField phi = PositionFromDisplacement(r.displacement);
      const Image carried = WarpThroughWorld(moving_labels, phi.grid, phi.data,
                                             Interpolation::kNearest, std::nullopt, r.affine);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      nlohmann::json m = MetricsJson(r);
      m.erase("loss_history");
      m.erase("level_starts");
      m.erase("velocity_norm_per_time");
      out["registration"] = m;
      if (!r.world_space_note.empty()) out["world_space_note"] = r.world_space_note;
      out["mesh_size"] = {r.mesh.size[0], r.mesh.size[1], r.mesh.size[2]};
      out["dice_after"] = MeanDice(fixed_labels, carried);
      // The same map, the labels carried as `apply --interpolation label` does.
      out["dice_after_label_interpolation"] = MeanDice(
          fixed_labels,
          WarpThroughWorld(moving_labels, phi.grid, phi.data, Interpolation::kLabel, std::nullopt,
                           r.affine));
      if (moving_grid != "same") {
        const Image fine = WarpThroughWorld(labels_on_fixed_grid, phi.grid, phi.data,
                                            Interpolation::kNearest, std::nullopt, r.affine);
        out["dice_after_labels_on_fixed_grid"] = MeanDice(fixed_labels, fine);
      }
      if (known_affine && r.affine_stage_ran) {
        out["affine_error_vs_known_affine"] = AffineError(r.affine, truth, fixed);
        out["affine_error_vs_affine_part_of_known_map"] =
            AffineError(r.affine, AffinePartOfKnownMap(truth, grid, u, fixed), fixed);
      }
      if (r.affine_stage_ran) out["affine_stage_seconds"] = r.affine_stage.wall_seconds;
      out["min_jacobian"] = r.min_jacobian;
      out["wall_seconds"] = seconds;
      out["ssd_reduction"] = r.ssd_reduction();
    }
    out["peak_memory_mb"] = PeakMemoryKb() / 1024.0;
  } catch (const std::exception& e) {
    out["error"] = e.what();
    std::cout << out.dump(2) << "\n";
    return 1;
  }
  std::cout << out.dump(2) << "\n";
  return 0;
}
