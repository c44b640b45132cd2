// A small, exception-safe layer over the HDF5 C API, so the rest of diffeoflow never touches hid_t.
//
// Writer: everything goes to a temporary file beside the destination; Commit() closes and renames
// it. A Writer destroyed without Commit() removes its temporary file. Datasets are stored with their
// natural shape (row-major, as h5py reads them), chunked and gzip-compressed above a size
// threshold. Names may contain '/', intermediate groups are created.
// Reader: every failure (missing file, not HDF5, truncated, missing dataset, wrong rank or type)
// throws InputError naming the file and the dataset.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace diffeoflow::h5 {

using Shape = std::vector<std::uint64_t>;

class Writer {
 public:
  explicit Writer(const std::string& path);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void WriteDoubles(const std::string& name, const double* data, const Shape& shape);
  void WriteDoubles(const std::string& name, const std::vector<double>& data, const Shape& shape) {
    WriteDoubles(name, data.data(), shape);
  }
  void WriteFloats(const std::string& name, const float* data, const Shape& shape);
  void WriteInts(const std::string& name, const std::int64_t* data, const Shape& shape);
  void WriteBytes(const std::string& name, const std::uint8_t* data, const Shape& shape);
  void CreateGroup(const std::string& name);

  // Attributes on an existing object ("/" for the file, a group or a dataset).
  void SetAttribute(const std::string& object, const std::string& key, double value);
  void SetAttribute(const std::string& object, const std::string& key, std::int64_t value);
  void SetAttribute(const std::string& object, const std::string& key, const std::string& value);
  void SetAttribute(const std::string& object, const std::string& key, const char* value) {
    SetAttribute(object, key, std::string(value));
  }
  void SetAttribute(const std::string& object, const std::string& key,
                    const std::vector<double>& value);

  // HDF5 dimension scales (H5DS of hdf5_hl; h5py's `dims`, xarray/netCDF's coordinates):
  // MakeDimensionScale turns the existing 1-D dataset `scale` into a scale called `name`;
  // AttachDimensionScale attaches it to axis `axis` of `dataset` (their lengths must agree);
  // SetDimensionLabel names an axis of `dataset`. InputError naming the file and datasets on
  // failure.
  void MakeDimensionScale(const std::string& scale, const std::string& name);
  void AttachDimensionScale(const std::string& dataset, unsigned axis, const std::string& scale);
  void SetDimensionLabel(const std::string& dataset, unsigned axis, const std::string& label);

  // Closes the file and renames the temporary file to the destination.
  void Commit();
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

class Reader {
 public:
  explicit Reader(const std::string& path);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  bool Has(const std::string& name) const;  // a dataset or group of that name exists
  Shape DatasetShape(const std::string& name) const;
  // Read with conversion to double / int64 from any integer or floating type; throws InputError
  // for other types (strings, compound, complex). `shape` receives the dataset's shape.
  std::vector<double> ReadDoubles(const std::string& name, Shape* shape = nullptr) const;
  std::vector<std::int64_t> ReadInts(const std::string& name, Shape* shape = nullptr) const;
  std::vector<float> ReadFloats(const std::string& name, Shape* shape = nullptr) const;

  bool HasAttribute(const std::string& object, const std::string& key) const;
  double DoubleAttribute(const std::string& object, const std::string& key) const;
  std::int64_t IntAttribute(const std::string& object, const std::string& key) const;
  std::string StringAttribute(const std::string& object, const std::string& key) const;
  std::vector<double> DoublesAttribute(const std::string& object, const std::string& key) const;
  // Names of the members of a group.
  std::vector<std::string> List(const std::string& group) const;
  // Names of the attributes of an object ("/" for the file, a group or a dataset).
  std::vector<std::string> AttributeNames(const std::string& object) const;
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

}  // namespace diffeoflow::h5
