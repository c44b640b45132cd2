// `diffeoflow inspect`: what its two forms share (apps/cmd_inspect.cc parses the flags and picks
// one): --model (apps/cmd_inspect_model.cc) and --transform (apps/cmd_inspect_transform.cc).
#pragma once

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/command.h"
#include "flows/inspect.h"
#include "flows/model_io.h"

namespace diffeoflow::app {

struct InspectFlags {
  std::string model, transform, out, data, labels;
  int resolution = 128;
  double margin = 0.1;
};

// The geometry of a trained classifier: volume_element.npy / .png, probabilities.npy,
// geometry.json.
int RunInspectModel(const InspectFlags& flags, const CommonFlags& common);

// InputError naming the flag unless --resolution and --margin are in range.
void CheckInspectModelFlags(const InspectFlags& flags);

// What RunInspectModel computes for `file` (read from flags.model): the flags and the model's
// input checked (InputError naming the flag), then flows::InspectModel.
flows::ModelGeometry InspectClassifier(const flows::ModelFile& file, const InspectFlags& flags,
                                       const CommonFlags& common);

// The contents of geometry.json for InspectClassifier's result.
nlohmann::ordered_json GeometryJson(const flows::ModelFile& file, const flows::ModelGeometry& r);

// The geometry of a register output: grid.png and geometry.json.
int RunInspectTransform(const InspectFlags& flags, const CommonFlags& common);

// NaN (undefined) is written as null.
inline nlohmann::ordered_json JsonNumber(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

}  // namespace diffeoflow::app
