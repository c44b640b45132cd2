#include "solvers/hdf5.h"

#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <new>
#include <system_error>

#include "solvers/atomic_file.h"
#include "solvers/errors.h"

namespace diffeoflow::h5 {
namespace {

// Datasets above this many bytes are chunked and compressed; chunks aim at kChunkBytes.
constexpr std::uint64_t kCompressAboveBytes = 64 * 1024;
constexpr std::uint64_t kChunkBytes = 256 * 1024;
constexpr unsigned kDeflateLevel = 4;
// No dataset we read is larger than this; a larger size comes from a corrupt header.
constexpr std::uint64_t kMaxReadBytes = std::uint64_t{1} << 40;

// HDF5 prints its error stack to stderr by default; every failure here becomes an exception.
void SilenceHdf5Errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// Owns one HDF5 identifier and closes it with the matching H5?close on every path.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { Reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      Reset();
      id_ = other.id_;
      closer_ = other.closer_;
      other.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now and reports whether closing succeeded.
  bool Close() {
    if (id_ < 0) return true;
    const herr_t status = closer_(id_);
    id_ = -1;
    return status >= 0;
  }
  void Reset() { Close(); }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::uint64_t ElementCount(const Shape& shape) {
  std::uint64_t count = 1;
  for (std::uint64_t d : shape) {
    if (d != 0 && count > std::numeric_limits<std::uint64_t>::max() / d) {
      return std::numeric_limits<std::uint64_t>::max();
    }
    count *= d;
  }
  return count;
}

std::string ShapeText(const Shape& shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + ")";
}

std::string TypeClassName(H5T_class_t type_class) {
  switch (type_class) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "floating point";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "variable-length";
    case H5T_OPAQUE: return "opaque";
    case H5T_REFERENCE: return "reference";
    case H5T_BITFIELD: return "bitfield";
    case H5T_TIME: return "time";
    default: return "unknown";
  }
}

Handle OpenObject(hid_t file, const std::string& file_path, const std::string& object) {
  Handle handle(H5Oopen(file, object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!handle.valid()) {
    throw InputError("HDF5 file " + Quote(file_path) + ": no object " + Quote(object));
  }
  return handle;
}

// Shape of a dataspace; a scalar has shape {} and a null dataspace shape {0}.
Shape SpaceShape(hid_t space, const std::string& what) {
  const H5S_class_t space_class = H5Sget_simple_extent_type(space);
  if (space_class == H5S_SCALAR) return {};
  if (space_class == H5S_NULL) return {0};
  const int rank = H5Sget_simple_extent_ndims(space);
  if (space_class != H5S_SIMPLE || rank < 0) throw InputError(what + ": unreadable dataspace");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space, dims.data(), nullptr) < 0) {
    throw InputError(what + ": unreadable dataspace");
  }
  return Shape(dims.begin(), dims.end());
}

std::size_t CheckedCount(const Shape& shape, std::size_t element_size, const std::string& what) {
  const std::uint64_t count = ElementCount(shape);
  if (count > kMaxReadBytes / element_size) {
    throw InputError(what + ": implausible size " + ShapeText(shape) + " (corrupt file?)");
  }
  return static_cast<std::size_t>(count);
}

// Reads a whole dataset with conversion to `memory_type` (integer and floating types only).
template <typename T>
std::vector<T> ReadNumericDataset(hid_t file, const std::string& file_path,
                                  const std::string& name, hid_t memory_type, Shape* shape_out) {
  const std::string what = "HDF5 file " + Quote(file_path) + ", dataset " + Quote(name);
  if (name.empty() || H5Oexists_by_name(file, name.c_str(), H5P_DEFAULT) <= 0) {
    throw InputError("HDF5 file " + Quote(file_path) + ": no dataset " + Quote(name));
  }
  Handle dataset(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) throw InputError(what + ": not a dataset or unreadable");
  Handle type(H5Dget_type(dataset.get()), H5Tclose);
  if (!type.valid()) throw InputError(what + ": unreadable data type");
  const H5T_class_t type_class = H5Tget_class(type.get());
  if (type_class != H5T_INTEGER && type_class != H5T_FLOAT) {
    throw InputError(what + ": has " + TypeClassName(type_class) +
                     " elements, expected integer or floating point numbers");
  }
  Handle space(H5Dget_space(dataset.get()), H5Sclose);
  if (!space.valid()) throw InputError(what + ": unreadable dataspace");
  const Shape shape = SpaceShape(space.get(), what);
  const std::size_t count = CheckedCount(shape, sizeof(T), what);
  std::vector<T> values;
  try {
    values.resize(count);
  } catch (const std::bad_alloc&) {
    throw InputError(what + ": too large to read " + ShapeText(shape));
  }
  if (count > 0 && H5Dread(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                           values.data()) < 0) {
    throw InputError(what + ": read failed (truncated or corrupt file?)");
  }
  if (shape_out != nullptr) *shape_out = shape;
  return values;
}

struct OpenedAttribute {
  Handle attribute;
  Handle type;
  Shape shape;
  std::string what;
};

OpenedAttribute OpenAttribute(hid_t file, const std::string& file_path,
                              const std::string& object, const std::string& key) {
  OpenedAttribute result;
  result.what = "HDF5 file " + Quote(file_path) + ", attribute " + Quote(key) + " of " +
                Quote(object);
  Handle owner = OpenObject(file, file_path, object);
  if (H5Aexists(owner.get(), key.c_str()) <= 0) throw InputError(result.what + ": missing");
  result.attribute = Handle(H5Aopen(owner.get(), key.c_str(), H5P_DEFAULT), H5Aclose);
  if (!result.attribute.valid()) throw InputError(result.what + ": unreadable");
  result.type = Handle(H5Aget_type(result.attribute.get()), H5Tclose);
  Handle space(H5Aget_space(result.attribute.get()), H5Sclose);
  if (!result.type.valid() || !space.valid()) throw InputError(result.what + ": unreadable");
  result.shape = SpaceShape(space.get(), result.what);
  return result;
}

template <typename T>
std::vector<T> ReadNumericAttribute(OpenedAttribute& opened, hid_t memory_type) {
  const H5T_class_t type_class = H5Tget_class(opened.type.get());
  if (type_class != H5T_INTEGER && type_class != H5T_FLOAT) {
    throw InputError(opened.what + ": has " + TypeClassName(type_class) +
                     " type, expected a number");
  }
  const std::size_t count = CheckedCount(opened.shape, sizeof(T), opened.what);
  std::vector<T> values(count);
  if (count > 0 && H5Aread(opened.attribute.get(), memory_type, values.data()) < 0) {
    throw InputError(opened.what + ": read failed");
  }
  return values;
}

herr_t CollectLinkName(hid_t, const char* name, const H5L_info_t*, void* data) {
  try {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  } catch (...) {
    return -1;
  }
}

herr_t CollectAttributeName(hid_t, const char* name, const H5A_info_t*, void* data) {
  try {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  } catch (...) {
    return -1;
  }
}

// HDF5 does not convert between character sets, so a memory type for reading takes the cset of
// the stored type.
Handle CreateStringType(std::size_t size, H5T_cset_t cset = H5T_CSET_UTF8) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!type.valid() || H5Tset_size(type.get(), size) < 0 || H5Tset_cset(type.get(), cset) < 0) {
    throw InputError("HDF5: cannot create string type");
  }
  return type;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

struct Writer::Impl {
  std::string temporary;
  Handle file;
  bool committed = false;

  std::string Where(const std::string& path) const { return "HDF5 file " + Quote(path); }

  void WriteDataset(const std::string& path, const std::string& name, hid_t file_type,
                    hid_t memory_type, std::size_t element_size, const void* data,
                    const Shape& shape) {
    const std::string what = Where(path) + ", dataset " + Quote(name);
    if (!file.valid()) throw InputError(what + ": writer already committed");
    if (name.empty() || name == "/") throw InputError(what + ": a dataset needs a name");
    const std::uint64_t count = ElementCount(shape);
    if (count > 0 && data == nullptr) throw InputError(what + ": no data for shape " +
                                                       ShapeText(shape));
    if (H5Lexists(file.get(), name.c_str(), H5P_DEFAULT) > 0) {
      throw InputError(what + ": already exists");
    }
    const std::vector<hsize_t> dims(shape.begin(), shape.end());
    Handle space = shape.empty()
                       ? Handle(H5Screate(H5S_SCALAR), H5Sclose)
                       : Handle(H5Screate_simple(static_cast<int>(dims.size()), dims.data(),
                                                 nullptr),
                                H5Sclose);
    Handle link_plist(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    Handle create_plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    if (!space.valid() || !link_plist.valid() || !create_plist.valid() ||
        H5Pset_create_intermediate_group(link_plist.get(), 1) < 0) {
      throw InputError(what + ": cannot prepare shape " + ShapeText(shape));
    }
    const std::uint64_t bytes = count * element_size;
    if (!shape.empty() && count > 0 && bytes > kCompressAboveBytes) {
      // Halve the slowest-varying dimensions first so that a chunk holds whole trailing rows.
      std::vector<hsize_t> chunk = dims;
      for (std::size_t i = 0; i < chunk.size(); ++i) {
        while (chunk[i] > 1 && ElementCount(Shape(chunk.begin(), chunk.end())) * element_size >
                                   kChunkBytes) {
          chunk[i] = (chunk[i] + 1) / 2;
        }
      }
      if (H5Pset_chunk(create_plist.get(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
          H5Pset_shuffle(create_plist.get()) < 0 ||
          H5Pset_deflate(create_plist.get(), kDeflateLevel) < 0) {
        throw InputError(what + ": cannot set up chunked compression");
      }
    }
    Handle dataset(H5Dcreate2(file.get(), name.c_str(), file_type, space.get(), link_plist.get(),
                              create_plist.get(), H5P_DEFAULT),
                   H5Dclose);
    if (!dataset.valid()) throw InputError(what + ": cannot create dataset");
    if (count > 0 &&
        H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
      throw InputError(what + ": write failed (disk full?)");
    }
    if (!dataset.Close()) throw InputError(what + ": write failed (disk full?)");
  }

  // Opens `object` and removes an attribute `key` already on it, so that a set overwrites.
  Handle PrepareAttribute(const std::string& path, const std::string& object,
                          const std::string& key) {
    if (!file.valid()) throw InputError(Where(path) + ": writer already committed");
    if (key.empty()) throw InputError(Where(path) + ": attribute of " + Quote(object) +
                                      " needs a name");
    Handle owner = OpenObject(file.get(), path, object);
    if (H5Aexists(owner.get(), key.c_str()) > 0 && H5Adelete(owner.get(), key.c_str()) < 0) {
      throw InputError(Where(path) + ": cannot replace attribute " + Quote(key) + " of " +
                       Quote(object));
    }
    return owner;
  }

  void WriteAttribute(const std::string& path, const std::string& object, const std::string& key,
                      hid_t file_type, hid_t memory_type, hid_t space, const void* data) {
    Handle owner = PrepareAttribute(path, object, key);
    Handle attribute(H5Acreate2(owner.get(), key.c_str(), file_type, space, H5P_DEFAULT,
                                H5P_DEFAULT),
                     H5Aclose);
    if (!attribute.valid() ||
        (H5Sget_simple_extent_type(space) != H5S_NULL &&
         H5Awrite(attribute.get(), memory_type, data) < 0)) {
      throw InputError(Where(path) + ": cannot write attribute " + Quote(key) + " of " +
                       Quote(object));
    }
  }
};

Writer::Writer(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  SilenceHdf5Errors();
  if (path.empty()) throw InputError("HDF5 output path must not be empty");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw InputError("cannot write HDF5 file " + Quote(path) + ": it is a directory");
  }
  impl_->temporary = TemporaryPathFor(path);
  impl_->file = Handle(H5Fcreate(impl_->temporary.c_str(), H5F_ACC_EXCL, H5P_DEFAULT,
                                 H5P_DEFAULT),
                       H5Fclose);
  if (!impl_->file.valid()) {
    std::filesystem::path folder = std::filesystem::path(path).parent_path();
    if (folder.empty()) folder = ".";
    throw InputError("cannot write HDF5 file " + Quote(path) + " (is folder " +
                     Quote(folder.string()) + " present and writable?)");
  }
}

Writer::~Writer() {
  if (impl_ && !impl_->committed) {
    impl_->file.Reset();
    std::remove(impl_->temporary.c_str());
  }
}

void Writer::WriteDoubles(const std::string& name, const double* data, const Shape& shape) {
  impl_->WriteDataset(path_, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, sizeof(double), data,
                      shape);
}

void Writer::WriteFloats(const std::string& name, const float* data, const Shape& shape) {
  impl_->WriteDataset(path_, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, sizeof(float), data, shape);
}

void Writer::WriteInts(const std::string& name, const std::int64_t* data, const Shape& shape) {
  impl_->WriteDataset(path_, name, H5T_STD_I64LE, H5T_NATIVE_INT64, sizeof(std::int64_t), data,
                      shape);
}

void Writer::WriteBytes(const std::string& name, const std::uint8_t* data, const Shape& shape) {
  impl_->WriteDataset(path_, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, sizeof(std::uint8_t), data,
                      shape);
}

void Writer::CreateGroup(const std::string& name) {
  const std::string what = impl_->Where(path_) + ", group " + Quote(name);
  if (!impl_->file.valid()) throw InputError(what + ": writer already committed");
  if (name.empty() || name == "/") return;
  if (H5Lexists(impl_->file.get(), name.c_str(), H5P_DEFAULT) > 0) {
    if (H5Oexists_by_name(impl_->file.get(), name.c_str(), H5P_DEFAULT) > 0) {
      H5O_info_t info;
      if (H5Oget_info_by_name(impl_->file.get(), name.c_str(), &info, H5P_DEFAULT) >= 0 &&
          info.type == H5O_TYPE_GROUP) {
        return;
      }
    }
    throw InputError(what + ": a dataset of that name exists");
  }
  Handle link_plist(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  if (!link_plist.valid() || H5Pset_create_intermediate_group(link_plist.get(), 1) < 0) {
    throw InputError(what + ": cannot create group");
  }
  Handle group(H5Gcreate2(impl_->file.get(), name.c_str(), link_plist.get(), H5P_DEFAULT,
                          H5P_DEFAULT),
               H5Gclose);
  if (!group.valid()) throw InputError(what + ": cannot create group");
}

void Writer::MakeDimensionScale(const std::string& scale, const std::string& name) {
  const std::string what = impl_->Where(path_) + ", dataset " + Quote(scale);
  if (!impl_->file.valid()) throw InputError(what + ": writer already committed");
  Handle dataset = OpenObject(impl_->file.get(), path_, scale);
  if (H5DSset_scale(dataset.get(), name.c_str()) < 0) {
    throw InputError(what + ": cannot make it a dimension scale");
  }
}

void Writer::AttachDimensionScale(const std::string& dataset, unsigned axis,
                                  const std::string& scale) {
  const std::string what = impl_->Where(path_) + ", dataset " + Quote(dataset);
  if (!impl_->file.valid()) throw InputError(what + ": writer already committed");
  Handle data = OpenObject(impl_->file.get(), path_, dataset);
  Handle scale_set = OpenObject(impl_->file.get(), path_, scale);
  if (H5DSattach_scale(data.get(), scale_set.get(), axis) < 0) {
    throw InputError(what + ": cannot attach dimension scale " + Quote(scale) + " to axis " +
                     std::to_string(axis));
  }
}

void Writer::SetDimensionLabel(const std::string& dataset, unsigned axis,
                               const std::string& label) {
  const std::string what = impl_->Where(path_) + ", dataset " + Quote(dataset);
  if (!impl_->file.valid()) throw InputError(what + ": writer already committed");
  Handle data = OpenObject(impl_->file.get(), path_, dataset);
  if (H5DSset_label(data.get(), axis, label.c_str()) < 0) {
    throw InputError(what + ": cannot label axis " + std::to_string(axis));
  }
}

void Writer::SetAttribute(const std::string& object, const std::string& key, double value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  impl_->WriteAttribute(path_, object, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space.get(),
                        &value);
}

void Writer::SetAttribute(const std::string& object, const std::string& key,
                          std::int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  impl_->WriteAttribute(path_, object, key, H5T_STD_I64LE, H5T_NATIVE_INT64, space.get(),
                        &value);
}

void Writer::SetAttribute(const std::string& object, const std::string& key,
                          const std::string& value) {
  // Variable-length UTF-8, which h5py returns as str.
  Handle type = CreateStringType(H5T_VARIABLE);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const char* text = value.c_str();
  impl_->WriteAttribute(path_, object, key, type.get(), type.get(), space.get(), &text);
}

void Writer::SetAttribute(const std::string& object, const std::string& key,
                          const std::vector<double>& value) {
  const hsize_t size = value.size();
  Handle space = value.empty() ? Handle(H5Screate(H5S_NULL), H5Sclose)
                               : Handle(H5Screate_simple(1, &size, nullptr), H5Sclose);
  impl_->WriteAttribute(path_, object, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space.get(),
                        value.data());
}

void Writer::Commit() {
  if (!impl_->file.valid()) throw InputError(impl_->Where(path_) + ": already committed");
  if (!impl_->file.Close()) {
    throw InputError("cannot write HDF5 file " + Quote(path_) + ": closing failed (disk full?)");
  }
  const int fd = ::open(impl_->temporary.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    const int synced = ::fsync(fd);
    ::close(fd);
    if (synced != 0) throw InputError("cannot write HDF5 file " + Quote(path_) + ": fsync failed");
  }
  CommitFile(impl_->temporary, path_);
  impl_->committed = true;
}

// ---------------------------------------------------------------------------------------------
// Reader

struct Reader::Impl {
  Handle file;
};

Reader::Reader(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  SilenceHdf5Errors();
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw MissingFileError("HDF5 file " + Quote(path) + ": no such file");
  if (fs::is_directory(status)) {
    throw InputError("HDF5 file " + Quote(path) + ": is a directory, expected a file");
  }
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 <= 0) {
    throw InputError("file " + Quote(path) + " is not an HDF5 file (or is unreadable)");
  }
  impl_->file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!impl_->file.valid()) {
    throw InputError("HDF5 file " + Quote(path) + ": cannot open (truncated or corrupt?)");
  }
}

Reader::~Reader() = default;

bool Reader::Has(const std::string& name) const {
  if (name.empty()) return false;
  if (name == "/") return true;
  // H5Lexists needs every parent to exist, so walk the path one component at a time.
  std::size_t start = name[0] == '/' ? 1 : 0;
  while (start <= name.size()) {
    std::size_t slash = name.find('/', start);
    if (slash == std::string::npos) slash = name.size();
    const std::string prefix = name.substr(0, slash);
    if (!prefix.empty() && prefix != "/" &&
        H5Lexists(impl_->file.get(), prefix.c_str(), H5P_DEFAULT) <= 0) {
      return false;
    }
    start = slash + 1;
  }
  return H5Oexists_by_name(impl_->file.get(), name.c_str(), H5P_DEFAULT) > 0;
}

Shape Reader::DatasetShape(const std::string& name) const {
  const std::string what = "HDF5 file " + Quote(path_) + ", dataset " + Quote(name);
  if (!Has(name)) throw InputError("HDF5 file " + Quote(path_) + ": no dataset " + Quote(name));
  Handle dataset(H5Dopen2(impl_->file.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) throw InputError(what + ": not a dataset or unreadable");
  Handle space(H5Dget_space(dataset.get()), H5Sclose);
  if (!space.valid()) throw InputError(what + ": unreadable dataspace");
  return SpaceShape(space.get(), what);
}

std::vector<double> Reader::ReadDoubles(const std::string& name, Shape* shape) const {
  if (!Has(name)) throw InputError("HDF5 file " + Quote(path_) + ": no dataset " + Quote(name));
  return ReadNumericDataset<double>(impl_->file.get(), path_, name, H5T_NATIVE_DOUBLE, shape);
}

std::vector<std::int64_t> Reader::ReadInts(const std::string& name, Shape* shape) const {
  if (!Has(name)) throw InputError("HDF5 file " + Quote(path_) + ": no dataset " + Quote(name));
  return ReadNumericDataset<std::int64_t>(impl_->file.get(), path_, name, H5T_NATIVE_INT64,
                                          shape);
}

std::vector<float> Reader::ReadFloats(const std::string& name, Shape* shape) const {
  if (!Has(name)) throw InputError("HDF5 file " + Quote(path_) + ": no dataset " + Quote(name));
  return ReadNumericDataset<float>(impl_->file.get(), path_, name, H5T_NATIVE_FLOAT, shape);
}

bool Reader::HasAttribute(const std::string& object, const std::string& key) const {
  if (!Has(object)) return false;
  Handle owner(H5Oopen(impl_->file.get(), object.c_str(), H5P_DEFAULT), H5Oclose);
  return owner.valid() && H5Aexists(owner.get(), key.c_str()) > 0;
}

double Reader::DoubleAttribute(const std::string& object, const std::string& key) const {
  OpenedAttribute opened = OpenAttribute(impl_->file.get(), path_, object, key);
  const std::vector<double> values = ReadNumericAttribute<double>(opened, H5T_NATIVE_DOUBLE);
  if (values.size() != 1) throw InputError(opened.what + ": expected one number");
  return values[0];
}

std::int64_t Reader::IntAttribute(const std::string& object, const std::string& key) const {
  OpenedAttribute opened = OpenAttribute(impl_->file.get(), path_, object, key);
  if (H5Tget_class(opened.type.get()) != H5T_INTEGER) {
    throw InputError(opened.what + ": has " + TypeClassName(H5Tget_class(opened.type.get())) +
                     " type, expected an integer");
  }
  const std::vector<std::int64_t> values =
      ReadNumericAttribute<std::int64_t>(opened, H5T_NATIVE_INT64);
  if (values.size() != 1) throw InputError(opened.what + ": expected one integer");
  return values[0];
}

std::string Reader::StringAttribute(const std::string& object, const std::string& key) const {
  OpenedAttribute opened = OpenAttribute(impl_->file.get(), path_, object, key);
  if (H5Tget_class(opened.type.get()) != H5T_STRING) {
    throw InputError(opened.what + ": has " + TypeClassName(H5Tget_class(opened.type.get())) +
                     " type, expected a string");
  }
  if (ElementCount(opened.shape) != 1) throw InputError(opened.what + ": expected one string");
  const htri_t variable = H5Tis_variable_str(opened.type.get());
  const H5T_cset_t cset = H5Tget_cset(opened.type.get());
  if (variable < 0 || cset < 0) throw InputError(opened.what + ": unreadable string type");
  if (variable > 0) {
    Handle memory_type = CreateStringType(H5T_VARIABLE, cset);
    char* text = nullptr;
    if (H5Aread(opened.attribute.get(), memory_type.get(), &text) < 0) {
      throw InputError(opened.what + ": read failed");
    }
    std::string value = text != nullptr ? std::string(text) : std::string();
    H5free_memory(text);
    return value;
  }
  const std::size_t size = H5Tget_size(opened.type.get());
  if (size == 0 || size > (std::size_t{1} << 30)) throw InputError(opened.what + ": bad size");
  Handle memory_type = CreateStringType(size, cset);
  std::string buffer(size, '\0');
  if (H5Aread(opened.attribute.get(), memory_type.get(), buffer.data()) < 0) {
    throw InputError(opened.what + ": read failed");
  }
  const std::size_t end = buffer.find('\0');
  if (end != std::string::npos) buffer.resize(end);
  return buffer;
}

std::vector<double> Reader::DoublesAttribute(const std::string& object,
                                             const std::string& key) const {
  OpenedAttribute opened = OpenAttribute(impl_->file.get(), path_, object, key);
  if (opened.shape.size() > 1) throw InputError(opened.what + ": expected a 1-D array");
  return ReadNumericAttribute<double>(opened, H5T_NATIVE_DOUBLE);
}

std::vector<std::string> Reader::List(const std::string& group) const {
  const std::string what = "HDF5 file " + Quote(path_) + ", group " + Quote(group);
  if (!Has(group)) throw InputError("HDF5 file " + Quote(path_) + ": no group " + Quote(group));
  Handle handle(H5Gopen2(impl_->file.get(), group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!handle.valid()) throw InputError(what + ": not a group");
  std::vector<std::string> names;
  hsize_t index = 0;
  if (H5Literate(handle.get(), H5_INDEX_NAME, H5_ITER_INC, &index, CollectLinkName, &names) < 0) {
    throw InputError(what + ": cannot list members");
  }
  return names;
}

std::vector<std::string> Reader::AttributeNames(const std::string& object) const {
  if (!Has(object)) {
    throw InputError("HDF5 file " + Quote(path_) + ": no object " + Quote(object));
  }
  Handle owner = OpenObject(impl_->file.get(), path_, object);
  std::vector<std::string> names;
  hsize_t index = 0;
  if (H5Aiterate2(owner.get(), H5_INDEX_NAME, H5_ITER_INC, &index, CollectAttributeName,
                  &names) < 0) {
    throw InputError("HDF5 file " + Quote(path_) + ": cannot list attributes of " +
                     Quote(object));
  }
  return names;
}

}  // namespace diffeoflow::h5
