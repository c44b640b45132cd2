// `diffeoflow shapes`: the built-in 2-D demo pair (moving = disc, fixed = C) as PNG files.
#include <filesystem>
#include <iostream>
#include <memory>

#include "apps/command.h"
#include "registration/image_io.h"
#include "registration/shapes.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"

namespace diffeoflow::app {
namespace {

struct ShapesFlags {
  std::string out;
  int size = 256;
};

CommandRegistration registration{
    "shapes", "Write the built-in disc-to-C pair (moving.png, fixed.png)",
    [](CLI::App& sub, const CommonFlags& common) -> std::function<int()> {
      auto flags = std::make_shared<ShapesFlags>();
      sub.add_option("--out", flags->out, "Output folder")->required();
      sub.add_option("--size", flags->size, "Image size N (N x N pixels)")->capture_default_str();
      return [flags, &common]() {
        if (flags->size < 16 || flags->size > 8192) {
          throw InputError("--size must be in [16, 8192], got " + std::to_string(flags->size));
        }
        registration::ShapeOptions shape;
        shape.size = flags->size;
        const registration::ShapePair pair = registration::DiscToCPair(shape);
        EnsureOutputDirectory(flags->out);
        registration::ImageWriteOptions write;
        write.type = registration::ElementType::kUint16;
        const std::filesystem::path out(flags->out);
        // Intensities are in [0, 1]; scale to the full 16-bit range.
        registration::Image moving = pair.moving, fixed = pair.fixed;
        moving.data *= 65535.0;
        fixed.data *= 65535.0;
        registration::WriteImage((out / "moving.png").string(), moving, write);
        registration::WriteImage((out / "fixed.png").string(), fixed, write);
        if (!common.quiet) {
          std::cout << "wrote " << (out / "moving.png").string() << " (disc) and "
                    << (out / "fixed.png").string() << " (C)\n";
        }
        return 0;
      };
    }};

}  // namespace
}  // namespace diffeoflow::app
