#include "solvers/hdf5.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "solvers/errors.h"
#include "tests/scratch.h"

namespace diffeoflow::h5 {
namespace {

namespace fs = std::filesystem;

class Hdf5Test : public testing::ScratchTest {
 protected:
  Hdf5Test() : ScratchTest("diffeoflow-hdf5-") {}
  std::vector<std::string> FilesInDir() const {
    const std::set<std::string> names = Files();
    return {names.begin(), names.end()};
  }
  static void WriteRaw(const std::string& path, const std::string& bytes) { WriteBytes(path, bytes); }
  static std::string ReadRaw(const std::string& path) { return ReadBytes(path); }
};

using testing::ExpectInputError;

TEST_F(Hdf5Test, DoublesRoundTripBitForBitWithShape) {
  const Shape shape{3, 4, 5};
  std::vector<double> data(60);
  std::mt19937 rng(7);
  std::normal_distribution<double> normal(0.0, 1e3);
  for (double& v : data) v = normal(rng);
  data[0] = -0.0;
  data[1] = std::numeric_limits<double>::denorm_min();
  data[2] = std::numeric_limits<double>::infinity();
  data[3] = std::numeric_limits<double>::quiet_NaN();
  data[4] = 0.1;
  data[5] = std::numeric_limits<double>::max();
  {
    Writer writer(Path("a.h5"));
    writer.WriteDoubles("x", data, shape);
    writer.Commit();
  }
  Reader reader(Path("a.h5"));
  Shape read_shape;
  const std::vector<double> read = reader.ReadDoubles("x", &read_shape);
  EXPECT_EQ(read_shape, shape);
  EXPECT_EQ(reader.DatasetShape("x"), shape);
  ASSERT_EQ(read.size(), data.size());
  EXPECT_EQ(std::memcmp(read.data(), data.data(), data.size() * sizeof(double)), 0);
}

TEST_F(Hdf5Test, FloatsIntsAndBytesRoundTripBitForBit) {
  const std::vector<float> floats{1.5f, -0.0f, 3.1415927f, 1e-40f, -7e30f, 0.3f};
  const std::vector<std::int64_t> ints{std::numeric_limits<std::int64_t>::min(), -1, 0, 1,
                                       std::numeric_limits<std::int64_t>::max(), 42};
  const std::vector<std::uint8_t> bytes{0, 1, 127, 128, 254, 255};
  {
    Writer writer(Path("a.h5"));
    writer.WriteFloats("f", floats.data(), {2, 3});
    writer.WriteInts("i", ints.data(), {6});
    writer.WriteBytes("b", bytes.data(), {3, 2, 1});
    writer.Commit();
  }
  Reader reader(Path("a.h5"));
  Shape shape;
  const std::vector<float> f = reader.ReadFloats("f", &shape);
  EXPECT_EQ(shape, (Shape{2, 3}));
  EXPECT_EQ(std::memcmp(f.data(), floats.data(), floats.size() * sizeof(float)), 0);
  EXPECT_EQ(reader.ReadInts("i", &shape), ints);
  EXPECT_EQ(shape, (Shape{6}));
  const std::vector<std::int64_t> b = reader.ReadInts("b", &shape);
  EXPECT_EQ(shape, (Shape{3, 2, 1}));
  ASSERT_EQ(b.size(), bytes.size());
  for (std::size_t i = 0; i < bytes.size(); ++i) EXPECT_EQ(b[i], bytes[i]);
  // Conversion between numeric types on read.
  const std::vector<double> b_as_doubles = reader.ReadDoubles("b");
  for (std::size_t i = 0; i < bytes.size(); ++i) EXPECT_EQ(b_as_doubles[i], bytes[i]);
  const std::vector<double> f_as_doubles = reader.ReadDoubles("f");
  for (std::size_t i = 0; i < floats.size(); ++i) {
    EXPECT_EQ(f_as_doubles[i], static_cast<double>(floats[i]));
  }
}

TEST_F(Hdf5Test, ScalarAndZeroSizedShapes) {
  const double scalar = 2.5;
  {
    Writer writer(Path("a.h5"));
    writer.WriteDoubles("scalar", &scalar, {});
    writer.WriteDoubles("empty", nullptr, {0, 3});
    writer.Commit();
  }
  Reader reader(Path("a.h5"));
  Shape shape{9};
  EXPECT_EQ(reader.ReadDoubles("scalar", &shape), std::vector<double>{2.5});
  EXPECT_TRUE(shape.empty());
  EXPECT_TRUE(reader.ReadDoubles("empty", &shape).empty());
  EXPECT_EQ(shape, (Shape{0, 3}));
}

TEST_F(Hdf5Test, NamesWithSlashesCreateGroups) {
  const std::vector<double> data{1, 2, 3};
  {
    Writer writer(Path("a.h5"));
    writer.WriteDoubles("level1/level2/x", data, {3});
    writer.CreateGroup("other/sub");
    writer.CreateGroup("other/sub");  // creating an existing group is harmless
    writer.WriteDoubles("level1/y", data, {3});
    writer.Commit();
  }
  Reader reader(Path("a.h5"));
  EXPECT_TRUE(reader.Has("level1"));
  EXPECT_TRUE(reader.Has("/level1/level2"));
  EXPECT_TRUE(reader.Has("level1/level2/x"));
  EXPECT_TRUE(reader.Has("other/sub"));
  EXPECT_FALSE(reader.Has("level1/missing/x"));
  EXPECT_FALSE(reader.Has("nothing"));
  EXPECT_EQ(reader.ReadDoubles("level1/level2/x"), data);
  EXPECT_EQ(reader.List("level1"), (std::vector<std::string>{"level2", "y"}));
  EXPECT_EQ(reader.List("/"), (std::vector<std::string>{"level1", "other"}));
  ExpectInputError([&] { reader.List("level1/y"); }, {Path("a.h5"), "level1/y"});
}

TEST_F(Hdf5Test, AttributesOfEachTypeRoundTrip) {
  const std::vector<double> data{1, 2};
  const std::vector<double> many{0.1, -2.5, 1e300};
  {
    Writer writer(Path("a.h5"));
    writer.WriteDoubles("g/x", data, {2});
    writer.SetAttribute("/", "format", "diffeoflow-test");
    writer.SetAttribute("/", "version", std::int64_t{-3});
    writer.SetAttribute("g", "sigma", 0.1);
    writer.SetAttribute("g", "name", std::string("µm² — unicode"));
    writer.SetAttribute("g/x", "spacing", many);
    writer.SetAttribute("g/x", "nothing", std::vector<double>{});
    writer.SetAttribute("g/x", "empty", "");
    writer.SetAttribute("g", "sigma", 0.2);  // overwrites
    writer.Commit();
  }
  Reader reader(Path("a.h5"));
  EXPECT_EQ(reader.StringAttribute("/", "format"), "diffeoflow-test");
  EXPECT_EQ(reader.IntAttribute("/", "version"), -3);
  EXPECT_EQ(reader.DoubleAttribute("g", "sigma"), 0.2);
  EXPECT_EQ(reader.StringAttribute("g", "name"), "µm² — unicode");
  EXPECT_EQ(reader.DoublesAttribute("g/x", "spacing"), many);
  EXPECT_TRUE(reader.DoublesAttribute("g/x", "nothing").empty());
  EXPECT_EQ(reader.StringAttribute("g/x", "empty"), "");
  EXPECT_TRUE(reader.HasAttribute("g", "sigma"));
  EXPECT_FALSE(reader.HasAttribute("g", "missing"));
  EXPECT_FALSE(reader.HasAttribute("missing", "sigma"));
  EXPECT_EQ(reader.AttributeNames("g"), (std::vector<std::string>{"name", "sigma"}));
  // An integer attribute reads as a double too.
  EXPECT_EQ(reader.DoubleAttribute("/", "version"), -3.0);

  const std::string path = Path("a.h5");
  ExpectInputError([&] { reader.StringAttribute("g", "sigma"); }, {path, "sigma", "string"});
  ExpectInputError([&] { reader.DoubleAttribute("/", "format"); }, {path, "format"});
  ExpectInputError([&] { reader.IntAttribute("g", "sigma"); }, {path, "sigma", "integer"});
  ExpectInputError([&] { reader.DoubleAttribute("g/x", "spacing"); }, {path, "spacing"});
  ExpectInputError([&] { reader.DoubleAttribute("g", "missing"); }, {path, "missing"});
  ExpectInputError([&] { reader.DoubleAttribute("nowhere", "sigma"); }, {path, "nowhere"});
}

TEST_F(Hdf5Test, FixedLengthStringAttributesFromOtherToolsAreRead) {
  // NumPy byte strings (h5py's np.bytes_) are stored as fixed-length, NUL-padded strings.
  const std::string path = Path("fixed.h5");
  {
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, 8);
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t attribute = H5Acreate2(file, "units", type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char text[8] = {'m', 'm', '\0', '\0', '\0', '\0', '\0', '\0'};
    H5Awrite(attribute, type, text);
    H5Aclose(attribute);
    // And a variable-length ASCII string, as the HDF5 C examples write.
    const hid_t variable_type = H5Tcopy(H5T_C_S1);
    H5Tset_size(variable_type, H5T_VARIABLE);
    const hid_t variable =
        H5Acreate2(file, "name", variable_type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char* name = "grid";
    H5Awrite(variable, variable_type, &name);
    H5Aclose(variable);
    H5Tclose(variable_type);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(file);
  }
  EXPECT_EQ(Reader(path).StringAttribute("/", "units"), "mm");
  EXPECT_EQ(Reader(path).StringAttribute("/", "name"), "grid");
}

// Reopens `path` with the HDF5 C API and reports the layout and filter count of `name`.
std::pair<H5D_layout_t, int> LayoutOf(const std::string& path, const std::string& name) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t dataset = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  const hid_t plist = H5Dget_create_plist(dataset);
  const std::pair<H5D_layout_t, int> result{H5Pget_layout(plist), H5Pget_nfilters(plist)};
  H5Pclose(plist);
  H5Dclose(dataset);
  H5Fclose(file);
  return result;
}

TEST_F(Hdf5Test, LargeDatasetsAreChunkedAndCompressedSmallOnesContiguous) {
  std::vector<double> large(200 * 1000);
  for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<double>(i % 17) * 0.25;
  const std::vector<double> small(100, 1.0);
  {
    Writer writer(Path("a.h5"));
    writer.WriteDoubles("large", large, {200, 1000});
    writer.WriteDoubles("small", small, {10, 10});
    writer.Commit();
  }
  const auto [large_layout, large_filters] = LayoutOf(Path("a.h5"), "large");
  EXPECT_EQ(large_layout, H5D_CHUNKED);
  EXPECT_EQ(large_filters, 2);  // shuffle + deflate
  const auto [small_layout, small_filters] = LayoutOf(Path("a.h5"), "small");
  EXPECT_EQ(small_layout, H5D_CONTIGUOUS);
  EXPECT_EQ(small_filters, 0);
  EXPECT_LT(fs::file_size(Path("a.h5")), large.size() * sizeof(double) / 10);
  Reader reader(Path("a.h5"));
  EXPECT_EQ(reader.ReadDoubles("large"), large);
}

TEST_F(Hdf5Test, WriterWithoutCommitLeavesNoFile) {
  {
    Writer writer(Path("a.h5"));
    writer.WriteDoubles("x", std::vector<double>{1, 2}, {2});
  }
  EXPECT_TRUE(FilesInDir().empty());
}

TEST_F(Hdf5Test, CommitReplacesAnExistingFileAndLeavesNoTemporary) {
  WriteRaw(Path("a.h5"), "old contents");
  Writer writer(Path("a.h5"));
  writer.WriteDoubles("x", std::vector<double>{4, 5}, {2});
  writer.Commit();
  EXPECT_EQ(FilesInDir(), std::vector<std::string>{"a.h5"});
  EXPECT_EQ(Reader(Path("a.h5")).ReadDoubles("x"), (std::vector<double>{4, 5}));
  ExpectInputError([&] { writer.WriteDoubles("y", std::vector<double>{1}, {1}); },
                   {Path("a.h5")});
}

TEST_F(Hdf5Test, WriterErrorsNameTheFile) {
  const std::string missing_folder = Path("no/such/folder/a.h5");
  ExpectInputError([&] { Writer writer(missing_folder); }, {missing_folder});
  ExpectInputError([&] { Writer writer(dir_.string()); }, {dir_.string(), "directory"});
  Writer writer(Path("a.h5"));
  writer.WriteDoubles("x", std::vector<double>{1}, {1});
  ExpectInputError([&] { writer.WriteDoubles("x", std::vector<double>{1}, {1}); },
                   {Path("a.h5"), "'x'", "exists"});
  ExpectInputError([&] { writer.SetAttribute("missing", "k", 1.0); },
                   {Path("a.h5"), "missing"});
  ExpectInputError([&] { writer.CreateGroup("x"); }, {Path("a.h5"), "'x'"});
}

TEST_F(Hdf5Test, MissingDirectoryEmptyAndRandomFilesGiveInputError) {
  const std::string missing = Path("missing.h5");
  ExpectInputError([&] { Reader reader(missing); }, {missing});
  ExpectInputError([&] { Reader reader(dir_.string()); }, {dir_.string(), "directory"});
  WriteRaw(Path("empty.h5"), "");
  ExpectInputError([&] { Reader reader(Path("empty.h5")); }, {Path("empty.h5"), "HDF5"});
  std::string random(4096, '\0');
  std::mt19937 rng(3);
  for (char& c : random) c = static_cast<char>(rng() & 0xff);
  WriteRaw(Path("random.h5"), random);
  ExpectInputError([&] { Reader reader(Path("random.h5")); }, {Path("random.h5"), "HDF5"});
  // The HDF5 signature followed by garbage: passes the signature check, fails to open.
  WriteRaw(Path("signature.h5"), std::string("\x89HDF\r\n\x1a\n", 8) + random);
  ExpectInputError([&] { Reader(Path("signature.h5")).ReadDoubles("x"); },
                   {Path("signature.h5")});
}

TEST_F(Hdf5Test, TruncatedFilesGiveInputError) {
  std::vector<double> data(50 * 1000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::sin(static_cast<double>(i));
  {
    Writer writer(Path("full.h5"));
    writer.WriteDoubles("x", data, {50, 1000});
    writer.SetAttribute("x", "units", "mm");
    writer.Commit();
  }
  const std::string full = ReadRaw(Path("full.h5"));
  for (const std::size_t length : {std::size_t{8}, std::size_t{100}, std::size_t{1000},
                                   full.size() / 3, full.size() / 2, full.size() - 1}) {
    const std::string path = Path("truncated-" + std::to_string(length) + ".h5");
    WriteRaw(path, full.substr(0, length));
    ExpectInputError(
        [&] {
          Reader reader(path);
          reader.ReadDoubles("x");
        },
        {path});
  }
}

TEST_F(Hdf5Test, ForeignHdf5FileWithoutOurDatasetsGivesInputError) {
  {
    Writer writer(Path("foreign.h5"));
    writer.WriteDoubles("something/else", std::vector<double>{1, 2}, {2});
    writer.Commit();
  }
  Reader reader(Path("foreign.h5"));
  ExpectInputError([&] { reader.ReadDoubles("states"); }, {Path("foreign.h5"), "states"});
  ExpectInputError([&] { reader.ReadInts("something/missing"); },
                   {Path("foreign.h5"), "something/missing"});
  ExpectInputError([&] { reader.DatasetShape("states"); }, {Path("foreign.h5"), "states"});
  ExpectInputError([&] { reader.ReadDoubles("something"); }, {Path("foreign.h5"), "something"});
}

TEST_F(Hdf5Test, StringAndCompoundDatasetsAreNotNumbers) {
  // Written with the C API, as another tool would.
  const std::string path = Path("types.h5");
  {
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t two = 2;
    const hid_t space = H5Screate_simple(1, &two, nullptr);
    const hid_t string_type = H5Tcopy(H5T_C_S1);
    H5Tset_size(string_type, 4);
    const hid_t strings = H5Dcreate2(file, "names", string_type, space, H5P_DEFAULT,
                                     H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(strings, string_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, "abcdefgh");
    struct Pair {
      double a;
      int b;
    };
    const Pair pairs[2] = {{1.0, 2}, {3.0, 4}};
    const hid_t compound_type = H5Tcreate(H5T_COMPOUND, sizeof(Pair));
    H5Tinsert(compound_type, "a", HOFFSET(Pair, a), H5T_NATIVE_DOUBLE);
    H5Tinsert(compound_type, "b", HOFFSET(Pair, b), H5T_NATIVE_INT);
    const hid_t compound = H5Dcreate2(file, "pairs", compound_type, space, H5P_DEFAULT,
                                      H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(compound, compound_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, pairs);
    H5Dclose(compound);
    H5Tclose(compound_type);
    H5Dclose(strings);
    H5Tclose(string_type);
    H5Sclose(space);
    H5Fclose(file);
  }
  Reader reader(path);
  ExpectInputError([&] { reader.ReadDoubles("names"); }, {path, "names", "string"});
  ExpectInputError([&] { reader.ReadFloats("pairs"); }, {path, "pairs", "compound"});
  ExpectInputError([&] { reader.ReadInts("pairs"); }, {path, "pairs"});
  EXPECT_EQ(reader.DatasetShape("pairs"), (Shape{2}));
}

}  // namespace
}  // namespace diffeoflow::h5
