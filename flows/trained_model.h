// Any classifier `diffeoflow train` writes (flows/model_io.h for the networks,
// flows/shooting_classifier.h for the shooting classifier), read back to classify new data.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flows/model_io.h"
#include "flows/own_data.h"
#include "flows/shooting_classifier.h"

namespace diffeoflow::flows {

struct TrainedModel {
  std::string kind;                       // odenet, anode, resnet, c2, mlp, shooting
  std::vector<std::int64_t> input_shape;  // of one sample: {D} or {channels, height, width}
  int classes = 0;
  DataRecord data;                        // source "" for files older than the record
  std::optional<ModelFile> network;       // set for every kind but shooting
  std::optional<ShootingClassifier> shooting;

  // Class probabilities (classes × N) of standardised inputs x (input size × N), `batch` samples at
  // a time.
  Matrix Probabilities(const Matrix& x, Index batch = 1024, int threads = 1) const;
};

// Throws InputError naming the file when it is missing, not HDF5, or not a classifier `train`
// writes (e.g. a checkpoint or a trajectory file).
TrainedModel ReadTrainedModel(const std::string& path);

}  // namespace diffeoflow::flows
