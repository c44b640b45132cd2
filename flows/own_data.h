// Classifiers on the user's own data, and what a model file remembers about the data it saw.
//
// Own data are NumPy .npy files (solvers/npy.h):
//  - features: N × D (a vector of D features a sample), or images N × H × W (one channel) or
//    N × C × H × W, of any float or integer dtype; every value finite, N ≥ 1;
//  - labels: N (or N × 1) integers of any integer dtype, in 0..C−1.
// Samples become the columns of Dataset::features in C order, so a sample's image is row-major
// with x fastest, the layout the convolutional ODE-Net takes.
//
// Standardisation x' = (x − offset_c) / scale_c acts per channel c: each feature of a vector, each
// channel of an image. Fitted on the training split only and stored in model.h5, so that predict
// and inspect transform new data exactly as train did:
//   "features"  vectors: offset = mean, scale = standard deviation (1 where it is 0);
//   "uint8"     8-bit images: offset 0, scale 255 (what the Fashion-MNIST loader does);
//   "none"      offset 0, scale 1 (other images, and the built-in data sets).
//
// DataRecord (model.h5 group /data, docs/flows.md "Models"): where the training data came from —
// a built-in generator with its settings, Fashion-MNIST's IDX files, or own .npy files with their
// names, shapes, dtypes and CRC-32 checksums — and the standardisation. A model file written
// before the record existed has no /data group: ReadDataRecord returns source = "".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flows/datasets.h"
#include "solvers/element_type.h"
#include "solvers/hdf5.h"

namespace diffeoflow::flows {

using Index = Eigen::Index;

struct Standardization {
  std::string mode = "none";  // "features", "uint8", "none"
  Vector offset, scale;       // one per channel (empty for "none")
  // Transforms data.features in place (sample_shape gives the channels).
  void Apply(Dataset* data) const;
};

// The standardisation train uses by default: "features" for vectors, "uint8" for images stored as
// uint8, "none" for other images.
Standardization FitStandardization(const Dataset& train, ElementType source_type);

struct DataFile {
  std::string role;                    // "train_data", "train_labels", "test_data", "test_labels"
  std::string path;                    // as given on the command line
  std::vector<std::uint64_t> shape;
  std::string dtype;                   // NumPy spelling, e.g. "float32"
  std::uint32_t crc32 = 0;             // of the whole file
};

struct DataRecord {
  std::string source;         // "generator", "fashion-mnist", "files"; "" unknown (an older file)
  std::string dataset;        // spirals, circles, moons, fashion-mnist, or "own"
  // Generator settings (source "generator"), and the split of own files without a test set.
  int samples = 0;
  double noise = 0.0;
  unsigned seed = 0;          // generator seed; train/test split uses seed + 1
  double test_fraction = 0.0; // 0: the test set came from its own files
  long max_train = 0, max_test = 0;   // fashion-mnist
  std::vector<DataFile> files;
  Standardization standardization;
};

void WriteDataRecord(h5::Writer& out, const DataRecord& record);
DataRecord ReadDataRecord(const h5::Reader& in);

// Own data read from .npy files: features (and labels when `labels_path` is not empty; labels are
// then checked to be integers ≥ 0, one a sample). `*file_records` receives what DataRecord keeps.
// Throws InputError naming the flag and the file for every bad input.
struct OwnData {
  Dataset data;            // classes = 1 + the largest label (0 without labels)
  ElementType source_type = ElementType::kFloat64;
  std::vector<DataFile> files;
};
OwnData ReadOwnData(const std::string& data_path, const std::string& data_flag,
                    const std::string& labels_path, const std::string& labels_flag,
                    const std::string& role);

// The training and test sets of a record, rebuilt as train built them: the generator with its
// settings and split, or the recorded .npy files (each checked against its CRC-32) with their
// split, standardised with the recorded standardisation. InputError naming the file when a
// recorded file is missing or has changed, and for Fashion-MNIST or a record without a source.
void RebuildSplit(const DataRecord& record, Dataset* train, Dataset* test);

// A sample shape in words for messages: "2 features", "1-channel 28x28 images".
std::string SampleShapeText(const std::vector<std::int64_t>& shape);

// Checks that samples of `sample_shape` fit a model trained on `model_shape`: the same number of
// features for vectors, the same channels and size for images. InputError naming `flag`.
void CheckSampleShape(const std::vector<std::int64_t>& sample_shape,
                      const std::vector<std::int64_t>& model_shape, const std::string& flag,
                      const std::string& path);

// Checks labels against a model's classes: InputError naming `flag` for one ≥ classes.
void CheckLabelRange(const std::vector<int>& labels, int classes, const std::string& flag,
                     const std::string& path);

// Column-wise softmax of logits (classes × N).
Matrix Softmax(const Matrix& logits);

}  // namespace diffeoflow::flows
