#include "registration/outputs/register_outputs.h"

#include <cstdint>
#include <filesystem>
#include <utility>
#include <vector>

#include "registration/displacement_file.h"
#include "registration/outputs/summary_figure.h"
#include "registration/transform_chain.h"
#include "registration/transform_io.h"
#include "registration/world_space.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"

namespace diffeoflow::registration {

namespace {

// metrics.json's "affine" object (docs/affine.md).
nlohmann::json AffineJson(const RegistrationResult& r) {
  const int dim = r.grid.dim;
  const AffineStageResult& stage = r.affine_stage;
  const AffineDescription d = DescribeAffine(r.affine, dim);
  std::vector<std::vector<double>> matrix;
  for (int row = 0; row < 4; ++row) {
    matrix.emplace_back();
    for (int c = 0; c < 4; ++c) matrix.back().push_back(r.affine(row, c));
  }
  nlohmann::json j;
  j["mode"] = AffineModeName(r.options.affine.mode);
  j["start"] = r.options.initial_affine ? "initial affine " + r.options.initial_affine_source
                                        : std::string("centres of mass");
  j["matrix_ras"] = matrix;
  j["translation_mm"] = std::vector<double>{r.affine(0, 3), r.affine(1, 3), r.affine(2, 3)};
  j["rotation_degrees"] = d.rotation_degrees;
  j["rotation_axis"] = std::vector<double>{d.rotation_axis[0], d.rotation_axis[1],
                                           d.rotation_axis[2]};
  j["scales"] = d.scales;
  j["determinant"] = d.determinant;
  j["parameters"] = std::vector<double>(stage.parameters.data(),
                                        stage.parameters.data() + stage.parameters.size());
  const Eigen::Vector3d centre = FieldOfViewCentre(r.grid);
  j["centre_mm"] = std::vector<double>{centre[0], centre[1], centre[2]};
  j["ssd_before"] = r.ssd_initial;
  j["ssd_after"] = r.ssd_after_affine;
  const double total = r.ssd_initial - r.ssd_final;
  j["share_of_ssd_reduction"] = total > 0 ? (r.ssd_initial - r.ssd_after_affine) / total : 0.0;
  j["energy_initial"] = stage.energy_initial;
  j["energy_final"] = stage.energy_final;
  j["levels"] = stage.level_sizes;
  j["iterations"] = stage.iterations;
  j["function_evaluations"] = stage.evaluations;
  j["wall_seconds"] = stage.wall_seconds;
  j["at_bounds"] = stage.at_bounds;
  if (!stage.note.empty()) j["note"] = stage.note;
  return j;
}

}  // namespace

nlohmann::json RegistrationOptionsJson(const RegistrationOptions& o) {
  nlohmann::json j = {{"method", RegistrationMethodName(o.method)},
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
                      {"tolerance_window", o.tolerance_window},
                      {"time_limit_seconds", o.max_seconds},
                      {"mesh_fraction", o.mesh_spacing_fraction},
                      {"affine", AffineModeName(o.affine.mode)}};
  if (o.initial_affine) j["initial_affine"] = o.initial_affine_source;
  if (o.method == RegistrationMethod::kShooting) {
    j["shooting_start"] = o.shooting_start == ShootingStart::kZero ? "zero" : "velocity-field";
  }
  return j;
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
  j["substeps"] = r.substeps;
  j["inverse_consistency_rms_voxels"] = r.inverse_consistency_rms_voxels;
  j["inverse_seconds"] = r.inverse_seconds;
  if (!r.world_space_note.empty()) j["world_space_note"] = r.world_space_note;
  if (r.affine_stage_ran) j["affine"] = AffineJson(r);
  j["grid"] = {{"size", std::vector<int>(r.grid.size.begin(), r.grid.size.begin() + r.grid.dim)},
               {"spacing_mm", std::vector<double>(r.grid.spacing_mm.begin(),
                                                  r.grid.spacing_mm.begin() + r.grid.dim)}};
  j["options"] = RegistrationOptionsJson(r.options);
  return j;
}

namespace {

// Voxel (i, j, k, 1) ↦ world (x, y, z, 1) of a grid: [D · diag(spacing), origin; 0, 1].
Eigen::Matrix4d GridAffine(const Grid& grid) {
  Eigen::Matrix4d m = Eigen::Matrix4d::Identity();
  m.topLeftCorner<3, 3>() =
      grid.direction *
      Eigen::Vector3d(grid.spacing_mm[0], grid.spacing_mm[1], grid.spacing_mm[2]).asDiagonal();
  for (int r = 0; r < 3; ++r) m(r, 3) = grid.origin_mm[r];
  return m;
}

}  // namespace

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
  // World geometry: the grids' voxel-to-world affines (NIfTI RAS mm) and the affine stage.
  auto write_affine = [&](const std::string& name, const Eigen::Matrix4d& m,
                          const std::string& description) {
    std::vector<double> rows(16);
    for (int i = 0; i < 4; ++i) {
      for (int j = 0; j < 4; ++j) rows[4 * i + j] = m(i, j);
    }
    writer.WriteDoubles(name, rows, {4, 4});
    writer.SetAttribute(name, "units", "mm");
    writer.SetAttribute(name, "description", description);
  };
  write_affine("fixed_affine", GridAffine(g),
               "voxel (i, j, k, 1) of the fixed grid -> world (x, y, z, 1), NIfTI RAS mm");
  if (r.moving_grid.voxels() > 1) {
    write_affine("moving_affine", GridAffine(r.moving_grid),
                 "voxel (i, j, k, 1) of the moving image's grid -> world (x, y, z, 1), NIfTI RAS mm");
    const std::vector<std::int64_t> moving_size(r.moving_grid.size.begin(),
                                                r.moving_grid.size.begin() + r.moving_grid.dim);
    writer.WriteInts("moving_size", moving_size.data(), {moving_size.size()});
    writer.SetAttribute("moving_size", "description", "voxels along the moving grid's axes (x, y[, z])");
  }
  write_affine("affine", r.affine,
               "affine stage: fixed-world point x -> affine * x in the moving image's world (RAS "
               "mm, homogeneous); the whole map is x -> affine * phi(x); identity without one");
  // Dimension scales: every array axis gets a coordinate (h5py dims, xarray/netCDF).
  auto axis_scale = [&](const std::string& name, int n, double spacing, const std::string& units) {
    std::vector<double> values(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = i * spacing;
    writer.WriteDoubles(name, values, {static_cast<std::uint64_t>(n)});
    writer.SetAttribute(name, "units", units);
    writer.MakeDimensionScale(name, name);
  };
  static const char* const kAxis[3] = {"x", "y", "z"};
  for (int a = 0; a < g.dim; ++a) {
    axis_scale(kAxis[a], g.size[a], g.spacing_mm[a], "mm");
    writer.SetAttribute(kAxis[a], "description",
                        std::string("voxel centres along fixed grid axis ") + kAxis[a] +
                            " (mm from the first; world position through fixed_affine)");
    axis_scale(std::string("mesh_") + kAxis[a], r.mesh.size[a], r.mesh.spacing_mm[a], "mm");
    writer.SetAttribute(std::string("mesh_") + kAxis[a], "description",
                        std::string("mesh node centres along axis ") + kAxis[a] +
                            " (mm from the first, same extent as the fixed grid)");
  }
  {
    std::vector<std::int64_t> components(static_cast<std::size_t>(g.dim));
    for (int a = 0; a < g.dim; ++a) components[static_cast<std::size_t>(a)] = a;
    writer.WriteInts("component", components.data(), {components.size()});
    writer.SetAttribute("component", "description", "vector component along axis x, y[, z]");
    writer.MakeDimensionScale("component", "component");
    writer.MakeDimensionScale("times", "time");
  }
  // Attaches scales to `dataset` whose axes are the leading ones given, then [z,] y, x of the
  // mesh or the fixed grid (or none).
  enum class Space { kNone, kMesh, kFixed };
  auto attach = [&](const std::string& dataset, const std::vector<std::string>& leading,
                    Space space) {
    std::vector<std::string> axes = leading;
    for (int a = g.dim - 1; a >= 0 && space != Space::kNone; --a) {
      axes.push_back(space == Space::kMesh ? std::string("mesh_") + kAxis[a]
                                           : std::string(kAxis[a]));
    }
    for (std::size_t i = 0; i < axes.size(); ++i) {
      writer.AttachDimensionScale(dataset, static_cast<unsigned>(i), axes[i]);
      const std::string& label = axes[i] == "times" ? std::string("time") : axes[i];
      writer.SetDimensionLabel(dataset, static_cast<unsigned>(i), label);
    }
  };
  attach("states", {"times", "component"}, Space::kMesh);
  attach("velocities", {"times", "component"}, Space::kMesh);
  if (!r.momenta.empty()) attach("momenta", {"times", "component"}, Space::kMesh);
  attach("images", {"times"}, Space::kFixed);
  attach("map", {"component"}, Space::kFixed);
  attach("velocity_norms", {"times"}, Space::kNone);
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
  WriteDisplacementFile((out / "displacement.nii.gz").string(), result.displacement);
  WriteDisplacementFile((out / "inverse_displacement.nii.gz").string(),
                        result.inverse_displacement);
  WriteImage((out / "jacobian.nii.gz").string(), result.jacobian, ElementType::kFloat32);
  WriteRegistrationTrajectory((out / "trajectory.h5").string(), result);
  if (result.affine_stage_ran) {
    WriteItkAffine((out / "affine.txt").string(), result.affine, result.grid.dim,
                   FieldOfViewCentre(result.grid));
  }
  WriteFileAtomically((out / "metrics.json").string(), MetricsJson(result).dump(2) + "\n");
  WriteSummaryFigure((out / "summary.png").string(), result, moving, fixed);
}

Image ApplyRegistration(const std::string& dir, const ImageView& image,
                        Interpolation interpolation, std::optional<double> outside_value) {
  if (!std::filesystem::exists(dir)) {
    throw MissingFileError("--transform: '" + dir + "' does not exist (expected the --out folder "
                           "of `diffeoflow register`)");
  }
  if (!std::filesystem::is_directory(dir)) {
    throw InputError("--transform: '" + dir + "' is not a folder (expected the --out folder of "
                     "`diffeoflow register`)");
  }
  TransformChain chain;
  AppendTransform(chain, dir, false);
  ResampleNames names;
  names.reference = "the fixed grid of --transform " + dir;
  return ResampleThroughChain(image, *chain.DefaultReference(), chain,
                              AsResampleInterpolation(interpolation), outside_value, names);
}

}  // namespace diffeoflow::registration
