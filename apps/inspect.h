// `diffeoflow inspect`: what its two forms share (apps/cmd_inspect.cc parses the flags and picks
// one): --model (apps/cmd_inspect_model.cc) and --transform (apps/cmd_inspect_transform.cc).
#pragma once

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/command.h"

namespace diffeoflow::app {

struct InspectFlags {
  std::string model, transform, out, data, labels;
  int resolution = 128;
  double margin = 0.1;
};

// The geometry of a trained classifier: volume_element.npy / .png, probabilities.npy,
// geometry.json.
int RunInspectModel(const InspectFlags& flags, const CommonFlags& common);

// The geometry of a register output: grid.png and geometry.json.
int RunInspectTransform(const InspectFlags& flags, const CommonFlags& common);

// NaN (undefined) is written as null.
inline nlohmann::ordered_json JsonNumber(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

}  // namespace diffeoflow::app
