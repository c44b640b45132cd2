// Data sets for classifiers: seeded 2-D generators and MNIST-format (IDX) files.
//
// A data set holds N samples as the columns of a features × N matrix (one sample contiguous, the
// layout the networks take) with integer labels in [0, classes).
//
// Generators (all points in about [−1.5, 1.5]²; the same seed gives the same points):
//  - two spirals: arm c ∈ {0, 1}, s ~ U(0, 1), r = 0.15 + 0.85 s, φ = 2π·turns·s + cπ,
//    x = r (cos φ, sin φ) + N(0, noise² I);
//  - concentric circles (Dupont et al. 2019): class 0 uniform in the disc ‖x‖ ≤ 0.5, class 1 uniform
//    in the annulus 1 ≤ ‖x‖ ≤ 1.5 — no homeomorphism of the plane followed by a linear read-out
//    separates them, which is what augmented neural ODEs fix;
//  - two moons: class 0 on the upper half circle (cos φ, sin φ), class 1 on (1 − cos φ, ½ − sin φ),
//    φ ~ U(0, π), centred, plus noise.
// IDX (LeCun et al. 1998): big-endian magic 0x0000 ⟨type⟩ ⟨rank⟩, rank uint32 dimensions, then the
// row-major data; plain or gzip-compressed (read through zlib, which passes plain files through).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "solvers/dynamics.h"

namespace diffeoflow::flows {

struct Dataset {
  std::string name;
  Matrix features;                         // features × N
  std::vector<int> labels;                 // N labels in [0, classes)
  int classes = 0;
  std::vector<std::int64_t> sample_shape;  // e.g. {2} or {1, 28, 28} (channels, height, width)
  Eigen::Index size() const { return features.cols(); }
  Eigen::Index feature_count() const { return features.rows(); }
};

struct GeneratorOptions {
  int samples = 1000;     // total, split evenly between the classes
  double noise = 0.0;     // standard deviation of the added Gaussian noise
  double turns = 1.5;     // spirals only
  unsigned seed = 1;
};

Dataset TwoSpirals(const GeneratorOptions& options);
Dataset ConcentricCircles(const GeneratorOptions& options);
Dataset TwoMoons(const GeneratorOptions& options);
// The generator of that name: "spirals", "circles" or "moons"; InputError for another name.
Dataset GeneratePlaneDataset(const std::string& name, const GeneratorOptions& options);

// Shuffles (seeded) and splits off round(test_fraction · N) samples as the test set.
void SplitTrainTest(const Dataset& all, double test_fraction, unsigned seed, Dataset* train,
                    Dataset* test);
// The samples at `indices`, in that order.
Dataset Subset(const Dataset& data, const std::vector<Eigen::Index>& indices);

// An IDX array of unsigned bytes (type 0x08), the only type MNIST-format files use.
struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};
// Throws InputError naming the file when it is missing, truncated, longer than its header says, of
// another element type, or when its header is implausible.
IdxArray ReadIdx(const std::string& path);
// Writes atomically; a name ending in .gz is gzip-compressed.
void WriteIdx(const std::string& path, const IdxArray& array);

// Fashion-MNIST (Xiao et al. 2017) from `dir`: {train,t10k}-{images-idx3,labels-idx1}-ubyte, each
// plain or with .gz. Pixels are scaled to [0, 1]. max_samples > 0 keeps the first that many.
// The Debian package dataset-fashion-mnist installs the files in DefaultFashionMnistDir().
std::string DefaultFashionMnistDir();
Dataset LoadFashionMnist(const std::string& dir, bool train, Eigen::Index max_samples = 0);

}  // namespace diffeoflow::flows
