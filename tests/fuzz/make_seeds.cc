// Writes the seed corpora of the fuzz targets (tests/fuzz/seeds/<target>/): small valid files of
// every format, produced by our own writers. Built with the fuzz targets; run once by hand:
//   build-fuzz/tests/fuzz/make_seeds tests/fuzz/seeds
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "flows/datasets.h"
#include "registration/image_io.h"
#include "solvers/trajectory.h"

namespace fs = std::filesystem;
using namespace diffeoflow;

namespace {

// The image target reads a format chosen by the first byte: prefix the file with it.
void PrefixCopy(const std::string& from, const std::string& to, unsigned char choice) {
  std::ifstream in(from, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream out(to, std::ios::binary);
  out.put(static_cast<char>(choice));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUTDIR\n");
    return 2;
  }
  const fs::path root = argv[1];
  const fs::path scratch = fs::temp_directory_path() / "diffeoflow-seeds";
  fs::create_directories(scratch);
  for (const char* target : {"fuzz_image", "fuzz_idx", "fuzz_hdf5"}) fs::create_directories(root / target);

  registration::Image image;
  image.grid.dim = 2;
  image.grid.size = {5, 4, 1};
  image.grid.spacing_mm = {0.5, 2.0, 1.0};
  image.data = Eigen::VectorXd::LinSpaced(20, 0.0, 1.0);
  const char* extensions[] = {".nii", ".nii.gz", ".png", ".npy"};
  for (unsigned char i = 0; i < 4; ++i) {
    const std::string file = (scratch / (std::string("image") + extensions[i])).string();
    registration::ImageWriteOptions options;
    if (i == 2) options.rescale_to_type_range = true;
    registration::WriteImage(file, image, options);
    PrefixCopy(file, (root / "fuzz_image" / ("image" + std::to_string(i))).string(), i);
  }
  registration::Image volume;
  volume.grid.dim = 3;
  volume.grid.size = {3, 3, 2};
  volume.data = Eigen::VectorXd::LinSpaced(18, -1.0, 1.0);
  const std::string volume_file = (scratch / "volume.nii").string();
  registration::WriteImage(volume_file, volume, registration::ElementType::kInt16);
  PrefixCopy(volume_file, (root / "fuzz_image" / "volume_int16").string(), 0);
  registration::VectorField field;
  field.grid = image.grid;
  field.data = Eigen::VectorXd::LinSpaced(40, -2.0, 2.0);
  const std::string field_file = (scratch / "field.nii").string();
  registration::WriteVectorField(field_file, field);
  PrefixCopy(field_file, (root / "fuzz_image" / "field").string(), 4);

  flows::IdxArray idx;
  idx.dims = {2, 3, 3};
  for (int i = 0; i < 18; ++i) idx.data.push_back(static_cast<std::uint8_t>(i * 13));
  flows::WriteIdx((root / "fuzz_idx" / "images.idx").string(), idx);
  flows::WriteIdx((root / "fuzz_idx" / "images.idx.gz").string(), idx);

  Trajectory trajectory;
  trajectory.times = {0.0, 0.5, 1.0};
  for (double t : trajectory.times) trajectory.states.push_back(Eigen::VectorXd::Constant(4, t));
  trajectory.state_shape = {2, 2};
  trajectory.options["solver"] = "rk4";
  WriteTrajectory((root / "fuzz_hdf5" / "trajectory.h5").string(), trajectory);
  fs::remove_all(scratch);
  return 0;
}
