#include "flows/datasets.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numeric>

#include "solvers/atomic_file.h"
#include "solvers/errors.h"

namespace diffeoflow::flows {
namespace {

constexpr double kPi = 3.14159265358979323846;

Dataset Empty(const std::string& name, const GeneratorOptions& options) {
  if (options.samples < 2) {
    throw InputError(name + ": at least 2 samples are needed (got " +
                     std::to_string(options.samples) + ")");
  }
  if (!(options.noise >= 0.0)) throw InputError(name + ": noise must be ≥ 0");
  Dataset d;
  d.name = name;
  d.classes = 2;
  d.sample_shape = {2};
  d.features.resize(2, options.samples);
  d.labels.resize(static_cast<std::size_t>(options.samples));
  return d;
}

// Class of sample i: alternating, so every prefix is balanced.
int ClassOf(Eigen::Index i) { return static_cast<int>(i % 2); }

void AddNoise(Dataset& d, double noise, std::mt19937& rng) {
  if (noise == 0.0) return;
  std::normal_distribution<double> normal(0.0, noise);
  for (Eigen::Index i = 0; i < d.features.size(); ++i) d.features.data()[i] += normal(rng);
}

}  // namespace

Dataset TwoSpirals(const GeneratorOptions& options) {
  Dataset d = Empty("spirals", options);
  if (!(options.turns > 0.0)) throw InputError("spirals: turns must be > 0");
  std::mt19937 rng(options.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (Eigen::Index i = 0; i < d.size(); ++i) {
    const int c = ClassOf(i);
    const double s = u(rng);
    const double r = 0.15 + 0.85 * s;
    const double phi = 2.0 * kPi * options.turns * s + c * kPi;
    d.features(0, i) = r * std::cos(phi);
    d.features(1, i) = r * std::sin(phi);
    d.labels[static_cast<std::size_t>(i)] = c;
  }
  AddNoise(d, options.noise, rng);
  return d;
}

Dataset ConcentricCircles(const GeneratorOptions& options) {
  Dataset d = Empty("circles", options);
  std::mt19937 rng(options.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (Eigen::Index i = 0; i < d.size(); ++i) {
    const int c = ClassOf(i);
    // Uniform in area: r² uniform between the radii.
    const double r_in = c == 0 ? 0.0 : 1.0, r_out = c == 0 ? 0.5 : 1.5;
    const double r = std::sqrt(r_in * r_in + (r_out * r_out - r_in * r_in) * u(rng));
    const double phi = 2.0 * kPi * u(rng);
    d.features(0, i) = r * std::cos(phi);
    d.features(1, i) = r * std::sin(phi);
    d.labels[static_cast<std::size_t>(i)] = c;
  }
  AddNoise(d, options.noise, rng);
  return d;
}

Dataset TwoMoons(const GeneratorOptions& options) {
  Dataset d = Empty("moons", options);
  std::mt19937 rng(options.seed);
  std::uniform_real_distribution<double> u(0.0, kPi);
  for (Eigen::Index i = 0; i < d.size(); ++i) {
    const int c = ClassOf(i);
    const double phi = u(rng);
    const double x = c == 0 ? std::cos(phi) : 1.0 - std::cos(phi);
    const double y = c == 0 ? std::sin(phi) : 0.5 - std::sin(phi);
    d.features(0, i) = x - 0.5;
    d.features(1, i) = y - 0.25;
    d.labels[static_cast<std::size_t>(i)] = c;
  }
  AddNoise(d, options.noise, rng);
  return d;
}

Dataset GeneratePlaneDataset(const std::string& name, const GeneratorOptions& options) {
  if (name == "spirals") return TwoSpirals(options);
  if (name == "circles") return ConcentricCircles(options);
  if (name == "moons") return TwoMoons(options);
  throw InputError("unknown 2-D data set '" + name + "' (expected spirals, circles or moons)");
}

Dataset Subset(const Dataset& data, const std::vector<Eigen::Index>& indices) {
  Dataset out;
  out.name = data.name;
  out.classes = data.classes;
  out.sample_shape = data.sample_shape;
  out.features.resize(data.features.rows(), static_cast<Eigen::Index>(indices.size()));
  out.labels.resize(indices.size());
  for (std::size_t j = 0; j < indices.size(); ++j) {
    out.features.col(static_cast<Eigen::Index>(j)) = data.features.col(indices[j]);
    out.labels[j] = data.labels[static_cast<std::size_t>(indices[j])];
  }
  return out;
}

void SplitTrainTest(const Dataset& all, double test_fraction, unsigned seed, Dataset* train,
                    Dataset* test) {
  if (!(test_fraction > 0.0 && test_fraction < 1.0)) {
    throw InputError("test fraction must be in (0, 1)");
  }
  std::vector<Eigen::Index> order(static_cast<std::size_t>(all.size()));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  const auto n_test = static_cast<std::ptrdiff_t>(std::lround(test_fraction * all.size()));
  if (n_test < 1 || n_test >= all.size()) throw InputError("test split leaves an empty set");
  *test = Subset(all, std::vector<Eigen::Index>(order.begin(), order.begin() + n_test));
  *train = Subset(all, std::vector<Eigen::Index>(order.begin() + n_test, order.end()));
}

// ---- IDX ---------------------------------------------------------------------------------------

namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const {
    if (f != nullptr) gzclose(f);
  }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads exactly n bytes or throws.
void ReadExactly(gzFile file, void* out, std::size_t n, const std::string& path,
                 const std::string& what) {
  auto* bytes = static_cast<unsigned char*>(out);
  std::size_t done = 0;
  while (done < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
    const int got = gzread(file, bytes + done, chunk);
    if (got <= 0) {
      int err = 0;
      const char* message = gzerror(file, &err);
      throw InputError(path + ": truncated or unreadable IDX file while reading " + what +
                       (err != Z_OK && err != Z_BUF_ERROR ? std::string(" (") + message + ")" : ""));
    }
    done += static_cast<std::size_t>(got);
  }
}

}  // namespace

IdxArray ReadIdx(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw InputError(path + ": no such IDX file");
  }
  GzFile file(gzopen(path.c_str(), "rb"));
  if (!file) throw InputError(path + ": cannot open IDX file");
  unsigned char magic[4];
  ReadExactly(file.get(), magic, 4, path, "the magic number");
  if (magic[0] != 0 || magic[1] != 0) {
    throw InputError(path + ": not an IDX file (the magic number must start with two zero bytes)");
  }
  if (magic[2] != 0x08) {
    const char* hex = "0123456789abcdef";
    throw InputError(path + ": IDX element type 0x" + hex[magic[2] >> 4] + hex[magic[2] & 15] +
                     " is not supported (expected 0x08, unsigned bytes)");
  }
  const int rank = magic[3];
  if (rank < 1 || rank > 4) {
    throw InputError(path + ": IDX rank " + std::to_string(rank) + " (expected 1 to 4)");
  }
  IdxArray array;
  std::uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    unsigned char b[4];
    ReadExactly(file.get(), b, 4, path, "the dimensions");
    const std::uint32_t dim = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                              (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]};
    array.dims.push_back(dim);
    count *= dim;
    if (count > (std::uint64_t{1} << 34)) {
      throw InputError(path + ": implausible IDX dimensions (more than 2^34 elements)");
    }
  }
  // Grow the buffer as data arrives instead of trusting the header: a 35-byte file claiming
  // 6 GB of pixels (found by fuzzing) must fail as truncated, not allocate what it claims.
  constexpr std::uint64_t kChunk = std::uint64_t{1} << 20;
  while (array.data.size() < count) {
    const std::size_t offset = array.data.size();
    const std::size_t want = static_cast<std::size_t>(std::min(kChunk, count - offset));
    array.data.resize(offset + want);
    ReadExactly(file.get(), array.data.data() + offset, want, path, "the data");
  }
  unsigned char extra;
  if (gzread(file.get(), &extra, 1) > 0) {
    throw InputError(path + ": IDX file is longer than its header says");
  }
  return array;
}

void WriteIdx(const std::string& path, const IdxArray& array) {
  std::uint64_t count = 1;
  for (std::uint32_t d : array.dims) count *= d;
  if (array.dims.empty() || array.dims.size() > 4 || count != array.data.size()) {
    throw InputError(path + ": IDX array dimensions do not match its data");
  }
  std::string bytes = {0, 0, 0x08, static_cast<char>(array.dims.size())};
  for (std::uint32_t d : array.dims) {
    for (int shift : {24, 16, 8, 0}) bytes.push_back(static_cast<char>((d >> shift) & 0xff));
  }
  bytes.append(reinterpret_cast<const char*>(array.data.data()), array.data.size());
  const bool gz = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  if (!gz) {
    WriteFileAtomically(path, bytes);
    return;
  }
  const std::string temporary = TemporaryPathFor(path);
  {
    GzFile file(gzopen(temporary.c_str(), "wb"));
    if (!file) throw InputError(path + ": cannot write");
    if (gzwrite(file.get(), bytes.data(), static_cast<unsigned>(bytes.size())) !=
        static_cast<int>(bytes.size())) {
      throw InputError(path + ": write failed");
    }
    if (gzclose(file.release()) != Z_OK) throw InputError(path + ": write failed");
  }
  CommitFile(temporary, path);
}

std::string DefaultFashionMnistDir() { return "/usr/share/datasets/fashion-mnist"; }

Dataset LoadFashionMnist(const std::string& dir, bool train, Eigen::Index max_samples) {
  const std::string prefix = train ? "train" : "t10k";
  auto find = [&](const std::string& stem) {
    for (const std::string& name : {stem + ".gz", stem}) {
      const std::string path = (std::filesystem::path(dir) / name).string();
      if (std::filesystem::exists(path)) return path;
    }
    throw InputError("--data-dir " + dir + ": missing " + stem + "(.gz) (Fashion-MNIST IDX files)");
  };
  const std::string images_path = find(prefix + "-images-idx3-ubyte");
  const std::string labels_path = find(prefix + "-labels-idx1-ubyte");
  const IdxArray images = ReadIdx(images_path);
  const IdxArray labels = ReadIdx(labels_path);
  if (images.dims.size() != 3) throw InputError(images_path + ": expected a rank-3 image array");
  if (labels.dims.size() != 1) throw InputError(labels_path + ": expected a rank-1 label array");
  if (labels.dims[0] != images.dims[0]) {
    throw InputError(labels_path + ": " + std::to_string(labels.dims[0]) + " labels for " +
                     std::to_string(images.dims[0]) + " images in " + images_path);
  }
  Eigen::Index n = images.dims[0];
  if (max_samples > 0) n = std::min(n, max_samples);
  const Eigen::Index pixels = Eigen::Index{images.dims[1]} * images.dims[2];
  Dataset d;
  d.name = "fashion-mnist";
  d.classes = 10;
  d.sample_shape = {1, images.dims[1], images.dims[2]};
  d.features.resize(pixels, n);
  d.labels.resize(static_cast<std::size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) {
    for (Eigen::Index p = 0; p < pixels; ++p) {
      d.features(p, i) = images.data[static_cast<std::size_t>(i * pixels + p)] / 255.0;
    }
    const int label = labels.data[static_cast<std::size_t>(i)];
    if (label > 9) {
      throw InputError(labels_path + ": label " + std::to_string(label) + " of sample " +
                       std::to_string(i) + " is not in 0..9");
    }
    d.labels[static_cast<std::size_t>(i)] = label;
  }
  return d;
}

}  // namespace diffeoflow::flows
