// `diffeoflow predict`: class probabilities of a trained classifier on new data, as
// ../shared/CLI.md specifies. The data are transformed with the standardisation stored in
// model.h5 (flows/own_data.h) before they reach the model, exactly as train transformed its own.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/command.h"
#include "flows/own_data.h"
#include "flows/trained_model.h"
#include "solvers/atomic_file.h"
#include "solvers/clock.h"
#include "solvers/errors.h"
#include "solvers/npy.h"

namespace {

using namespace diffeoflow;
using namespace diffeoflow::flows;
namespace fs = std::filesystem;

struct PredictFlags {
  std::string model, data, labels, out;
  long batch = 1024;
};

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int Run(const PredictFlags& f, const app::CommonFlags& common) {
  if (!EndsWith(f.out, ".npy")) throw InputError("--out: " + f.out + ": expected a file name ending in .npy");
  if (f.batch < 1) throw InputError("--batch must be >= 1");
  const fs::path out(f.out);
  if (!out.parent_path().empty() && !fs::is_directory(out.parent_path())) {
    throw InputError("--out: " + f.out + ": the folder " + out.parent_path().string() + " does not exist");
  }
  TrainedModel model;
  try {
    model = ReadTrainedModel(f.model);
  } catch (const InputError& e) {
    throw InputError(std::string("--model: ") + e.what());
  }
  OwnData own = ReadOwnData(f.data, "--data", f.labels, "--labels", "predict");
  Dataset& data = own.data;
  CheckSampleShape(data.sample_shape, model.input_shape, "--data", f.data);
  if (!f.labels.empty()) CheckLabelRange(data.labels, model.classes, "--labels", f.labels);
  if (model.data.source.empty() && !common.quiet) {
    std::cerr << "diffeoflow: " << f.model
              << " has no data record (written before model files kept one): the data are used "
                 "as given, without standardisation\n";
  }
  model.data.standardization.Apply(&data);

  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const int threads = common.threads > 0 ? common.threads : static_cast<int>(cores);
  const auto start = std::chrono::steady_clock::now();
  const Matrix p = model.Probabilities(data.features, f.batch, threads);
  const double seconds = SecondsSince(start);
  if (!p.allFinite()) throw NumericalError(f.model + ": the model gives non-finite probabilities");

  // Everything is checked: write P.npy, then P.json.
  WriteNpy(f.out, {static_cast<std::uint64_t>(p.cols()), static_cast<std::uint64_t>(p.rows())},
           Eigen::Map<const Eigen::VectorXd>(p.data(), p.size()), ElementType::kFloat32);
  const double rate = static_cast<double>(p.cols()) / std::max(seconds, 1e-9);
  if (!common.quiet) {
    std::fprintf(stderr, "%s: %ld samples, %d classes, %.3f s (%.0f samples/s)\n", f.out.c_str(),
                 static_cast<long>(p.cols()), model.classes, seconds, rate);
  }
  if (f.labels.empty()) return 0;

  const int C = model.classes;
  const auto classes = static_cast<std::size_t>(C);
  std::vector<std::vector<long>> confusion(classes, std::vector<long>(classes, 0));
  long correct = 0;
  for (Index i = 0; i < p.cols(); ++i) {
    Index predicted = 0;
    p.col(i).maxCoeff(&predicted);
    const int truth = data.labels[static_cast<std::size_t>(i)];
    ++confusion[static_cast<std::size_t>(truth)][static_cast<std::size_t>(predicted)];
    if (predicted == truth) ++correct;
  }
  const double accuracy = static_cast<double>(correct) / static_cast<double>(p.cols());
  nlohmann::ordered_json j;
  j["accuracy"] = accuracy;
  j["samples"] = p.cols();
  j["classes"] = C;
  j["model"] = model.kind;
  j["data"] = f.data;
  j["labels"] = f.labels;
  j["confusion_matrix"] = confusion;  // rows: true class, columns: predicted class
  j["wall_seconds"] = seconds;
  j["samples_per_second"] = rate;
  const std::string json = out.parent_path().empty()
                               ? out.stem().string() + ".json"
                               : (out.parent_path() / (out.stem().string() + ".json")).string();
  WriteFileAtomically(json, j.dump(2) + "\n");
  if (!common.quiet) {
    std::printf("accuracy %.4f (%ld of %ld)\nconfusion matrix (rows: true class, columns: predicted):\n",
                accuracy, correct, static_cast<long>(p.cols()));
    for (const std::vector<long>& row : confusion) {
      for (std::size_t c = 0; c < classes; ++c) std::printf("%s%ld", c ? " " : "", row[c]);
      std::printf("\n");
    }
  }
  return 0;
}

app::CommandRegistration registration{
    "predict", "Class probabilities of a trained classifier on .npy data (accuracy with --labels)",
    [](CLI::App& sub, const app::CommonFlags& common) -> std::function<int()> {
      auto f = std::make_shared<PredictFlags>();
      sub.add_option("--model", f->model, "DIR/model.h5 from train")->required();
      sub.add_option("--data", f->data,
                     ".npy of N x D features or N x H x W / N x C x H x W images, as trained on")
          ->required();
      sub.add_option("--out", f->out, "P.npy: N x classes probabilities (float32)")->required();
      sub.add_option("--labels", f->labels,
                     ".npy of N integer labels: accuracy and confusion matrix in P.json and on stdout");
      sub.add_option("--batch", f->batch, "Samples a forward pass")->capture_default_str();
      return [f, &common]() { return Run(*f, common); };
    }};

}  // namespace
