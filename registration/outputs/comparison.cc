#include "registration/outputs/comparison.h"

#include <cstdio>
#include <functional>
#include <sstream>

#include "registration/outputs/register_outputs.h"

namespace diffeoflow::registration {

const char* MethodTitle(RegistrationMethod method) {
  return method == RegistrationMethod::kLddmm ? "LDDMM (GD on v_t)" : "geodesic shooting";
}

std::string ComparisonTable(const MethodOutcome& gd, const MethodOutcome& shoot,
                            const RegistrationOptions& options, bool figure_drawn) {
  std::ostringstream s;
  char line[512];
  s << "# Gradient descent on v_t (LDDMM) against geodesic shooting\n\n";
  s << "Same pair, metric L = (I - " << options.metric.alpha_mm2 << " mm^2 Laplacian)^"
    << options.metric.gamma << ", ";
  if (options.similarity == SimilarityMeasure::kLocalNcc) {
    s << "local NCC (window radius " << options.ncc_radius << " voxels) with weight "
      << "(1/25)/sigma^2 on 1/2 sum (cc_ff - cc)";
  } else {
    s << "SSD weight 1/sigma^2";
  }
  s << " with sigma = " << options.sigma << ", T = " << options.time_steps << " time steps, ";
  if (const MethodOutcome* done = gd.ok() ? &gd : shoot.ok() ? &shoot : nullptr) {
    s << done->result->level_starts.size() << " resolution levels.";
  } else {
    s << "at most " << options.levels << " resolution levels.";
  }
  if (options.similarity != SimilarityMeasure::kSsd) {
    s << " The SSD rows measure the sum of squared differences all the same.";
  }
  s << "\n\n";
  s << "| | LDDMM (GD on v_t) | geodesic shooting |\n|---|---:|---:|\n";
  // A failed method's column says so in every row; its error follows the table.
  auto row = [&](const char* name, const char* fmt,
                 const std::function<double(const RegistrationResult&)>& value) {
    char fa[64] = "failed", fb[64] = "failed";
    if (gd.ok()) std::snprintf(fa, sizeof(fa), fmt, value(*gd.result));
    if (shoot.ok()) std::snprintf(fb, sizeof(fb), fmt, value(*shoot.result));
    std::snprintf(line, sizeof(line), "| %s | %s | %s |\n", name, fa, fb);
    s << line;
  };
  using R = const RegistrationResult&;
  row("initial SSD", "%.5g", [](R r) { return r.ssd_initial; });
  row("final SSD", "%.5g", [](R r) { return r.ssd_final; });
  row("SSD reduction [%]", "%.2f", [](R r) { return 100 * r.ssd_reduction(); });
  row("kinetic energy 1/2 int |v_t|_V^2 dt", "%.5g", [](R r) { return r.kinetic_energy; });
  row("spread of |v_t|_V [%]", "%.3f", [](R r) { return 100 * r.velocity_norm_spread(); });
  row("free parameters", "%.0f", [](R r) { return static_cast<double>(r.parameters); });
  row("iterations (all levels)", "%.0f", [](R r) { return static_cast<double>(r.iterations); });
  row("wall time [s]", "%.2f", [](R r) { return r.wall_seconds; });
  row("min det Dphi", "%.4f", [](R r) { return r.min_jacobian; });
  row("max det Dphi", "%.4f", [](R r) { return r.max_jacobian; });
  for (const MethodOutcome* o : {&gd, &shoot}) {
    if (!o->ok()) {
      s << "\n**" << MethodTitle(o->method) << " failed** (numerical failure; no " << o->name()
        << "/ results): " << o->error << "\n";
    }
  }
  if (!figure_drawn) s << "\ncomparison.png is not drawn: neither method gave a result.\n";
  return s.str();
}

// comparison.json's entry of one method: metrics.json's keys and "status": "ok", or
// {"method", "status": "failed", "error"}.
nlohmann::json ComparisonEntry(const MethodOutcome& outcome) {
  if (!outcome.ok()) {
    return {{"method", outcome.name()}, {"status", "failed"}, {"error", outcome.error}};
  }
  nlohmann::json entry = MetricsJson(*outcome.result);
  entry["status"] = "ok";
  return entry;
}

}  // namespace diffeoflow::registration
