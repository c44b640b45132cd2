// Links the installed diffeoflow::registration_outputs (metrics.json, figures) and checks that
// metrics.json of a default result names its method.
#include <cstdio>

#include "registration/outputs/register_outputs.h"

int main() {
  const diffeoflow::registration::RegistrationResult result;
  const nlohmann::json metrics = diffeoflow::registration::MetricsJson(result);
  std::printf("metrics.json method %s\n", metrics.value("method", "").c_str());
  return metrics.value("method", "") == "shooting" ? 0 : 1;
}
