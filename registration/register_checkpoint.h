// The checkpoint of a pairwise registration (register.h): what the level loop of Register carries
// from one pyramid level to the next, written atomically after every completed level and read back
// by `resume`.
//
// HDF5 layout (one file):
//   /  attributes  format = "diffeoflow-registration-checkpoint", version = 1, fingerprint,
//                  levels_done, iterations, evaluations, termination (the message),
//                  termination_type (the Termination as an integer), time_up (0 or 1)
//   /carried_velocity   v = K^{1/2} w on the mesh of the last completed level (mm per unit time;
//                       T + 1 fields for lddmm, one for shooting), what the next level starts from
//   /w                  the last completed level's final whitened iterate (band-limited when B > 0)
//   /loss_history       E after each iteration of the completed levels (index 0: initial)
//   /level_starts       index into loss_history where each completed level starts
//
// The fingerprint holds the images (sizes and an FNV-1a hash of their values) and every option
// that changes the result, not threads, progress or the time limit: a checkpoint is only resumed
// with the images and options it was written for.
#pragma once

#include <string>
#include <vector>

#include "registration/image.h"
#include "registration/image_view.h"
#include "registration/register.h"

namespace diffeoflow::registration {

struct RegistrationCheckpoint {
  int levels_done = 0;
  Eigen::VectorXd carried_velocity;  // v on the last completed level's mesh
  Eigen::VectorXd w;                 // the last completed level's final (projected) whitened iterate
  int iterations = 0;                // summed over the completed levels
  int evaluations = 0;
  std::vector<double> loss_history;
  std::vector<int> level_starts;
  Termination termination_type = Termination::kIterationLimit;
  std::string termination;           // the message
  bool time_up = false;              // the time limit ran out: later levels only evaluate
};

// The images (before intensity normalisation) and the options, as a JSON string.
std::string CheckpointFingerprint(const ImageView& moving, const ImageView& fixed,
                                  const RegistrationOptions& options);

// Writes `path` atomically (its folder is created if missing).
void WriteRegistrationCheckpoint(const std::string& path, const std::string& fingerprint,
                                 const RegistrationCheckpoint& checkpoint);

// Throws InputError naming `path` when it is not a registration checkpoint, was written for another
// fingerprint, or is inconsistent (levels_done outside [0, levels], missing level data).
RegistrationCheckpoint ReadRegistrationCheckpoint(const std::string& path,
                                                  const std::string& fingerprint, int levels);

}  // namespace diffeoflow::registration
