// The files a pairwise registration leaves in its output folder (CLI.md, `register`), and their
// use on another image. The algorithm (registration/register.h) writes nothing but its checkpoint;
// this library (diffeoflow::registration_outputs, with the figures of summary_figure.h) turns a
// RegistrationResult into files. Schema of trajectory.h5: docs/registration.md.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "registration/image.h"
#include "registration/image_io.h"
#include "registration/image_ops.h"
#include "registration/image_view.h"
#include "registration/register.h"

namespace diffeoflow::registration {

// metrics.json: the keys of CLI.md (method, ssd_initial, ssd_final, ssd_reduction, kinetic_energy,
// velocity_norm_per_time, min_jacobian, max_jacobian, iterations, wall_seconds, parameters) and a
// few more (similarity, velocity_norm_spread, energy, loss_history, termination, grid, options).
// The ssd_* keys are the SSD whatever the similarity the run optimised (comparable across runs).
nlohmann::json MetricsJson(const RegistrationResult& result);

// metrics.json's "options" object: the registration options a run used (resolved).
nlohmann::json RegistrationOptionsJson(const RegistrationOptions& options);

// metrics.json also holds, when an affine stage ran, an "affine" object: mode, start, matrix_ras,
// translation_mm, rotation_degrees, rotation_axis, scales, determinant, parameters, centre_mm,
// ssd_before, ssd_after, share_of_ssd_reduction, energy_initial, energy_final, levels, iterations,
// function_evaluations, wall_seconds (docs/affine.md).
//
// Writes everything `register` promises into `dir` (created if missing, each file atomically):
// warped.<ext of fixed_format>, displacement.nii.gz, jacobian.nii.gz, trajectory.h5, metrics.json,
// summary.png, and affine.txt (ITK text transform, transform_io.h) when an affine stage ran.
void WriteRegistrationOutputs(const std::string& dir, const RegistrationResult& result,
                              const Image& moving, const Image& fixed, ImageFormat fixed_format);

// trajectory.h5 alone (schema in docs/registration.md).
void WriteRegistrationTrajectory(const std::string& path, const RegistrationResult& result);

// The transform a `register` run left in `dir` (its displacement.nii.gz and affine, see
// transform_chain.h), applied to `image` — on the moving image's grid or on any other grid in the
// moving image's world — through world coordinates, onto the registration's fixed grid:
// ResampleThroughChain with that one transform. Points outside the image's field of view get
// `outside_value` (default: its background). Nearest keeps label values and the source element
// type. InputError naming --image when the image does not overlap the fixed grid through the map.
Image ApplyRegistration(const std::string& dir, const ImageView& image,
                        Interpolation interpolation,
                        std::optional<double> outside_value = std::nullopt);

}  // namespace diffeoflow::registration
