#include "registration/outputs/atlas_outputs.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "plot/figure.h"
#include "registration/affine.h"
#include "registration/displacement_file.h"
#include "registration/image_io.h"
#include "registration/outputs/register_outputs.h"
#include "registration/outputs/summary_figure.h"
#include "registration/transform_io.h"
#include "solvers/atomic_file.h"

namespace diffeoflow::registration {
namespace {

std::vector<int> SizeOf(const Grid& g) {
  return std::vector<int>(g.size.begin(), g.size.begin() + g.dim);
}
std::vector<double> SpacingOf(const Grid& g) {
  return std::vector<double>(g.spacing_mm.begin(), g.spacing_mm.begin() + g.dim);
}

}  // namespace

std::string AtlasSubjectDir(const std::string& dir, int index, const std::string& path) {
  std::string stem = std::filesystem::path(path).filename().string();
  for (const char* extension : {".nii.gz", ".nii", ".png", ".npy"}) {
    const std::string e(extension);
    if (stem.size() > e.size() && stem.compare(stem.size() - e.size(), e.size(), e) == 0) {
      stem.resize(stem.size() - e.size());
      break;
    }
  }
  char prefix[16];
  std::snprintf(prefix, sizeof(prefix), "%03d_", index);
  return (std::filesystem::path(dir) / "subjects" / (prefix + stem)).string();
}

void WriteAtlasSubjectOutputs(const std::string& dir, const AtlasSubjects& subjects,
                              const AtlasResult& result) {
  for (const AtlasSubjectMaps& m : result.subjects) {
    const std::filesystem::path out(
        AtlasSubjectDir(dir, m.index, subjects.names[static_cast<std::size_t>(m.index)]));
    std::filesystem::create_directories(out);
    WriteVectorField((out / "momentum.nii.gz").string(), m.momentum);
    WriteDisplacementFile((out / "displacement.nii.gz").string(), m.displacement);
    WriteImage((out / "jacobian.nii.gz").string(), m.jacobian, ElementType::kFloat32);
    WriteImage((out / "warped.nii.gz").string(), m.warped, ElementType::kFloat32);
    if (m.affine_stage_ran) {
      WriteItkAffine((out / "affine.txt").string(), m.affine, result.template_image.grid.dim,
                     FieldOfViewCentre(result.template_image.grid));
    }
  }
}

nlohmann::json AtlasMetricsJson(const AtlasSubjects& subjects, const AtlasResult& result,
                                const std::string& dir, const nlohmann::json& extra) {
  nlohmann::json j = extra;
  nlohmann::json rounds = nlohmann::json::array();
  for (std::size_t r = 0; r < result.rounds.size(); ++r) {
    const AtlasRound& round = result.rounds[r];
    rounds.push_back({{"round", r},
                      {"mean_momentum_norm", round.mean_momentum_norm},
                      {"mean_subject_momentum_norm", round.mean_subject_momentum_norm},
                      {"mean_ssd", round.mean_ssd},
                      {"wall_seconds", round.wall_seconds}});
  }
  j["rounds"] = rounds;
  nlohmann::json list = nlohmann::json::array();
  for (std::size_t i = 0; i < subjects.names.size(); ++i) {
    const AtlasSubjectSummary& s = result.summaries[i];
    const std::string folder = AtlasSubjectDir(dir, static_cast<int>(i), subjects.names[i]);
    list.push_back({{"file", subjects.names[i]},
                    {"folder", std::filesystem::path(folder).lexically_relative(dir).string()},
                    {"ssd", s.ssd},
                    {"momentum_norm", s.momentum_norm},
                    {"min_jacobian", s.min_jacobian},
                    {"max_jacobian", s.max_jacobian},
                    {"registration_seconds", s.registration_seconds}});
  }
  j["subjects"] = list;
  j["converged"] = result.converged;
  j["template_updates"] = result.rounds.empty() ? 0 : result.rounds.size() - 1;
  j["wall_seconds"] = result.wall_seconds;
  j["grid"] = {{"size", SizeOf(result.template_image.grid)},
               {"spacing_mm", SpacingOf(result.template_image.grid)}};
  j["mesh"] = {{"size", SizeOf(result.mesh)}, {"spacing_mm", SpacingOf(result.mesh)}};
  j["registration_options"] = RegistrationOptionsJson(result.options);
  return j;
}

void WriteAtlasFigure(const std::string& path, const AtlasResult& result) {
  const int panels = static_cast<int>(result.rounds.size());
  double vmin = result.template_image.data.minCoeff();
  double vmax = result.template_image.data.maxCoeff();
  for (const AtlasRound& r : result.rounds) {
    vmin = std::min(vmin, r.template_image.data.minCoeff());
    vmax = std::max(vmax, r.template_image.data.maxCoeff());
  }
  plot::Figure fig(1, std::max(1, panels), 320, 300);
  const Grid& g = result.template_image.grid;
  char title[256];
  std::snprintf(title, sizeof(title), "Atlas by geodesic shooting: %zu subjects, %d round%s%s",
                result.summaries.size(), panels, panels == 1 ? "" : "s",
                g.dim == 3 ? " (mid z-slice)" : "");
  fig.SetTitle(title);
  for (int k = 0; k < panels; ++k) {
    const AtlasRound& r = result.rounds[static_cast<std::size_t>(k)];
    char label[128];
    std::snprintf(label, sizeof(label), "%s %d: |mean m| %.3g, SSD %.3g",
                  k == 0 ? "start" : "round", k, r.mean_momentum_norm, r.mean_ssd);
    ImagePanel(fig.At(0, k), g, r.template_image.data, label, vmin, vmax);
  }
  fig.SavePng(path);
}

void WriteAtlasSharedOutputs(const std::string& dir, const AtlasSubjects& subjects,
                             const AtlasResult& result, const nlohmann::json& extra) {
  const std::filesystem::path out(dir);
  WriteImage((out / "template.nii.gz").string(), result.template_image, ElementType::kFloat32);
  WriteFileAtomically((out / "metrics.json").string(),
                      AtlasMetricsJson(subjects, result, dir, extra).dump(2) + "\n");
  WriteAtlasFigure((out / "summary.png").string(), result);
}

}  // namespace diffeoflow::registration
