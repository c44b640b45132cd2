// `diffeoflow train`: a neural-ODE (or discrete-depth) classifier, as ../shared/CLI.md specifies.
// Its flags and run (apps/train_command.h), shared by the command (cmd_train.cc) and the Python
// module's train().
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/train_command.h"
#include "flows/classifier.h"
#include "flows/datasets.h"
#include "flows/model_io.h"
#include "flows/own_data.h"
#include "flows/shooting_classifier.h"
#include "flows/summary_figure.h"
#include "flows/train.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/interrupt.h"
#include "solvers/npy.h"

namespace {

using namespace diffeoflow;
using namespace diffeoflow::flows;
using diffeoflow::app::TrainFlags;


// InputError naming `flag` unless an explicitly given value satisfies `ok`.
void CheckGiven(const CLI::Option* option, bool ok, const std::string& expected) {
  if (option != nullptr && option->count() > 0 && !ok) {
    throw InputError(option->get_name() + " must be " + expected + ", got '" +
                     option->as<std::string>() + "'");
  }
}

// Exit status of an interrupted run: 128 + the signal (130 for SIGINT).
int Interrupted(const std::string& what) {
  std::cerr << "diffeoflow: interrupted; no results written" << what << "\n";
  const int signal = InterruptSignal();
  return 128 + (signal > 0 ? signal : SIGINT);
}

// The training and test sets and what model.h5 records about them: a built-in generator,
// Fashion-MNIST, or own .npy files (flows/own_data.h), standardised on the training split.
struct TrainingData {
  Dataset train, test;
  DataRecord record;
};

TrainingData LoadTrainingData(const TrainFlags& f, unsigned seed) {
  TrainingData d;
  DataRecord& r = d.record;
  const bool own = !f.train_data.empty();
  const auto check_fraction = [&] {
    if (!(f.test_fraction > 0.0 && f.test_fraction < 1.0)) {
      throw InputError("--test-fraction must be in (0, 1)");
    }
  };
  if (!own) {
    if (f.dataset.empty()) {
      throw InputError("train: give --dataset NAME or --train-data X.npy --train-labels y.npy");
    }
    for (const auto& [value, flag] : {std::pair{f.train_labels, "--train-labels"},
                                      {f.test_data, "--test-data"}, {f.test_labels, "--test-labels"}}) {
      if (!value.empty()) throw InputError(std::string(flag) + " needs --train-data (own data), not --dataset");
    }
  }
  if (own) {
    if (!f.dataset.empty()) throw InputError("--dataset and --train-data exclude each other");
    if (!f.data_dir.empty()) throw InputError("--data-dir is only used with --dataset fashion-mnist");
    if (f.train_labels.empty()) throw InputError("--train-data needs --train-labels y.npy");
    if (f.test_data.empty() != f.test_labels.empty()) {
      throw InputError("--test-data and --test-labels go together");
    }
    for (const CLI::Option* o : {f.samples_option, f.noise_option}) {
      if (o->count() > 0) {
        throw InputError(o->get_name() + " is for the built-in 2-D data sets, not --train-data");
      }
    }
    if (!f.test_data.empty() && f.test_fraction_option->count() > 0) {
      throw InputError("--test-fraction and --test-data exclude each other");
    }
    OwnData train = ReadOwnData(f.train_data, "--train-data", f.train_labels, "--train-labels", "train");
    int classes = train.data.classes;
    r.files = train.files;
    r.source = "files";
    r.dataset = "own";
    r.seed = seed;
    if (!f.test_data.empty()) {
      OwnData test = ReadOwnData(f.test_data, "--test-data", f.test_labels, "--test-labels", "test");
      CheckSampleShape(test.data.sample_shape, train.data.sample_shape, "--test-data", f.test_data);
      r.files.insert(r.files.end(), test.files.begin(), test.files.end());
      classes = std::max(classes, test.data.classes);
      d.train = std::move(train.data);
      d.test = std::move(test.data);
    } else {
      check_fraction();
      r.test_fraction = f.test_fraction;
      SplitTrainTest(train.data, f.test_fraction, seed + 1, &d.train, &d.test);
    }
    if (classes < 2) {
      throw InputError("--train-labels: " + f.train_labels +
                       ": all labels are 0; expected at least 2 classes");
    }
    d.train.classes = d.test.classes = classes;
    r.standardization = FitStandardization(d.train, train.source_type);
    r.standardization.Apply(&d.train);
    r.standardization.Apply(&d.test);
    return d;
  }
  r.dataset = f.dataset;
  r.seed = seed;
  if (f.dataset == "fashion-mnist") {
    const std::string dir = f.data_dir.empty() ? DefaultFashionMnistDir() : f.data_dir;
    r.source = "fashion-mnist";
    r.max_train = f.max_train;
    r.max_test = f.max_test;
    d.train = LoadFashionMnist(dir, true, f.max_train);
    d.test = LoadFashionMnist(dir, false, f.max_test);
    return d;
  }
  if (!f.data_dir.empty()) throw InputError("--data-dir is only used with --dataset fashion-mnist");
  check_fraction();
  r.source = "generator";
  r.samples = f.samples;
  r.noise = f.noise;
  r.test_fraction = f.test_fraction;
  RebuildSplit(r, &d.train, &d.test);
  return d;
}

// Class probabilities of the test set as the training run evaluates them (float32, N × C).
void WriteTestProbabilities(const std::string& dir, const Matrix& probabilities) {
  WriteNpy((std::filesystem::path(dir) / "test_probabilities.npy").string(),
           {static_cast<std::uint64_t>(probabilities.cols()),
            static_cast<std::uint64_t>(probabilities.rows())},
           Eigen::Map<const Eigen::VectorXd>(probabilities.data(), probabilities.size()),
           ElementType::kFloat32);
}


}  // namespace

namespace diffeoflow::app {

using namespace diffeoflow::flows;

void AddTrainFlags(CLI::App& sub, TrainFlags& f) {
  sub.add_option("--dataset", f.dataset, "spirals|circles|moons|fashion-mnist (or own data: --train-data)")
      ->check(CLI::IsMember({"spirals", "circles", "moons", "fashion-mnist"}));
  sub.add_option("--train-data", f.train_data,
                 "Own data: .npy of N x D features or N x H x W / N x C x H x W images");
  sub.add_option("--train-labels", f.train_labels, "Own data: .npy of N integer labels 0..C-1");
  sub.add_option("--test-data", f.test_data, "Own data: test features (default: --test-fraction of --train-data)");
  sub.add_option("--test-labels", f.test_labels, "Own data: test labels");
  sub.add_option("--data-dir", f.data_dir,
                 "Fashion-MNIST IDX files (default " + DefaultFashionMnistDir() + ")");
  sub.add_option("--out", f.out, "Output folder")->required();
  sub.add_option("--model", f.model, "odenet|resnet|c2|anode|mlp|shooting")->capture_default_str();
  f.channels_option = sub.add_option("--channels", f.channels,
                 "Width of the hidden flow (odenet: embedding width, 0 = none; default 16 "
                 "for 2-D data, 32 for images)");
  f.hidden_option = sub.add_option("--hidden", f.hidden, "Hidden units of each field/block (default 32; 64)");
  f.augment_option = sub.add_option("--augment", f.augment, "anode: extra zero dimensions (default 3)");
  sub.add_option("--solver", f.solver, "euler|midpoint|rk4|dopri5")->capture_default_str();
  sub.add_option("--steps", f.steps, "Fixed steps of the ODE block / layers of resnet, c2, mlp")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub.add_option("--rtol", f.rtol, "Relative tolerance (dopri5)")->capture_default_str();
  sub.add_option("--atol", f.atol, "Absolute tolerance (dopri5)")->capture_default_str();
  sub.add_option("--gradient", f.gradient, "discrete|backsolve|checkpointed")
      ->capture_default_str();
  sub.add_option("--kinetic-energy", f.kinetic_energy,
                 "odenet, anode: add λ₁ × the mean over the batch of ∫‖f‖² dt to the loss (RNODE)")
      ->capture_default_str();
  sub.add_option("--jacobian-norm", f.jacobian_norm,
                 "odenet, anode: add λ₂ × the mean over the batch of "
                 "∫‖εᵀ∂f/∂x‖² dt (RNODE, a Rademacher ε per batch)")
      ->capture_default_str();
  f.epochs_option = sub.add_option("--epochs", f.epochs,
                                   "Epochs (default 100 for 2-D data, 10 for images; with "
                                   "--time-budget and no --epochs, as many as the budget allows)");
  sub.add_option("--time-budget", f.time_budget, "Stop training after this many seconds")
      ->check(CLI::NonNegativeNumber);
  sub.add_option("--batch", f.batch, "Mini-batch size")->check(CLI::PositiveNumber)
      ->capture_default_str();
  f.lr_option = sub.add_option("--lr", f.lr, "Learning rate (default adam 0.03 on 2-D data, 0.02 for the image odenet, 0.002 for other image models; sgd 0.05)");
  sub.add_option("--optimizer", f.optimizer, "adam|sgd|lbfgs")->capture_default_str();
  sub.add_option("--momentum", f.momentum, "SGD momentum")->capture_default_str();
  sub.add_option("--weight-decay", f.weight_decay, "L2 weight decay")->capture_default_str();
  sub.add_option("--schedule", f.schedule, "cosine|constant")->capture_default_str();
  sub.add_option("--flip", f.flip,
                 "on: mirror each training image left-right with probability 1/2, anew every "
                 "epoch (images whose mirror is the same class, e.g. fashion-mnist's garments)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  sub.add_option("--shift", f.shift,
                 "Move each training image by up to N pixels in each direction, drawn anew every "
                 "epoch, filling with 0 (0: off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub.add_option("--label-smoothing", f.label_smoothing,
                 "Train towards (1 - e) onehot + e / classes instead of onehot (default 0.1 for "
                 "the image odenet, 0 otherwise; 0: off)")
      ->check(CLI::NonNegativeNumber);
  sub.add_option("--readout", f.readout,
                 "Image odenet: the linear read-out sees every feature of the grid (flatten, the "
                 "default) or each channel's mean over it (pool, Chen et al.'s)")
      ->check(CLI::IsMember({"pool", "flatten"}));
  sub.add_option("--precision", f.precision,
                 "Arithmetic of the convolutions (image odenet): single|double")
      ->check(CLI::IsMember({"single", "double"}))
      ->capture_default_str();
  sub.add_option("--activation", f.activation, "tanh|relu|softplus|sigmoid")
      ->capture_default_str();
  f.samples_option = sub.add_option("--samples", f.samples, "2-D data sets: number of points")
      ->check(CLI::PositiveNumber)->capture_default_str();
  f.noise_option = sub.add_option("--noise", f.noise, "2-D data sets: Gaussian noise")->capture_default_str();
  f.test_fraction_option = sub.add_option("--test-fraction", f.test_fraction,
                 "2-D data sets, and --train-data without --test-data: test share")
      ->capture_default_str();
  sub.add_option("--max-train", f.max_train, "Fashion-MNIST: keep the first N training images");
  sub.add_option("--max-test", f.max_test, "Fashion-MNIST: keep the first N test images");
  sub.add_flag("--resume", f.resume, "Continue from DIR/checkpoint.h5 when it exists");
}

int RunTrain(const TrainFlags& f, const CommonFlags& common,
             const std::function<void(const std::string&)>& log, Workers& workers) {
  CheckGiven(f.channels_option, f.channels >= 0, ">= 0");
  CheckGiven(f.hidden_option, f.hidden > 0, ">= 1");
  CheckGiven(f.augment_option, f.augment >= 0, ">= 0");
  CheckGiven(f.epochs_option, f.epochs > 0, ">= 1");
  CheckGiven(f.lr_option, f.lr > 0 && std::isfinite(f.lr), "a finite number > 0");
  if (!(f.noise >= 0) || !std::isfinite(f.noise)) throw InputError("--noise must be a finite number >= 0");
  if (!(f.rtol > 0) || !(f.atol > 0)) throw InputError("--rtol and --atol must be > 0");
  if (!(f.kinetic_energy >= 0) || !std::isfinite(f.kinetic_energy)) {
    throw InputError("--kinetic-energy must be a finite number >= 0");
  }
  if (f.kinetic_energy > 0 && f.model != "odenet" && f.model != "anode") {
    throw InputError("--kinetic-energy needs --model odenet or anode (a flow), got " + f.model);
  }
  if (!(f.jacobian_norm >= 0) || !std::isfinite(f.jacobian_norm)) {
    throw InputError("--jacobian-norm must be a finite number >= 0");
  }
  if (f.jacobian_norm > 0 && f.model != "odenet" && f.model != "anode") {
    throw InputError("--jacobian-norm needs --model odenet or anode (a flow), got " + f.model);
  }
  if (f.max_train < 0 || f.max_test < 0) throw InputError("--max-train and --max-test must be >= 0");
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const int threads = common.threads > 0 ? common.threads : static_cast<int>(cores);

  if (f.model == "shooting" && f.dataset == "fashion-mnist") {
    throw InputError("--model shooting is for points in the plane (2 features a sample), not images");
  }
  TrainingData data = LoadTrainingData(f, common.seed);
  const Dataset& train = data.train;
  const Dataset& test = data.test;
  // Defaults follow the data: images (the convolutional ODE-Net's) or feature vectors (the 2-D
  // data sets'); points in the plane also get trajectories.h5 and summary.png.
  const bool two_d = train.sample_shape.size() != 3;
  const bool plane = train.sample_shape == std::vector<std::int64_t>{2};
  EnsureOutputDirectory(f.out, "--out");

  if (f.model == "shooting") {
    // A landmark-type geodesic carries the points (flows/shooting_classifier.h): only the
    // initial momenta and the read-out are trained, by full-batch optimisation.
    if (!plane) {
      throw InputError("--model shooting is for points in the plane (2 features a sample), not " +
                       std::to_string(train.feature_count()) + " features");
    }
    if (f.label_smoothing > 0.0 || f.shift != 0 || f.flip == "on") {
      throw InputError("--model shooting trains its own loss on points: --label-smoothing, "
                       "--shift and --flip apply to the other models");
    }
    if (workers.count() > 1) {
      throw InputError("--model shooting (full batch) runs on one process only, not under mpirun "
                       "with " + std::to_string(workers.count()) + " ranks");
    }
    ShootingClassifierOptions so;
    if (f.epochs > 0) so.iterations = f.epochs;
    so.max_seconds = f.time_budget;
    so.seed = common.seed;
    ShootingClassifier shooting;
    InstallInterruptHandler();
    const ShootingClassifierSummary s = TrainShootingClassifier(train, test, so, &shooting);
    if (s.termination_type == Termination::kInterrupted) {
      return Interrupted(" (--model shooting keeps no checkpoint)");
    }
    WriteShootingClassifier((std::filesystem::path(f.out) / "model.h5").string(), shooting,
                            data.record);
    nlohmann::json j = ShootingMetricsJson(s, shooting);
    j["dataset"] = train.name;
    WriteTestProbabilities(f.out, Softmax(shooting.Logits(test.features)));
    WriteTwoDimensionalSummary(AsPlaneClassifier(shooting), test, f.out);
    WriteFileAtomically((std::filesystem::path(f.out) / "metrics.json").string(), j.dump(2) + "\n");
    if (!common.quiet) {
      std::ostringstream line;
      line << "shooting: test accuracy " << j["test_accuracy"].get<double>() << ", "
           << j["parameters"] << " parameters, " << j["wall_seconds"].get<double>() << " s";
      if (log) {
        log(line.str());
      } else {
        std::cerr << line.str() << "\n";
      }
    }
    return 0;
  }
  ModelSpec spec;
  spec.kind = ParseModelKind(f.model, "--model");
  spec.input_shape = train.sample_shape;
  spec.classes = train.classes;
  spec.width = f.channels >= 0 ? f.channels : (two_d ? 16 : 32);
  spec.hidden = f.hidden > 0 ? f.hidden : (two_d ? 32 : 64);
  spec.augment = f.augment >= 0 ? f.augment : (spec.kind == ModelKind::kAnode ? 3 : 0);
  if (spec.augment > 0 && spec.kind != ModelKind::kAnode) {
    throw InputError("--augment applies to --model anode only");
  }
  spec.depth = f.steps;
  spec.activation = ParseActivation(f.activation, "--activation");
  spec.precision = ParsePrecision(f.precision, "--precision");
  // The image ODE-Net pooled each channel before its read-out (as Chen et al. and torchdiffeq's
  // example do) until the fourteenth session. Reading the whole 7 × 7 grid out gave 91.74–91.95 %
  // over five seeds (mean 91.82 %) where the pool gave 90.57–91.32 % (mean 90.99 % over ten runs
  // of the same seeds), at the same speed on fashion-mnist at 480 s (docs/flows.md, "A read-out
  // that sees the grid").
  spec.readout = !f.readout.empty()     ? ParseReadout(f.readout, "--readout")
                 : spec.convolutional() ? Readout::kFlatten
                                        : Readout::kPool;
  spec.solver.method = ParseMethod(f.solver, "--solver");
  spec.solver.steps = f.steps;
  spec.solver.rtol = f.rtol;
  spec.solver.atol = f.atol;
  spec.gradient.mode = ParseGradientMode(f.gradient, "--gradient");
  spec.kinetic_energy = f.kinetic_energy;
  spec.jacobian_norm = f.jacobian_norm;
  Classifier model(spec, threads);
  Vector theta = model.Initialize(common.seed);

  TrainOptions o;
  const std::string opt = f.optimizer;
  if (opt == "adam") {
    o.optimizer = Optimizer::kAdam;
  } else if (opt == "sgd") {
    o.optimizer = Optimizer::kGradientDescent;
  } else if (opt == "lbfgs") {
    o.optimizer = Optimizer::kLbfgs;
  } else {
    throw InputError("--optimizer: unknown optimizer '" + opt + "' (expected adam, sgd or lbfgs)");
  }
  // A budget without --epochs is the length of the run: train until it is spent (the cosine
  // schedule then follows the share of the budget alone).
  const bool budget_decides = f.epochs <= 0 && f.time_budget > 0;
  o.epochs = f.epochs > 0      ? f.epochs
             : budget_decides ? std::numeric_limits<int>::max()
             : two_d          ? 100
                              : 10;
  o.batch = f.batch;
  // Adam on the image ODE-Net: 0.02 learned fastest within a time budget (docs/flows.md).
  o.learning_rate = f.lr > 0                ? f.lr
                    : opt == "sgd"          ? 0.05
                    : opt == "lbfgs"        ? 1.0
                    : two_d                 ? 0.03
                    : spec.convolutional()  ? 0.02
                                            : 2e-3;
  o.momentum = f.momentum;
  o.weight_decay = f.weight_decay;
  if (f.schedule == "cosine") {
    o.schedule = LearningRateSchedule::kCosine;
  } else if (f.schedule == "constant") {
    o.schedule = LearningRateSchedule::kConstant;
  } else {
    throw InputError("--schedule: expected cosine or constant, got '" + f.schedule + "'");
  }
  o.horizontal_flip = f.flip == "on";
  o.shift = f.shift;
  // The image ODE-Net overfits within a budget (96 % train against 90.7 % test accuracy on
  // fashion-mnist at 480 s); smoothing by 0.1 gave 90.57–91.32 % (mean 90.99 % over ten runs)
  // where 0 gave 90.7–90.9 % (docs/flows.md, "Label smoothing and shifts" and "Six more
  // levers"). These figures are the pooled read-out's; it was kept for the whole grid's, which
  // fits harder (98 % train), without a new sweep.
  o.label_smoothing = f.label_smoothing >= 0.0  ? f.label_smoothing
                      : spec.convolutional()    ? 0.1
                                                : 0.0;
  o.time_budget_seconds = f.time_budget;
  o.seed = common.seed;
  o.checkpoint = (std::filesystem::path(f.out) / "checkpoint.h5").string();
  o.resume = f.resume;
  o.workers = &workers;
  const bool root = workers.rank() == 0;
  // On a terminal one line rewritten after every epoch; in a log (not a terminal) one line per
  // epoch, so that batch jobs show how training went; nothing with --quiet.
  // With a `log` sink, one line an epoch to it.
  const bool progress = root && !log && common.ShowProgress(),
             log_lines = root && !common.quiet && !progress;
  o.progress = [&](const EpochReport& r) {
    if (!progress && !log_lines) return;
    char line[256];
    const std::string of = budget_decides ? "" : "/" + std::to_string(o.epochs);
    std::snprintf(line, sizeof(line),
                  "epoch %d%s  loss %.4f  train acc %.4f  test acc %.4f  NFE %.0f+%.0f  "
                  "%.0f samples/s  %.1f s",
                  r.epoch, of.c_str(), r.train_loss, r.train_accuracy, r.test_accuracy,
                  r.nfe_forward, r.nfe_backward, r.samples_per_second, r.elapsed_seconds);
    if (log) {
      log(line);
      return;
    }
    std::fprintf(stderr, "%s%s%s", progress ? "\r" : "", line, progress ? "   " : "\n");
    std::fflush(stderr);
  };

  o.progress = WithTestSignal(std::move(o.progress));
  InstallInterruptHandler();
  const TrainSummary s = Train(model, theta, train, test, o);
  if (progress) std::fprintf(stderr, "\n");
  if (s.interrupted && !root) return 128 + (InterruptSignal() > 0 ? InterruptSignal() : SIGINT);
  if (s.interrupted) {
    return Interrupted(o.optimizer == Optimizer::kLbfgs
                           ? std::string(" (--optimizer lbfgs keeps no checkpoint)")
                           : "; progress kept in " + o.checkpoint +
                                 " (rerun the same command with --resume to continue)");
  }

  if (!root) return 0;  // rank 0 writes the shared outputs
  const std::map<std::string, std::string> attributes = {{"dataset", train.name}};
  WriteModel((std::filesystem::path(f.out) / "model.h5").string(), model, theta, attributes,
             data.record);

  nlohmann::ordered_json j;
  j["train_accuracy"] = s.train_accuracy;
  j["test_accuracy"] = s.test_accuracy;
  j["epochs"] = s.epochs;
  j["samples_per_second"] = s.samples_per_second;
  j["nfe_forward"] = s.nfe_forward;
  j["nfe_backward"] = s.nfe_backward;
  j["wall_seconds"] = s.wall_seconds;
  j["parameters"] = s.parameters;
  j["test_loss"] = s.test_loss;
  j["model"] = ModelKindName(spec.kind);
  j["dataset"] = train.name;
  j["train_samples"] = train.size();
  j["test_samples"] = test.size();
  j["solver"] = MethodName(spec.solver.method);
  j["steps"] = spec.solver.steps;
  j["gradient"] = GradientModeName(spec.gradient.mode);
  j["kinetic_energy"] = spec.kinetic_energy;
  j["jacobian_norm"] = spec.jacobian_norm;
  if (spec.convolutional()) {
    j["precision"] = PrecisionName(spec.precision);
    j["readout"] = ReadoutName(spec.readout);
  }
  j["optimizer"] = opt;
  j["horizontal_flip"] = o.horizontal_flip;
  j["shift"] = o.shift;
  j["label_smoothing"] = o.label_smoothing;
  j["termination"] = s.termination;
  j["resumed_from_epoch"] = s.start_epoch;
  j["ranks"] = workers.count();
  nlohmann::ordered_json history = nlohmann::json::array();
  for (const EpochReport& r : s.history) {
    history.push_back({{"epoch", r.epoch},
                       {"train_loss", r.train_loss},
                       {"test_accuracy", r.test_accuracy},
                       {"nfe_forward", r.nfe_forward},
                       {"nfe_backward", r.nfe_backward},
                       {"elapsed_seconds", r.elapsed_seconds}});
  }
  j["history"] = history;
  WriteFileAtomically((std::filesystem::path(f.out) / "metrics.json").string(), j.dump(2) + "\n");

  WriteTestProbabilities(f.out,
                         Softmax(model.Logits(theta, test.features, o.EvaluationBatch(model))));
  if (plane) WriteTwoDimensionalSummary(AsPlaneClassifier(model, theta), test, f.out);
  if (!common.quiet) {
    if (log) {
      log(s.BriefReport());
    } else {
      std::cout << s.BriefReport() << std::endl;
    }
  }
  return 0;
}

}  // namespace diffeoflow::app
