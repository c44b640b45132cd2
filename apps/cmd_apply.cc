// `diffeoflow apply`: the transform of a `register` run applied to another image (CLI.md).
#include <cmath>
#include <iostream>
#include <memory>
#include <optional>

#include "apps/command.h"
#include "registration/image_io.h"
#include "registration/outputs/register_outputs.h"
#include "registration/register.h"
#include "solvers/errors.h"

namespace diffeoflow::app {
namespace {

struct ApplyFlags {
  std::string transform, image, out;
  std::string interpolation = "linear";
  double default_value = 0.0;
  CLI::Option* default_value_option = nullptr;
};

CommandRegistration registration{
    "apply", "Apply the transform of a `register` run to another image (e.g. a label map)",
    [](CLI::App& sub, const CommonFlags& common) -> std::function<int()> {
      auto flags = std::make_shared<ApplyFlags>();
      sub.add_option("--transform", flags->transform, "Output folder of `diffeoflow register`")
          ->required();
      sub.add_option("--image", flags->image,
                     "Image in the moving image's world: on its grid or any other (resampled "
                     "through world coordinates)")
          ->required();
      sub.add_option("--out", flags->out, "Output image (.nii, .nii.gz, .png, .npy)")->required();
      sub.add_option("--interpolation", flags->interpolation,
                     "linear | nearest (label maps: values and element type kept)")
          ->capture_default_str();
      flags->default_value_option = sub.add_option(
          "--default-value", flags->default_value,
          "Value where the map leaves the image's field of view (default: the image's "
          "background, the median of its outermost voxels)");
      return [flags, &common]() {
        registration::Interpolation interpolation;
        if (flags->interpolation == "linear") {
          interpolation = registration::Interpolation::kLinear;
        } else if (flags->interpolation == "nearest") {
          interpolation = registration::Interpolation::kNearest;
        } else {
          throw InputError("--interpolation: expected linear or nearest, got '" +
                           flags->interpolation + "'");
        }
        registration::FormatFromPath(flags->out, "--out");
        const registration::Image image = registration::ReadImage(flags->image, {true, "--image"});
        std::optional<double> outside;
        if (flags->default_value_option->count() > 0) {
          if (!std::isfinite(flags->default_value)) {
            throw InputError("--default-value: expected a finite number");
          }
          outside = flags->default_value;
        }
        const registration::Image warped =
            registration::ApplyRegistration(flags->transform, image, interpolation, outside);
        registration::ImageWriteOptions write;
        write.keep_source_type = interpolation == registration::Interpolation::kNearest;
        registration::WriteImage(flags->out, warped, write);
        if (!common.quiet) std::cout << "wrote " << flags->out << "\n";
        return 0;
      };
    }};

}  // namespace
}  // namespace diffeoflow::app
