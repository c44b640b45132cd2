// Registration benchmark: the built-in disc-to-C pair (default 256 x 256), velocity-field LDDMM and
// geodesic shooting with the default options of `diffeoflow register`. Prints one JSON object.
//
//   bench_register [size=256] [levels=3] [steps=8] [sigma=…] [alpha=…] [gamma=…] [iterations=…]
//                  [threads=2] [methods=both|lddmm|shooting]
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "registration/register.h"
#include "registration/outputs/register_outputs.h"
#include "registration/shapes.h"

int main(int argc, char** argv) {
  using namespace diffeoflow::registration;
  std::map<std::string, std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (eq == std::string::npos) {
      std::cerr << "bench_register: expected key=value, got '" << a << "'\n";
      return 2;
    }
    args[a.substr(0, eq)] = a.substr(eq + 1);
  }
  auto number = [&](const std::string& key, double fallback) {
    return args.count(key) ? std::atof(args[key].c_str()) : fallback;
  };
  ShapeOptions shape;
  shape.size = static_cast<int>(number("size", 256));
  const ShapePair pair = DiscToCPair(shape);

  RegistrationOptions options;
  options.levels = static_cast<int>(number("levels", options.levels));
  options.time_steps = static_cast<int>(number("steps", options.time_steps));
  options.sigma = number("sigma", options.sigma);
  options.metric.alpha_mm2 = number("alpha", options.metric.alpha_mm2);
  options.metric.gamma = number("gamma", options.metric.gamma);
  options.iterations = static_cast<int>(number("iterations", options.iterations));
  options.relative_decrease = number("tolerance", options.relative_decrease);
  options.band_limit = static_cast<int>(number("band_limit", options.band_limit));
  options.mesh_spacing_fraction = number("mesh", options.mesh_spacing_fraction);
  options.metric.threads = static_cast<int>(number("threads", 1));
  const std::string methods = args.count("methods") ? args["methods"] : "both";

  nlohmann::json out;
  out["pair"] = "disc-to-C";
  out["size"] = shape.size;
  for (const auto method : {RegistrationMethod::kLddmm, RegistrationMethod::kShooting}) {
    const std::string name = RegistrationMethodName(method);
    if (methods != "both" && methods != name) continue;
    options.method = method;
    try {
      const RegistrationResult r = Register(pair.moving, pair.fixed, options);
      nlohmann::json m = MetricsJson(r);
      if (!args.count("history")) m.erase("loss_history");
      m.erase("velocity_norm_per_time");
      out[name] = m;
    } catch (const std::exception& e) {
      out[name] = {{"error", e.what()}};
    }
  }
  std::cout << out.dump(2) << "\n";
  return 0;
}
