// `diffeoflow train`: a neural-ODE (or discrete-depth) classifier (apps/train_command.h).
#include <memory>

#include "apps/command.h"
#include "apps/process_workers.h"
#include "apps/train_command.h"

namespace diffeoflow::app {
namespace {

CommandRegistration registration{
    "train", "Train a neural-ODE classifier (spirals, circles, moons, Fashion-MNIST, own .npy data)",
    [](CLI::App& sub, const CommonFlags& common) -> std::function<int()> {
      auto f = std::make_shared<TrainFlags>();
      AddTrainFlags(sub, *f);
      return [f, &common]() { return RunTrain(*f, common, {}, ProcessWorkers()); };
    }};

}  // namespace
}  // namespace diffeoflow::app
