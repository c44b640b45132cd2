#include "flows/own_data.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "solvers/errors.h"
#include "solvers/npy.h"
#include "solvers/read_file.h"

namespace diffeoflow::flows {
namespace {

constexpr const char* kGroup = "data";

std::string ShapeText(const std::vector<std::uint64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

std::uint32_t FileCrc32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize got = in.gcount();
    if (got > 0) crc = crc32(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<uInt>(got));
  }
  return static_cast<std::uint32_t>(crc);
}

// The channels of a sample shape and the values a channel holds.
std::pair<Index, Index> Channels(const std::vector<std::int64_t>& sample_shape, Index features) {
  if (sample_shape.size() == 3) return {sample_shape[0], features / std::max<Index>(sample_shape[0], 1)};
  return {features, 1};
}

}  // namespace

void Standardization::Apply(Dataset* data) const {
  if (offset.size() == 0) return;
  const auto [channels, per_channel] = Channels(data->sample_shape, data->feature_count());
  if (channels != offset.size()) {
    throw InputError("standardisation has " + std::to_string(offset.size()) + " channels, the data " +
                     std::to_string(channels));
  }
  for (Index c = 0; c < channels; ++c) {
    data->features.middleRows(c * per_channel, per_channel).array() -= offset[c];
    data->features.middleRows(c * per_channel, per_channel).array() /= scale[c];
  }
}

Standardization FitStandardization(const Dataset& train, ElementType source_type) {
  Standardization s;
  const bool images = train.sample_shape.size() == 3;
  const auto [channels, per_channel] = Channels(train.sample_shape, train.feature_count());
  if (images && source_type == ElementType::kUint8) {
    s.mode = "uint8";
    s.offset = Vector::Zero(channels);
    s.scale = Vector::Constant(channels, 255.0);
  } else if (!images) {
    s.mode = "features";
    const auto n = static_cast<double>(train.size());
    s.offset = train.features.rowwise().mean();
    s.scale = ((train.features.colwise() - s.offset).array().square().rowwise().sum() / n).sqrt();
    for (Index c = 0; c < s.scale.size(); ++c) {
      if (!(s.scale[c] > 0.0)) s.scale[c] = 1.0;
    }
  }
  (void)per_channel;
  return s;
}

void WriteDataRecord(h5::Writer& out, const DataRecord& r) {
  out.CreateGroup(kGroup);
  out.SetAttribute(kGroup, "source", r.source);
  out.SetAttribute(kGroup, "dataset", r.dataset);
  out.SetAttribute(kGroup, "samples", std::int64_t{r.samples});
  out.SetAttribute(kGroup, "noise", r.noise);
  out.SetAttribute(kGroup, "seed", static_cast<std::int64_t>(r.seed));
  out.SetAttribute(kGroup, "test_fraction", r.test_fraction);
  out.SetAttribute(kGroup, "max_train", static_cast<std::int64_t>(r.max_train));
  out.SetAttribute(kGroup, "max_test", static_cast<std::int64_t>(r.max_test));
  out.SetAttribute(kGroup, "standardization", r.standardization.mode);
  if (r.standardization.offset.size() > 0) {
    const auto n = static_cast<std::uint64_t>(r.standardization.offset.size());
    out.WriteDoubles(std::string(kGroup) + "/offset", r.standardization.offset.data(), {n});
    out.WriteDoubles(std::string(kGroup) + "/scale", r.standardization.scale.data(), {n});
  }
  for (const DataFile& f : r.files) {
    const std::string group = std::string(kGroup) + "/" + f.role;
    out.CreateGroup(group);
    out.SetAttribute(group, "path", f.path);
    out.SetAttribute(group, "shape", std::vector<double>(f.shape.begin(), f.shape.end()));
    out.SetAttribute(group, "dtype", f.dtype);
    out.SetAttribute(group, "crc32", static_cast<std::int64_t>(f.crc32));
  }
}

DataRecord ReadDataRecord(const h5::Reader& in) {
  DataRecord r;
  if (!in.Has(kGroup)) return r;
  r.source = in.StringAttribute(kGroup, "source");
  r.dataset = in.StringAttribute(kGroup, "dataset");
  r.samples = static_cast<int>(in.IntAttribute(kGroup, "samples"));
  r.noise = in.DoubleAttribute(kGroup, "noise");
  r.seed = static_cast<unsigned>(in.IntAttribute(kGroup, "seed"));
  r.test_fraction = in.DoubleAttribute(kGroup, "test_fraction");
  r.max_train = static_cast<long>(in.IntAttribute(kGroup, "max_train"));
  r.max_test = static_cast<long>(in.IntAttribute(kGroup, "max_test"));
  r.standardization.mode = in.StringAttribute(kGroup, "standardization");
  const std::string offset = std::string(kGroup) + "/offset", scale = std::string(kGroup) + "/scale";
  if (in.Has(offset)) {
    const std::vector<double> o = in.ReadDoubles(offset), s = in.ReadDoubles(scale);
    if (o.size() != s.size()) throw InputError(in.path() + ": /data/offset and /data/scale differ in length");
    r.standardization.offset = Eigen::Map<const Vector>(o.data(), static_cast<Index>(o.size()));
    r.standardization.scale = Eigen::Map<const Vector>(s.data(), static_cast<Index>(s.size()));
  }
  for (const char* role : {"train_data", "train_labels", "test_data", "test_labels"}) {
    const std::string group = std::string(kGroup) + "/" + role;
    if (!in.Has(group)) continue;
    DataFile f;
    f.role = role;
    f.path = in.StringAttribute(group, "path");
    for (double d : in.DoublesAttribute(group, "shape")) f.shape.push_back(static_cast<std::uint64_t>(d));
    f.dtype = in.StringAttribute(group, "dtype");
    f.crc32 = static_cast<std::uint32_t>(in.IntAttribute(group, "crc32"));
    r.files.push_back(f);
  }
  return r;
}

OwnData ReadOwnData(const std::string& data_path, const std::string& data_flag,
                    const std::string& labels_path, const std::string& labels_flag,
                    const std::string& role) {
  OwnData own;
  const NpyArray x = ReadNpy(data_path, data_flag);
  const std::string where = InputPrefix(data_flag, data_path);
  if (x.shape.size() < 2 || x.shape.size() > 4) {
    throw InputError(where + "has shape " + ShapeText(x.shape) +
                     "; expected N x D features, N x H x W or N x C x H x W images");
  }
  for (Index i = 0; i < x.data.size(); ++i) {
    if (!std::isfinite(x.data[i])) {
      throw InputError(where + "contains NaN or infinite values (first at element " +
                       std::to_string(i) + "); expected finite features");
    }
  }
  const auto n = static_cast<Index>(x.shape[0]);
  Dataset& d = own.data;
  d.name = "own";
  if (x.shape.size() == 2) {
    d.sample_shape = {static_cast<std::int64_t>(x.shape[1])};
  } else if (x.shape.size() == 3) {
    d.sample_shape = {1, static_cast<std::int64_t>(x.shape[1]), static_cast<std::int64_t>(x.shape[2])};
  } else {
    d.sample_shape = {static_cast<std::int64_t>(x.shape[1]), static_cast<std::int64_t>(x.shape[2]),
                      static_cast<std::int64_t>(x.shape[3])};
  }
  const Index features = x.data.size() / n;
  d.features = Eigen::Map<const Matrix>(x.data.data(), features, n);
  own.source_type = x.type;
  own.files.push_back({role + "_data", data_path, x.shape, ElementTypeName(x.type), FileCrc32(data_path)});
  if (labels_path.empty()) return own;

  const NpyArray y = ReadNpy(labels_path, labels_flag);
  const std::string lwhere = InputPrefix(labels_flag, labels_path);
  if (!IsIntegerType(y.type)) {
    throw InputError(lwhere + "has dtype " + ElementTypeName(y.type) +
                     "; expected integer class labels 0..C-1 (e.g. int64)");
  }
  if (!(y.shape.size() == 1 || (y.shape.size() == 2 && y.shape[1] == 1))) {
    throw InputError(lwhere + "has shape " + ShapeText(y.shape) + "; expected N labels (N,)");
  }
  if (static_cast<Index>(y.shape[0]) != n) {
    throw InputError(lwhere + "has " + std::to_string(y.shape[0]) + " labels but " + data_path +
                     " has " + std::to_string(n) + " samples");
  }
  d.labels.resize(static_cast<std::size_t>(n));
  int largest = 0;
  for (Index i = 0; i < n; ++i) {
    const double v = y.data[i];
    if (v < 0 || v > 1e6) {
      throw InputError(lwhere + "label " + std::to_string(static_cast<long long>(v)) + " of sample " +
                       std::to_string(i) + " is out of range; expected class labels 0..C-1");
    }
    d.labels[static_cast<std::size_t>(i)] = static_cast<int>(v);
    largest = std::max(largest, static_cast<int>(v));
  }
  d.classes = largest + 1;
  own.files.push_back({role + "_labels", labels_path, y.shape, ElementTypeName(y.type), FileCrc32(labels_path)});
  return own;
}

void RebuildSplit(const DataRecord& r, Dataset* train, Dataset* test) {
  if (r.source == "generator") {
    GeneratorOptions g;
    g.samples = r.samples;
    g.noise = r.noise;
    g.seed = r.seed;
    SplitTrainTest(GeneratePlaneDataset(r.dataset, g), r.test_fraction, r.seed + 1, train, test);
  } else if (r.source == "files") {
    std::map<std::string, const DataFile*> files;
    for (const DataFile& f : r.files) files[f.role] = &f;
    const auto read = [&](const std::string& role) {
      const DataFile* x = files.count(role + "_data") ? files[role + "_data"] : nullptr;
      const DataFile* y = files.count(role + "_labels") ? files[role + "_labels"] : nullptr;
      if (x == nullptr || y == nullptr) throw InputError("the data record has no " + role + " files");
      for (const DataFile* f : {x, y}) {
        CheckedFileSize(f->path, "recorded " + f->role);
        if (FileCrc32(f->path) != f->crc32) {
          throw InputError("recorded " + f->role + ": " + f->path +
                           ": the file has changed since training (CRC-32 differs)");
        }
      }
      return ReadOwnData(x->path, "recorded " + x->role, y->path, "recorded " + y->role, role).data;
    };
    Dataset all = read("train");
    if (files.count("test_data")) {
      *train = std::move(all);
      *test = read("test");
    } else {
      SplitTrainTest(all, r.test_fraction, r.seed + 1, train, test);
    }
    r.standardization.Apply(train);
    r.standardization.Apply(test);
  } else {
    throw InputError("the training data cannot be rebuilt from a record of source '" + r.source + "'");
  }
}

std::string SampleShapeText(const std::vector<std::int64_t>& shape) {
  if (shape.size() == 1) return std::to_string(shape[0]) + " features";
  if (shape.size() == 3) {
    return std::to_string(shape[0]) + "-channel " + std::to_string(shape[2]) + "x" +
           std::to_string(shape[1]) + " images";
  }
  return "samples of rank " + std::to_string(shape.size());
}

void CheckSampleShape(const std::vector<std::int64_t>& sample_shape,
                      const std::vector<std::int64_t>& model_shape, const std::string& flag,
                      const std::string& path) {
  if (sample_shape == model_shape) return;
  const std::string where = InputPrefix(flag, path);
  const bool data_images = sample_shape.size() == 3, model_images = model_shape.size() == 3;
  if (data_images && model_images && sample_shape[0] == model_shape[0]) {
    throw InputError(where + "images are " + std::to_string(sample_shape[2]) + "x" +
                     std::to_string(sample_shape[1]) + ", the model was trained on " +
                     std::to_string(model_shape[2]) + "x" + std::to_string(model_shape[1]));
  }
  throw InputError(where + "has " + SampleShapeText(sample_shape) + " a sample; the model takes " +
                   SampleShapeText(model_shape));
}

void CheckLabelRange(const std::vector<int>& labels, int classes, const std::string& flag,
                     const std::string& path) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= classes) {
      throw InputError(InputPrefix(flag, path) + "label " + std::to_string(labels[i]) +
                       " of sample " + std::to_string(i) + " is out of range; the model has " +
                       std::to_string(classes) + " classes (0.." + std::to_string(classes - 1) + ")");
    }
  }
}

Matrix Softmax(const Matrix& logits) {
  Matrix p(logits.rows(), logits.cols());
  for (Index c = 0; c < logits.cols(); ++c) {
    const Vector e = (logits.col(c).array() - logits.col(c).maxCoeff()).exp();
    p.col(c) = e / e.sum();
  }
  return p;
}

}  // namespace diffeoflow::flows
