// What the examples share: the 2-D classifier settings of `diffeoflow train` (apps/cmd_train.cc),
// writing a result table as Markdown and JSON, and the error handling around an example's body.
#pragma once

#include <algorithm>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

#include "flows/classifier.h"
#include "flows/datasets.h"
#include "flows/train.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"

namespace diffeoflow::examples {

// The model `diffeoflow train --model odenet` builds on a 2-D data set by default: a linear
// embedding to 16 features, field 16+1 → 32 → 16 (tanh), RK4 with 8 steps, discrete adjoint.
inline flows::ModelSpec TwoDimensionalSpec(const flows::Dataset& train,
                                           flows::ModelKind kind = flows::ModelKind::kOdeNet) {
  flows::ModelSpec spec;
  spec.kind = kind;
  spec.input_shape = train.sample_shape;
  spec.classes = train.classes;
  spec.width = 16;
  spec.hidden = 32;
  spec.solver.method = Method::kRk4;
  spec.solver.steps = 8;
  spec.gradient.mode = GradientMode::kDiscrete;
  return spec;
}

// Its optimiser on 2-D data: Adam, learning rate 0.03, batches of 128, cosine schedule.
inline flows::TrainOptions TwoDimensionalTraining(int epochs, unsigned seed) {
  flows::TrainOptions o;
  o.optimizer = Optimizer::kAdam;
  o.epochs = epochs;
  o.batch = 128;
  o.learning_rate = 0.03;
  o.seed = seed;
  return o;
}

// Worker threads for training: the machine's hardware threads (at least one).
inline int HardwareThreads() {
  return static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
}

// OUT_DIR/<stem>.md and OUT_DIR/<stem>.json, each written atomically.
inline void WriteTable(const std::string& out_dir, const std::string& stem,
                       const std::string& markdown, const std::string& json) {
  const std::filesystem::path dir(out_dir);
  WriteFileAtomically((dir / (stem + ".md")).string(), markdown);
  WriteFileAtomically((dir / (stem + ".json")).string(), json + "\n");
}

// Runs body() and turns what it throws into a message prefixed by the example's name and an
// exit status: 2 for bad input (InputError), 1 for anything else; body's own status otherwise.
template <typename Body>
int RunExample(const char* name, Body&& body) {
  try {
    return body();
  } catch (const InputError& e) {
    std::cerr << name << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace diffeoflow::examples
