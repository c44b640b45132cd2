// Two spirals with a neural ODE: trains the default `diffeoflow train --dataset spirals` model
// (linear embedding to 16 features, an MLP field 16+1 → 32 → 16 integrated by RK4 in 8 steps,
// linear read-out; Adam 0.03, cosine schedule, 100 epochs) and writes into the output folder
// (default ./spirals-output): model.h5, trajectories.h5 (every test point's path through depth)
// and summary.png (decision regions and the paths).
//
//   example_spirals [OUT_DIR]
#include <iostream>

#include "examples/example_util.h"
#include "flows/classifier.h"
#include "flows/datasets.h"
#include "flows/model_io.h"
#include "flows/summary_figure.h"
#include "flows/train.h"
#include "solvers/atomic_file.h"

int main(int argc, char** argv) {
  using namespace diffeoflow;
  using namespace diffeoflow::flows;
  const std::string out = argc > 1 ? argv[1] : "spirals-output";
  try {
    EnsureOutputDirectory(out, "OUT_DIR");
    GeneratorOptions g;
    g.samples = 2000;
    g.noise = 0.02;
    Dataset train, test;
    SplitTrainTest(TwoSpirals(g), 0.2, 2, &train, &test);

    Classifier model(examples::TwoDimensionalSpec(train));
    Vector theta = model.Initialize(1);

    TrainOptions o = examples::TwoDimensionalTraining(100, 1);
    o.progress = [](const EpochReport& r) {
      if (r.epoch % 10 == 0) {
        std::cout << "epoch " << r.epoch << "  loss " << r.train_loss << "  test accuracy "
                  << r.test_accuracy << "\n";
      }
    };
    const TrainSummary s = Train(model, theta, train, test, o);
    std::cout << s.BriefReport() << "\n";
    WriteModel(out + "/model.h5", model, theta, {{"dataset", "spirals"}});
    WriteTwoDimensionalSummary(AsPlaneClassifier(model, theta), test, out);
    std::cout << "wrote " << out << "/summary.png, trajectories.h5, model.h5\n";
  } catch (const std::exception& e) {
    std::cerr << "example_spirals: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
