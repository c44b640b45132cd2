// `diffeoflow train` (../shared/CLI.md): its flags and its run, shared by the command
// (apps/cmd_train.cc) and the Python module's train() (python/), which parses keyword arguments
// through the same flags so that names, defaults and messages are the command line's.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/command.h"
#include "solvers/workers.h"

namespace diffeoflow::app {

struct TrainFlags {
  std::string dataset, data_dir, out;
  std::string train_data, train_labels, test_data, test_labels;
  std::string model = "odenet", solver = "rk4", gradient = "discrete", optimizer = "adam";
  std::string activation = "tanh", schedule = "cosine", precision = "single", flip = "off";
  int channels = -1, hidden = -1, augment = -1, steps = 8;
  double rtol = 1e-5, atol = 1e-7;
  double kinetic_energy = 0.0;  // λ₁ of RNODE's kinetic regulariser
  double jacobian_norm = 0.0;   // λ₂ of RNODE's Jacobian-norm regulariser
  int epochs = -1, batch = 128;
  int shift = 0;  // pixels of the random translation of training images
  double label_smoothing = -1.0;  // < 0: the model's default (0.1 for the image odenet, else 0)
  std::string readout;  // empty: the model's default (flatten for the image odenet, else pool)
  double time_budget = 0.0, lr = -1.0, momentum = 0.9, weight_decay = 0.0;
  int samples = 2000;
  double noise = 0.02, test_fraction = 0.2;
  long max_train = 0, max_test = 0;
  bool resume = false;
  // Options whose default depends on other flags: given explicitly, they must be valid.
  CLI::Option *channels_option = nullptr, *hidden_option = nullptr, *augment_option = nullptr,
              *epochs_option = nullptr, *lr_option = nullptr, *samples_option = nullptr,
              *noise_option = nullptr, *test_fraction_option = nullptr;
};

// Adds train's flags (bound to `f`) to `sub`.
void AddTrainFlags(CLI::App& sub, TrainFlags& f);

// Trains as the flags say and writes f.out (model.h5, metrics.json, test_probabilities.npy, and
// for points in the plane trajectories.h5 and summary.png). Returns the exit status: 0, or
// 128 + signal when SIGINT/SIGTERM stopped it. InputError for bad flags or data. With `log` set
// (and not --quiet), the per-epoch lines and the closing report go to it instead of the terminal.
// With several `workers` (the command under mpirun) every batch is split over them
// (flows/train.h); rank 0 alone prints progress and writes the files.
int RunTrain(const TrainFlags& f, const CommonFlags& common,
             const std::function<void(const std::string&)>& log = {},
             Workers& workers = Serial());

}  // namespace diffeoflow::app
