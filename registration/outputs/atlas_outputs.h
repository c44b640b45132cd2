// The files `diffeoflow atlas` leaves in its output folder (docs/atlas.md). Split by who writes
// them: every worker writes its own subjects' folders, worker 0 the shared files.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "registration/atlas.h"

namespace diffeoflow::registration {

// The folder of subject i under `dir`: subjects/<i, 3 digits>_<file name without extension>.
std::string AtlasSubjectDir(const std::string& dir, int index, const std::string& path);

// Into AtlasSubjectDir, each file atomically: momentum.nii.gz (m_i on the template's mesh, a
// vector field), displacement.nii.gz (u in mm, ITK/ANTs convention as `register` writes it),
// jacobian.nii.gz, warped.nii.gz (the subject on the template grid) and affine.txt when an
// affine stage ran (the whole map is x ↦ A(φ(x)), as for `register`).
void WriteAtlasSubjectOutputs(const std::string& dir, const AtlasSubjects& subjects,
                              const AtlasResult& result);

// metrics.json: per round mean_momentum_norm, mean_subject_momentum_norm, mean_ssd,
// wall_seconds; per subject its file, folder, ssd, momentum_norm, min/max_jacobian; converged,
// wall_seconds, workers, grid, mesh and the options (`extra` merged in at the top level).
nlohmann::json AtlasMetricsJson(const AtlasSubjects& subjects, const AtlasResult& result,
                                const std::string& dir, const nlohmann::json& extra);

// template.nii.gz, metrics.json and summary.png (the template of every round, mid z-slice in 3-D).
void WriteAtlasSharedOutputs(const std::string& dir, const AtlasSubjects& subjects,
                             const AtlasResult& result, const nlohmann::json& extra);

// summary.png alone.
void WriteAtlasFigure(const std::string& path, const AtlasResult& result);

}  // namespace diffeoflow::registration
