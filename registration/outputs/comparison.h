// What `compare` reports beside each method's own files (CLI.md, `compare`): comparison.json's
// entries and the table of comparison.md, shared by the command line and the Python module.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "registration/register.h"

namespace diffeoflow::registration {

// One method of the comparison: its result, or the message of the numerical failure that stopped
// it (the other method runs all the same).
struct MethodOutcome {
  RegistrationMethod method = RegistrationMethod::kLddmm;
  std::optional<RegistrationResult> result;
  std::string error;
  bool interrupted = false;
  bool ok() const { return result.has_value(); }
  std::string name() const { return RegistrationMethodName(method); }
};

// "LDDMM (GD on v_t)" or "geodesic shooting".
const char* MethodTitle(RegistrationMethod method);

// comparison.md: both methods' metrics side by side (a failed method's column says so, its error
// follows); `options` are those the runs used (resolved for the fixed grid).
std::string ComparisonTable(const MethodOutcome& gd, const MethodOutcome& shoot,
                            const RegistrationOptions& options, bool figure_drawn);

// comparison.json's entry of one method: metrics.json's keys and "status": "ok", or
// {"method", "status": "failed", "error"}.
nlohmann::json ComparisonEntry(const MethodOutcome& outcome);

}  // namespace diffeoflow::registration
