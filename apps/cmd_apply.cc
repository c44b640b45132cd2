// `diffeoflow apply`: transforms of `register` runs and warp files applied to another image
// (CLI.md; order and conventions in docs/transforms.md).
#include <cmath>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/command.h"
#include "registration/image_io.h"
#include "registration/transform_chain.h"
#include "solvers/errors.h"

namespace diffeoflow::app {
namespace {

struct ApplyFlags {
  std::vector<std::string> transforms;
  std::string image, out, reference;
  std::string interpolation = "linear";
  bool inverse = false;
  double default_value = 0.0;
  CLI::Option* default_value_option = nullptr;
};

CommandRegistration registration{
    "apply",
    "Apply the transforms of `register` runs or ITK/ANTs warp files to another image (e.g. a "
    "label map)",
    [](CLI::App& sub, const CommonFlags& common) -> std::function<int()> {
      auto flags = std::make_shared<ApplyFlags>();
      sub.add_option("--transform", flags->transforms,
                     "Output folder of `diffeoflow register` (its map A(phi(p))) or an ITK/ANTs "
                     "warp file (.nii/.nii.gz); repeat for a chain, in ANTs' order: the first "
                     "given is applied first to the output grid's points")
          ->required()
          ->take_all();
      sub.add_option("--image", flags->image,
                     "Image in the last transform's target world: on any grid (resampled "
                     "through world coordinates)")
          ->required();
      sub.add_option("--out", flags->out, "Output image (.nii, .nii.gz, .png, .npy)")->required();
      sub.add_flag("--inverse", flags->inverse,
                   "Use the inverse map of the --transform folder (its "
                   "inverse_displacement.nii.gz and inverse affine): takes an image on the fixed "
                   "grid to the moving image's grid");
      sub.add_option("--reference", flags->reference,
                     "Image whose grid the output lies on (default: the registration's fixed "
                     "grid; with --inverse its moving grid; else the first warp file's grid; required "
                     "when every --transform is an affine file)");
      sub.add_option("--interpolation", flags->interpolation,
                     "linear | nearest (label maps: values and element type kept) | bspline "
                     "(cubic B-spline) | label (label maps: every label's indicator "
                     "interpolated linearly, the largest wins; values and element type kept)")
          ->capture_default_str();
      flags->default_value_option = sub.add_option(
          "--default-value", flags->default_value,
          "Value where the map leaves the image's field of view (default: the image's "
          "background, the median of its outermost voxels)");
      return [flags, &common]() {
        using namespace registration;
        const ResampleInterpolation interpolation =
            ParseResampleInterpolation(flags->interpolation);
        FormatFromPath(flags->out, "--out");
        std::optional<double> outside;
        if (flags->default_value_option->count() > 0) {
          if (!std::isfinite(flags->default_value)) {
            throw InputError("--default-value: expected a finite number");
          }
          outside = flags->default_value;
        }
        if (flags->inverse && flags->transforms.size() != 1) {
          throw InputError("--inverse: takes exactly one --transform (a `register` folder); for "
                           "a chain give the inverse warp files themselves, in order");
        }
        TransformChain chain;
        for (const std::string& t : flags->transforms) {
          AppendTransform(chain, t, flags->inverse);
        }
        Grid reference;
        ResampleNames names;
        if (!flags->reference.empty()) {
          reference = ReadImage(flags->reference, {true, "--reference"}).grid;
          names.reference = "--reference " + flags->reference;
        } else if (const std::optional<Grid> grid = chain.DefaultReference()) {
          reference = *grid;
          names.reference = "the output grid of " + chain.transforms().front()->name();
        } else {
          throw InputError("--reference: needed when every --transform is an affine file (an "
                           "affine has no grid of its own to resample onto)");
        }
        const Image image = ReadImage(flags->image, {true, "--image"});
        const Image warped =
            ResampleThroughChain(image, reference, chain, interpolation, outside, names);
        ImageWriteOptions write;
        write.keep_source_type = KeepsValues(interpolation);
        WriteImage(flags->out, warped, write);
        if (!common.quiet) std::cout << "wrote " << flags->out << "\n";
        return 0;
      };
    }};

}  // namespace
}  // namespace diffeoflow::app
