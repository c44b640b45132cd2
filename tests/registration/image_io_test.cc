#include "registration/image_io.h"

#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>

#include "registration/image_ops.h"
#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

namespace fs = std::filesystem;

class ImageIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("diffeoflow_image_io_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  void WriteBytes(const std::string& name, const std::string& bytes) const {
    std::ofstream out(Path(name), std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  std::string ReadBytes(const std::string& name) const {
    std::ifstream in(Path(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  // No temporary files left behind in the folder, only `expected` entries.
  void ExpectOnlyFiles(std::size_t expected) const {
    std::size_t count = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir_)) ++count;
    EXPECT_EQ(count, expected);
  }

  fs::path dir_;
};

// An image with distinct values everywhere and a non-trivial geometry representable in float.
Image MakeImage(int dim, int nx, int ny, int nz, unsigned seed = 1) {
  Image image;
  image.grid.dim = dim;
  image.grid.size = {nx, ny, dim == 3 ? nz : 1};
  image.grid.spacing_mm = {0.5, 1.25, dim == 3 ? 2.0 : 1.0};
  image.grid.origin_mm = {-90.0, 126.5, -72.25};
  image.grid.direction << -1, 0, 0, 0, 1, 0, 0, 0, 1;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-100.0f, 100.0f);
  image.data.resize(image.grid.voxels());
  // Float-representable values so that a float32 file reproduces them exactly.
  for (Eigen::Index i = 0; i < image.data.size(); ++i) image.data[i] = u(rng);
  return image;
}

void ExpectSameGeometry(const Grid& a, const Grid& b, double tol = 0.0) {
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.size, b.size);
  for (int d = 0; d < a.dim; ++d) {
    EXPECT_NEAR(a.spacing_mm[d], b.spacing_mm[d], tol) << "axis " << d;
    EXPECT_NEAR(a.origin_mm[d], b.origin_mm[d], tol) << "axis " << d;
  }
  EXPECT_LE((a.direction - b.direction).cwiseAbs().maxCoeff(), tol + 1e-7);
}

template <typename Fn>
void ExpectInputErrorNaming(Fn&& fn, const std::string& path, const std::string& fragment = "") {
  try {
    fn();
    FAIL() << "expected InputError for " << path;
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    if (!fragment.empty()) {
      EXPECT_NE(what.find(fragment), std::string::npos) << what;
    }
  }
}

TEST_F(ImageIoTest, NiftiRoundTripKeepsValuesSpacingAndOrientation3D) {
  const Image image = MakeImage(3, 7, 5, 4);
  for (const std::string name : {"a.nii", "a.nii.gz"}) {
    WriteImage(Path(name), image);
    const Image back = ReadImage(Path(name));
    ExpectSameGeometry(image.grid, back.grid);
    EXPECT_EQ(back.source_type, ElementType::kFloat32);
    EXPECT_EQ((back.data - image.data).cwiseAbs().maxCoeff(), 0.0) << name;
  }
  ExpectOnlyFiles(2);
}

TEST_F(ImageIoTest, NiftiRoundTripRotatedDirection2DAndFloat64) {
  Image image = MakeImage(2, 9, 6, 1);
  const double angle = 0.3;
  image.grid.direction << std::cos(angle), -std::sin(angle), 0, std::sin(angle), std::cos(angle),
      0, 0, 0, 1;
  image.data[3] = 1.0 / 3.0;  // needs double precision
  WriteImage(Path("r.nii.gz"), image, ElementType::kFloat64);
  const Image back = ReadImage(Path("r.nii.gz"));
  ExpectSameGeometry(image.grid, back.grid, 1e-6);  // sform is stored in single precision
  EXPECT_EQ(back.grid.dim, 2);
  EXPECT_EQ(back.source_type, ElementType::kFloat64);
  EXPECT_EQ(back.data[3], 1.0 / 3.0);
  EXPECT_EQ((back.data - image.data).cwiseAbs().maxCoeff(), 0.0);
}

TEST_F(ImageIoTest, LabelMapsKeepTheirIntegerType) {
  Image labels = MakeImage(3, 6, 5, 3);
  for (Eigen::Index i = 0; i < labels.data.size(); ++i) labels.data[i] = (i * 37) % 117;
  for (const ElementType type : {ElementType::kUint8, ElementType::kInt16, ElementType::kInt32,
                                 ElementType::kUint16}) {
    WriteImage(Path("labels.nii.gz"), labels, type);
    Image back = ReadImage(Path("labels.nii.gz"));
    EXPECT_EQ(back.source_type, type) << ElementTypeName(type);
    EXPECT_EQ(back.data, labels.data);
    // apply --interpolation nearest: warp by the identity and write in the source type.
    const Image warped = WarpImage(back, IdentityPositionField(back.grid), Interpolation::kNearest);
    ImageWriteOptions keep;
    keep.keep_source_type = true;
    WriteImage(Path("warped.nii"), warped, keep);
    const Image again = ReadImage(Path("warped.nii"));
    EXPECT_EQ(again.source_type, type);
    EXPECT_EQ(again.data, labels.data);
  }
}

// A big-endian NIfTI-1 file written by hand: int16 values, pixdim spacing, no qform/sform.
TEST_F(ImageIoTest, ReadsBigEndianNifti) {
  std::string h(352, '\0');
  auto put16 = [&](std::size_t at, std::int16_t v) {
    h[at] = static_cast<char>((v >> 8) & 0xff);
    h[at + 1] = static_cast<char>(v & 0xff);
  };
  auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (int b = 0; b < 4; ++b) h[at + b] = static_cast<char>((v >> (24 - 8 * b)) & 0xff);
  };
  auto putf = [&](std::size_t at, float f) {
    std::uint32_t v;
    std::memcpy(&v, &f, 4);
    put32(at, v);
  };
  put32(0, 348);
  const std::int16_t dims[8] = {3, 4, 3, 2, 1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) put16(40 + 2 * i, dims[i]);
  put16(70, 4);   // DT_INT16
  put16(72, 16);  // bitpix
  const float pixdim[4] = {1.0f, 0.5f, 2.0f, 3.0f};
  for (int i = 0; i < 4; ++i) putf(76 + 4 * i, pixdim[i]);
  putf(108, 352.0f);
  h.replace(344, 4, std::string("n+1\0", 4));
  std::string data;
  for (int v = 0; v < 24; ++v) {
    const std::int16_t x = static_cast<std::int16_t>(300 * v - 3000);
    data.push_back(static_cast<char>((x >> 8) & 0xff));
    data.push_back(static_cast<char>(x & 0xff));
  }
  WriteBytes("be.nii", h + data);
  const Image image = ReadImage(Path("be.nii"));
  EXPECT_EQ(image.grid.dim, 3);
  EXPECT_EQ(image.grid.size, (std::array<int, 3>{4, 3, 2}));
  EXPECT_EQ(image.grid.spacing_mm, (std::array<double, 3>{0.5, 2.0, 3.0}));
  EXPECT_EQ(image.source_type, ElementType::kInt16);
  for (int v = 0; v < 24; ++v) EXPECT_EQ(image.data[v], 300.0 * v - 3000.0);
}

TEST_F(ImageIoTest, IntegerWritesRoundAndClamp) {
  Image image = MakeImage(2, 4, 1, 1);
  image.data << -3.0, 2.4, 2.6, 300.0;
  WriteImage(Path("c.nii"), image, ElementType::kUint8);
  const Image back = ReadImage(Path("c.nii"));
  EXPECT_EQ(back.data, Eigen::Vector4d(0.0, 2.0, 3.0, 255.0));
}

TEST_F(ImageIoTest, VectorFieldRoundTripIsVectorLast) {
  VectorField field;
  field.grid = MakeImage(3, 5, 4, 3).grid;
  field.data = Eigen::VectorXd::LinSpaced(3 * field.grid.voxels(), -2.0, 2.0).cast<float>().cast<double>();
  WriteVectorField(Path("u.nii.gz"), field);
  const VectorField back = ReadVectorField(Path("u.nii.gz"));
  ExpectSameGeometry(field.grid, back.grid);
  EXPECT_EQ(back.data, field.data);
  // A vector field is not a scalar image.
  ExpectInputErrorNaming([&] { ReadImage(Path("u.nii.gz")); }, Path("u.nii.gz"),
                         "expected a 2-D or 3-D scalar image");
  // And a scalar image is not a vector field.
  WriteImage(Path("s.nii"), MakeImage(2, 4, 4, 1));
  ExpectInputErrorNaming([&] { ReadVectorField(Path("s.nii")); }, Path("s.nii"),
                         "expected a vector field");

  VectorField field2;
  field2.grid = MakeImage(2, 6, 3, 1).grid;
  field2.data = Eigen::VectorXd::LinSpaced(2 * field2.grid.voxels(), 0.0, 5.0);
  WriteVectorField(Path("u2.nii"), field2, ElementType::kFloat64);
  const VectorField back2 = ReadVectorField(Path("u2.nii"));
  EXPECT_EQ(back2.grid.dim, 2);
  EXPECT_EQ(back2.data, field2.data);
}

TEST_F(ImageIoTest, PngRoundTrip8And16Bit) {
  Image image;
  image.grid.size = {13, 7, 1};
  image.data.resize(image.grid.voxels());
  for (Eigen::Index i = 0; i < image.data.size(); ++i) image.data[i] = (i * 29) % 256;
  WriteImage(Path("g8.png"), image);
  Image back = ReadImage(Path("g8.png"));
  EXPECT_EQ(back.grid.size, image.grid.size);
  EXPECT_EQ(back.grid.spacing_mm[0], 1.0);
  EXPECT_EQ(back.source_type, ElementType::kUint8);
  EXPECT_EQ(back.data, image.data);

  for (Eigen::Index i = 0; i < image.data.size(); ++i) image.data[i] = (i * 4099) % 65536;
  WriteImage(Path("g16.png"), image, ElementType::kUint16);
  back = ReadImage(Path("g16.png"));
  EXPECT_EQ(back.source_type, ElementType::kUint16);
  EXPECT_EQ(back.data, image.data);

  // A [0, 1] image written with rescaling spans the full 8-bit range.
  Image unit = image;
  unit.data = Eigen::VectorXd::LinSpaced(unit.data.size(), 0.0, 1.0);
  ImageWriteOptions rescale;
  rescale.rescale_to_type_range = true;
  WriteImage(Path("unit.png"), unit, rescale);
  back = ReadImage(Path("unit.png"));
  EXPECT_EQ(back.data.minCoeff(), 0.0);
  EXPECT_EQ(back.data.maxCoeff(), 255.0);

  ExpectInputErrorNaming([&] { WriteImage(Path("v.png"), MakeImage(3, 4, 4, 3)); }, Path("v.png"),
                         "2-D");
}

TEST_F(ImageIoTest, ColourPngIsConvertedToGrey) {
  // 4 × 1 RGB pixels: three grey ones (r = g = b) and a pure red one.
  const unsigned char rgb[12] = {0, 0, 0, 77, 77, 77, 255, 255, 255, 255, 0, 0};
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = 4;
  png.height = 1;
  png.format = PNG_FORMAT_RGB;
  ASSERT_TRUE(png_image_write_to_file(&png, Path("rgb.png").c_str(), 0, rgb, 0, nullptr));
  const Image image = ReadImage(Path("rgb.png"));
  EXPECT_EQ(image.grid.size, (std::array<int, 3>{4, 1, 1}));
  EXPECT_EQ(image.data[0], 0.0);
  EXPECT_EQ(image.data[1], 77.0);
  EXPECT_EQ(image.data[2], 255.0);
  EXPECT_GT(image.data[3], 0.0);
  EXPECT_LT(image.data[3], 255.0);
}

TEST_F(ImageIoTest, NpyRoundTripAndLayout) {
  const Image image2 = MakeImage(2, 5, 3, 1);
  WriteImage(Path("a.npy"), image2);
  Image back = ReadImage(Path("a.npy"));
  EXPECT_EQ(back.grid.dim, 2);
  EXPECT_EQ(back.grid.size, image2.grid.size);
  EXPECT_EQ(back.grid.spacing_mm[1], 1.0);  // .npy carries no geometry
  EXPECT_EQ(back.data, image2.data);
  EXPECT_EQ(back.source_type, ElementType::kFloat64);
  // The header says shape (ny, nx) = (3, 5), C order, float64, and the data start at a multiple of 64.
  const std::string bytes = ReadBytes("a.npy");
  EXPECT_NE(bytes.find("'shape': (3, 5)"), std::string::npos);
  EXPECT_NE(bytes.find("'fortran_order': False"), std::string::npos);
  EXPECT_EQ((bytes.size() - 8 * 15) % 64, 0u);

  const Image image3 = MakeImage(3, 4, 3, 2);
  WriteImage(Path("b.npy"), image3, ElementType::kFloat32);
  back = ReadImage(Path("b.npy"));
  EXPECT_EQ(back.grid.size, image3.grid.size);
  EXPECT_EQ(back.source_type, ElementType::kFloat32);
  EXPECT_EQ(back.data, image3.data);
  EXPECT_NE(ReadBytes("b.npy").find("'shape': (2, 3, 4)"), std::string::npos);
}

// A hand-made .npy file (as numpy would write it) with the given header dictionary and payload.
std::string NpyFile(const std::string& dict, const std::string& payload) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header + payload;
}

TEST_F(ImageIoTest, NpyReadsIntegerAndBigEndianTypes) {
  // (2, 3) int16 little-endian: a[j, i] = 10 j + i.
  std::string payload;
  for (int j = 0; j < 2; ++j) {
    for (int i = 0; i < 3; ++i) {
      const std::int16_t v = static_cast<std::int16_t>(10 * j + i - 5);
      payload.push_back(static_cast<char>(v & 0xff));
      payload.push_back(static_cast<char>((v >> 8) & 0xff));
    }
  }
  WriteBytes("i.npy", NpyFile("{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }", payload));
  Image image = ReadImage(Path("i.npy"));
  EXPECT_EQ(image.source_type, ElementType::kInt16);
  EXPECT_EQ(image.grid.size[0], 3);
  EXPECT_EQ(image.grid.size[1], 2);
  EXPECT_EQ(image.data[image.grid.index(2, 1)], 7.0);
  EXPECT_EQ(image.data[image.grid.index(0, 0)], -5.0);

  // Big-endian float64 value 1.5 at every element of a (2, 2) array.
  std::string be;
  for (int e = 0; e < 4; ++e) be += std::string("\x3f\xf8\x00\x00\x00\x00\x00\x00", 8);
  WriteBytes("be.npy", NpyFile("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2), }", be));
  image = ReadImage(Path("be.npy"));
  EXPECT_EQ(image.data, Eigen::Vector4d::Constant(1.5));
}

TEST_F(ImageIoTest, BadInputsGiveInputErrorNamingTheFile) {
  const std::string good_dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
  const std::string payload(32, '\0');
  WriteBytes("fortran.npy",
             NpyFile("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", payload));
  WriteBytes("complex.npy",
             NpyFile("{'descr': '<c16', 'fortran_order': False, 'shape': (2, 2), }", payload + payload));
  WriteBytes("oned.npy", NpyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", payload));
  WriteBytes("empty_array.npy",
             NpyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }", ""));
  WriteBytes("truncated.npy", NpyFile(good_dict, payload.substr(0, 20)));
  WriteBytes("huge.npy", NpyFile("{'descr': '<f8', 'fortran_order': False, 'shape': "
                                 "(4294967296, 4294967296), }", payload));
  WriteBytes("nan.npy", NpyFile(good_dict, std::string(24, '\0') +
                                               std::string("\x00\x00\x00\x00\x00\x00\xf8\x7f", 8)));
  WriteBytes("empty.nii", "");
  WriteBytes("empty.png", "");
  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  for (const std::string name : {"random.nii", "random.nii.gz", "random.png", "random.npy"}) {
    WriteBytes(name, noise);
  }
  // A valid NIfTI, then truncated and corrupted copies.
  WriteImage(Path("good.nii"), MakeImage(3, 8, 8, 8));
  const std::string nifti = ReadBytes("good.nii");
  WriteBytes("cut.nii", nifti.substr(0, nifti.size() / 2));
  WriteBytes("header_only.nii", nifti.substr(0, 200));
  WriteImage(Path("good.nii.gz"), MakeImage(3, 8, 8, 8));
  const std::string gz = ReadBytes("good.nii.gz");
  WriteBytes("cut.nii.gz", gz.substr(0, gz.size() / 2));
  std::string big_dims = nifti;
  big_dims[42] = '\xff';  // dim[1] = 0x7fff-ish: far more data than present
  big_dims[43] = '\x7f';
  WriteBytes("big_dims.nii", big_dims);
  std::string complex = nifti;
  complex[70] = 32;  // DT_COMPLEX64
  complex[71] = 0;
  WriteBytes("complex.nii", complex);
  Image nan_image = MakeImage(2, 3, 3, 1);
  nan_image.data[4] = std::numeric_limits<double>::quiet_NaN();
  WriteImage(Path("nan.nii.gz"), nan_image);
  Image grey;
  grey.grid.size = {16, 16, 1};
  grey.data = Eigen::VectorXd::LinSpaced(256, 0.0, 255.0);
  WriteImage(Path("good.png"), grey);
  const std::string png = ReadBytes("good.png");
  WriteBytes("cut.png", png.substr(0, png.size() - 20));
  fs::create_directories(Path("folder.nii"));

  struct Case {
    std::string name;
    std::string fragment;
  };
  const Case cases[] = {
      {"missing.nii.gz", "no such file"},
      {"folder.nii", "directory"},
      {"empty.nii", "empty"},
      {"empty.png", "empty"},
      {"random.nii", ""},
      {"random.nii.gz", ""},
      {"random.png", "not a PNG"},
      {"random.npy", "not a .npy"},
      {"cut.nii", "truncated"},
      {"header_only.nii", ""},
      {"cut.nii.gz", ""},
      {"big_dims.nii", "truncated"},
      {"complex.nii", "complex"},
      {"nan.nii.gz", "NaN"},
      {"cut.png", "PNG"},
      {"fortran.npy", "Fortran"},
      {"complex.npy", "complex"},
      {"oned.npy", "1 dimension"},
      {"empty_array.npy", "empty"},
      {"truncated.npy", "truncated"},
      {"huge.npy", "too large"},
      {"nan.npy", "NaN"},
      {"image.tiff", "unknown image format"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ExpectInputErrorNaming([&] { ReadImage(Path(c.name)); }, Path(c.name), c.fragment);
  }
  // The finite check can be switched off.
  ImageReadOptions lenient;
  lenient.require_finite = false;
  EXPECT_TRUE(std::isnan(ReadImage(Path("nan.npy"), lenient).data[3]));
  // The argument name is part of the message.
  ImageReadOptions named;
  named.argument = "--fixed";
  ExpectInputErrorNaming([&] { ReadImage(Path("missing.nii"), named); }, "--fixed");
}

// A small mutation fuzzer: valid files with random byte changes and truncations either read or
// throw InputError naming the file — never anything else, never a crash (ASan checks the rest).
TEST_F(ImageIoTest, CorruptedFilesNeverCrash) {
  Image image = MakeImage(3, 6, 5, 4);
  Image flat = MakeImage(2, 9, 7, 1);
  flat.data = flat.data.cwiseAbs();
  WriteImage(Path("seed.nii"), image, ElementType::kInt16);
  WriteImage(Path("seed.nii.gz"), image);
  WriteImage(Path("seed.png"), flat, ElementType::kUint16);
  WriteImage(Path("seed.npy"), image);
  VectorField field{image.grid, Eigen::VectorXd::Ones(3 * image.grid.voxels())};
  WriteVectorField(Path("seedv.nii"), field);
  std::mt19937 rng(2024);
  int read_ok = 0, rejected = 0;
  for (const std::string seed : {"seed.nii", "seed.nii.gz", "seed.png", "seed.npy", "seedv.nii"}) {
    const std::string bytes = ReadBytes(seed);
    const std::string ext = seed.substr(seed.find('.'));
    for (int trial = 0; trial < 150; ++trial) {
      std::string mutated = bytes;
      const int kind = trial % 3;
      if (kind == 0 || kind == 2) {
        const int flips = 1 + static_cast<int>(rng() % 8);
        // Mostly in the header, where sizes and types live.
        const std::size_t region = kind == 0 ? std::min<std::size_t>(mutated.size(), 400) : mutated.size();
        for (int f = 0; f < flips; ++f) mutated[rng() % region] = static_cast<char>(rng());
      }
      if (kind >= 1) mutated.resize(rng() % (mutated.size() + 1));
      std::string name = std::to_string(trial);
      name.insert(0, 1, 'm');
      name.append(ext);
      WriteBytes(name, mutated);
      try {
        if (seed == "seedv.nii") {
          ReadVectorField(Path(name));
        } else {
          ReadImage(Path(name));
        }
        ++read_ok;
      } catch (const InputError& e) {
        ++rejected;
        EXPECT_NE(std::string(e.what()).find(Path(name)), std::string::npos) << e.what();
      }
      fs::remove(Path(name));
    }
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(read_ok, 0);
}

TEST_F(ImageIoTest, WritesToAMissingFolderFailCleanly) {
  const Image image = MakeImage(2, 4, 4, 1);
  for (const std::string name : {"nowhere/a.nii.gz", "nowhere/a.nii", "nowhere/a.png",
                                 "nowhere/a.npy"}) {
    EXPECT_THROW(WriteImage(Path(name), image), InputError) << name;
  }
  ExpectOnlyFiles(0);
}

TEST(ImageIoRealData, ReadsTheMricronTemplates) {
  const std::string brain = "/usr/share/mricron/templates/ch2bet.nii.gz";
  const std::string labels = "/usr/share/mricron/templates/aal.nii.gz";
  if (!fs::exists(brain) || !fs::exists(labels)) GTEST_SKIP() << "mricron-data not installed";
  const Image b = ReadImage(brain);
  EXPECT_EQ(b.grid.dim, 3);
  EXPECT_EQ(b.grid.size, (std::array<int, 3>{181, 217, 181}));
  for (int d = 0; d < 3; ++d) EXPECT_NEAR(b.grid.spacing_mm[d], 1.0, 1e-6);
  EXPECT_GT(b.data.maxCoeff(), 0.0);
  const Image a = ReadImage(labels);
  EXPECT_EQ(a.grid.size, b.grid.size);
  EXPECT_TRUE(IsIntegerType(a.source_type)) << ElementTypeName(a.source_type);
  EXPECT_EQ(a.data.minCoeff(), 0.0);
  EXPECT_GE(a.data.maxCoeff(), 90.0);  // AAL has 116 regions (codes up to 9170 in some versions)
  for (Eigen::Index i = 0; i < a.data.size(); i += 997) EXPECT_EQ(a.data[i], std::round(a.data[i]));
  // The two templates share one world space.
  EXPECT_NEAR(a.grid.origin_mm[0], b.grid.origin_mm[0], 1e-4);
}

}  // namespace
}  // namespace diffeoflow::registration
