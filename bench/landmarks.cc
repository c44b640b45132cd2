// Landmark matching benchmark: n landmarks on the unit circle matched to their image under the
// smooth map φ(x, y) = (x + a sin(π y), y + a cos(π x)) by geodesic shooting (Levenberg–Marquardt
// on p_0) and by gradient descent on time-dependent momenta (L-BFGS, augmented Lagrangian), with
// the same kernel, time steps and exact-matching data term. Prints one JSON object.
//
//   bench_landmarks [--landmarks 60] [--amplitude 0.25] [--kernel-width W] [--steps 10]
//                   [--sigma 0] [--jacobian adjoint|forward]
//                   [--method shooting|lddmm] [--tolerance 1e-5]
#include <cstdlib>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "registration/landmark_matching.h"
#include "registration/landmark_outputs.h"
#include "registration/shapes.h"

namespace {

double NumberArgument(const std::string& flag, const char* text) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || *end != '\0') {
    std::cerr << "bench_landmarks: " << flag << " expects a number, got '" << text << "'\n";
    std::exit(2);
  }
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace diffeoflow::registration;
  int landmarks = 60;
  double amplitude = 0.25;
  LandmarkMatchingOptions options;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "bench_landmarks: " << flag << " needs a value\n";
      return 2;
    }
    const char* value = argv[++i];
    if (flag == "--landmarks") {
      landmarks = static_cast<int>(NumberArgument(flag, value));
    } else if (flag == "--amplitude") {
      amplitude = NumberArgument(flag, value);
    } else if (flag == "--kernel-width") {
      options.kernel_width = NumberArgument(flag, value);
    } else if (flag == "--steps") {
      options.steps = static_cast<int>(NumberArgument(flag, value));
    } else if (flag == "--sigma") {
      options.sigma = NumberArgument(flag, value);
    } else if (flag == "--method") {
      only = value;
    } else if (flag == "--tolerance") {
      options.residual_tolerance = NumberArgument(flag, value);
    } else if (flag == "--jacobian") {
      options.jacobian = std::string(value) == "forward" ? ShootingJacobian::kForwardSensitivity
                                                         : ShootingJacobian::kAdjoint;
    } else {
      std::cerr << "bench_landmarks: unknown flag " << flag << "\n";
      return 2;
    }
  }
  try {
    const diffeoflow::Matrix source = CircleLandmarks(landmarks);
    const diffeoflow::Matrix target = SmoothWarpOfPoints(source, amplitude);
    nlohmann::json out;
    out["landmarks"] = landmarks;
    out["amplitude"] = amplitude;
    for (LandmarkMethod method : {LandmarkMethod::kShooting, LandmarkMethod::kLddmm}) {
      if (!only.empty() && only != LandmarkMethodName(method)) continue;
      LandmarkMatchingOptions o = options;
      o.method = method;
      const LandmarkMatchingResult r = MatchLandmarks(source, target, o);
      nlohmann::json j = LandmarkMetricsJson(r);
      j.erase("loss_history");
      j.erase("residual_history");
      out[LandmarkMethodName(method)] = j;
    }
    if (only.empty()) {
      out["kinetic_energy_ratio_shooting_over_lddmm"] =
          out["shooting"]["kinetic_energy"].get<double>() /
          out["lddmm"]["kinetic_energy"].get<double>();
    }
    std::cout << out.dump(2) << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "bench_landmarks: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
