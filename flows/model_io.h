// Classifier model files (HDF5, readable by h5py). Schema (docs/flows.md, "Models (model.h5)"):
//   /theta                    (P)        float64, all parameters, the order the model uses
//   /weights/<block>/<i>/weight (out, in) float64, views of θ in PyTorch nn.Linear layout
//   /weights/<block>/<i>/bias   (out)
//   / attributes: format = "diffeoflow-classifier", version = 1, model, input_shape, classes,
//     width, hidden, augment, depth, activation, precision ("single" or "double": the arithmetic
//     of the convolutions; files without it were computed in double), solver, steps, rtol, atol,
//     gradient, parameters, and any extra string attributes given (e.g. dataset).
//   /data                     the data record (flows/own_data.h): where the training data came
//     from and the standardisation; files written before it existed have none.
#pragma once

#include <map>
#include <string>

#include "flows/classifier.h"
#include "flows/own_data.h"

namespace diffeoflow::flows {

struct ModelFile {
  ModelSpec spec;
  Vector theta;
  std::map<std::string, std::string> attributes;  // extra string attributes
  DataRecord data;                                 // source "" when the file has none
};

// Writes atomically.
void WriteModel(const std::string& path, const Classifier& model, const Vector& theta,
                const std::map<std::string, std::string>& attributes = {},
                const DataRecord& data = {});
// Throws InputError naming the file when it is missing, not HDF5, not a classifier, or θ does not
// match the architecture.
ModelFile ReadModel(const std::string& path);

}  // namespace diffeoflow::flows
