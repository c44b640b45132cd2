// `diffeoflow inspect`: the geometry of a trained classifier (--model, apps/cmd_inspect_model.cc,
// flows/inspect.h) or of a registration (--transform, apps/cmd_inspect_transform.cc), as
// ../shared/CLI.md specifies.
#include <functional>
#include <memory>

#include "apps/command.h"
#include "apps/inspect.h"
#include "solvers/errors.h"

namespace {

using namespace diffeoflow;

int Run(const app::InspectFlags& f, const app::CommonFlags& common) {
  if (f.model.empty() == f.transform.empty()) {
    throw InputError("inspect: give exactly one of --model FILE and --transform DIR");
  }
  return f.model.empty() ? app::RunInspectTransform(f, common) : app::RunInspectModel(f, common);
}

app::CommandRegistration registration{
    "inspect", "Geometry of a trained classifier (volume element, Fisher-Rao norm) or a registration",
    [](CLI::App& sub, const app::CommonFlags& common) -> std::function<int()> {
      auto f = std::make_shared<app::InspectFlags>();
      sub.add_option("--model", f->model, "A classifier on 2-D data: DIR/model.h5 from train");
      sub.add_option("--transform", f->transform, "A register output folder");
      sub.add_option("--data", f->data,
                     "Model: .npy features to look at (default: the data the model was trained on)");
      sub.add_option("--labels", f->labels, "Model: .npy integer labels of --data");
      sub.add_option("--out", f->out, "Output folder")->required();
      sub.add_option("--resolution", f->resolution, "Grid points per axis (model)")
          ->capture_default_str();
      sub.add_option("--margin", f->margin,
                     "Grid beyond the data's bounding box, as a fraction of its size (model)")
          ->capture_default_str();
      return [f, &common]() { return Run(*f, common); };
    }};

}  // namespace
