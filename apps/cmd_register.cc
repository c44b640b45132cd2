// `diffeoflow register`: one pairwise registration (CLI.md).
#include <filesystem>
#include <iostream>
#include <memory>

#include "apps/command.h"
#include "apps/registration_flags.h"
#include "registration/image_io.h"
#include "registration/outputs/register_outputs.h"
#include "registration/register.h"
#include "registration/world_space.h"
#include "solvers/interrupt.h"

namespace diffeoflow::app {
namespace {

CommandRegistration registration{
    "register", "One pairwise registration: geodesic shooting (default) or LDDMM on v_t",
    [](CLI::App& sub, const CommonFlags& common) -> std::function<int()> {
      auto flags = std::make_shared<RegistrationFlags>();
      flags->Add(sub, true);
      return [flags, &common]() {
        registration::RegistrationOptions options = flags->Resolve(common);
        const RegistrationFlags::Inputs inputs = flags->ReadInputsAndPrepareOutput();
        const auto& [fixed, moving, fixed_format, initial_affine] = inputs;
        flags->UseInitialAffine(inputs, options);
        InstallInterruptHandler();
        const registration::RegistrationResult result =
            registration::Register(moving, fixed, options);
        EndProgressLine(common);
        if (result.interrupted) return ReportInterrupted(options.checkpoint);
        PrintRegistrationNotes(common, result);
        // summary.png shows the moving image as the registration saw it: on the fixed grid.
        const registration::MovingInFixedSpace shown(moving, fixed);
        registration::WriteRegistrationOutputs(flags->out, result, shown.image(), fixed,
                                               fixed_format);
        RemoveCheckpoint(options.checkpoint);
        if (!common.quiet) {
          std::cout << result.BriefReport() << "\n" << "wrote " << flags->out << "/\n";
        }
        return 0;
      };
    }};

}  // namespace
}  // namespace diffeoflow::app
