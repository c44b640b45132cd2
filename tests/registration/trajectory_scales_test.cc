// trajectory.h5 of a registration: the grids' affines and the affine stage, and HDF5 dimension
// scales on its arrays (read back with the HDF5 C library and its H5DS API, not through
// solvers/hdf5.h).
#include <gtest/gtest.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#include <string>
#include <vector>

#include "registration/outputs/register_outputs.h"
#include "registration/register.h"
#include "tests/registration/test_images.h"
#include "tests/scratch.h"

namespace {

using namespace diffeoflow::registration;

class TrajectoryScales : public diffeoflow::testing::ScratchTest {
 protected:
  TrajectoryScales() : ScratchTest("trajectory_scales_") {}
};

std::vector<double> ReadAll(hid_t file, const char* name) {
  const hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  EXPECT_GE(set, 0) << name;
  const hid_t space = H5Dget_space(set);
  std::vector<double> values(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
  H5Dread(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Sclose(space);
  H5Dclose(set);
  return values;
}

std::string Label(hid_t set, unsigned axis) {
  char buffer[64] = {};
  H5DSget_label(set, axis, buffer, sizeof(buffer));
  return buffer;
}

bool Attached(hid_t file, hid_t set, const char* scale, unsigned axis) {
  const hid_t s = H5Dopen2(file, scale, H5P_DEFAULT);
  const htri_t attached = H5DSis_attached(set, s, axis);
  H5Dclose(s);
  return attached > 0;
}

TEST_F(TrajectoryScales, AffinesAndNamedAxes) {
  Image fixed = diffeoflow::testing::SmoothDisc(32, 15.0, 16.0, 8.0);
  fixed.grid.spacing_mm = {1.5, 0.75, 1.0};
  fixed.grid.origin_mm = {-20.0, 4.0, 2.0};
  fixed.grid.direction = Eigen::Vector3d(-1, 1, 1).asDiagonal();
  Image moving = diffeoflow::testing::SmoothDisc(32, 17.0, 15.0, 7.0);
  moving.grid = fixed.grid;
  RegistrationOptions options;
  options.levels = 1;
  options.iterations = 3;
  const RegistrationResult r = Register(moving, fixed, options);
  WriteRegistrationTrajectory(Path("trajectory.h5"), r);

  const hid_t file = H5Fopen(Path("trajectory.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const std::vector<double> a = ReadAll(file, "fixed_affine");
  ASSERT_EQ(a.size(), 16u);
  EXPECT_DOUBLE_EQ(a[0], -1.5);  // row 0: −1.5 0 0 −20
  EXPECT_DOUBLE_EQ(a[3], -20.0);
  EXPECT_DOUBLE_EQ(a[5], 0.75);
  EXPECT_DOUBLE_EQ(a[7], 4.0);
  EXPECT_DOUBLE_EQ(a[11], 2.0);
  EXPECT_DOUBLE_EQ(a[15], 1.0);
  EXPECT_EQ(ReadAll(file, "moving_affine"), a);
  const std::vector<double> stage = ReadAll(file, "affine");
  // The affine stage ran (the default) and moved the disc: its matrix, row-major.
  ASSERT_TRUE(r.affine_stage_ran);
  EXPECT_GT((r.affine - Eigen::Matrix4d::Identity()).norm(), 0.1);
  ASSERT_EQ(stage.size(), 16u);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(stage[static_cast<std::size_t>(i)], r.affine(i / 4, i % 4));

  // The x scale holds voxel centres in mm along axis 0.
  const std::vector<double> x = ReadAll(file, "x");
  ASSERT_EQ(x.size(), 32u);
  EXPECT_DOUBLE_EQ(x[3], 4.5);

  const hid_t images = H5Dopen2(file, "images", H5P_DEFAULT);
  EXPECT_EQ(Label(images, 0), "time");
  EXPECT_EQ(Label(images, 1), "y");
  EXPECT_EQ(Label(images, 2), "x");
  EXPECT_TRUE(Attached(file, images, "times", 0));
  EXPECT_TRUE(Attached(file, images, "x", 2));
  EXPECT_FALSE(Attached(file, images, "x", 1));
  H5Dclose(images);
  const hid_t states = H5Dopen2(file, "states", H5P_DEFAULT);
  EXPECT_EQ(Label(states, 1), "component");
  EXPECT_EQ(Label(states, 3), "mesh_x");
  EXPECT_TRUE(Attached(file, states, "mesh_y", 2));
  EXPECT_TRUE(Attached(file, states, "component", 1));
  H5Dclose(states);
  const hid_t scale = H5Dopen2(file, "mesh_x", H5P_DEFAULT);
  EXPECT_GT(H5DSis_scale(scale), 0);
  H5Dclose(scale);
  H5Fclose(file);
}

}  // namespace
