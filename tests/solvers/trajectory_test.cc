#include "solvers/trajectory.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "solvers/errors.h"
#include "solvers/hdf5.h"
#include "tests/scratch.h"

namespace diffeoflow {
namespace {

namespace fs = std::filesystem;

class TrajectoryTest : public testing::ScratchTest {
 protected:
  TrajectoryTest() : ScratchTest("diffeoflow-trajectory-") {}
};

using testing::ExpectInputError;

bool SameBits(const Vector& a, const Vector& b) {
  return a.size() == b.size() &&
         (a.size() == 0 ||
          std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(double)) ==
              0);
}

Trajectory RandomTrajectory(std::size_t steps, const std::vector<std::uint64_t>& state_shape,
                            std::size_t state_size) {
  std::mt19937 rng(11);
  std::normal_distribution<double> normal;
  Trajectory trajectory;
  trajectory.kind = "landmarks";
  trajectory.state_shape = state_shape;
  trajectory.time_units = "s";
  trajectory.state_units = "mm";
  for (std::size_t i = 0; i < steps; ++i) {
    trajectory.times.push_back(0.1 * static_cast<double>(i) / 3.0);
    Vector state(static_cast<Eigen::Index>(state_size));
    for (Eigen::Index j = 0; j < state.size(); ++j) state[j] = normal(rng);
    trajectory.states.push_back(state);
  }
  trajectory.parameters = Vector::Random(5);
  trajectory.options = {{"solver", "rk4"}, {"dt", "0.03333333333333333"}, {"note", ""}};
  return trajectory;
}

TEST_F(TrajectoryTest, RoundTripIsBitForBit) {
  const Trajectory written = RandomTrajectory(7, {4, 2}, 8);
  WriteTrajectory(Path("t.h5"), written);
  const Trajectory read = ReadTrajectory(Path("t.h5"));
  EXPECT_EQ(read.kind, written.kind);
  ASSERT_EQ(read.times.size(), written.times.size());
  EXPECT_EQ(std::memcmp(read.times.data(), written.times.data(),
                        written.times.size() * sizeof(double)),
            0);
  ASSERT_EQ(read.states.size(), written.states.size());
  for (std::size_t i = 0; i < written.states.size(); ++i) {
    EXPECT_TRUE(SameBits(read.states[i], written.states[i])) << "state " << i;
  }
  EXPECT_EQ(read.state_shape, written.state_shape);
  EXPECT_EQ(read.time_units, "s");
  EXPECT_EQ(read.state_units, "mm");
  EXPECT_TRUE(SameBits(read.parameters, written.parameters));
  EXPECT_EQ(read.options, written.options);
}

TEST_F(TrajectoryTest, StatesAreStoredAsTimeByStateShape) {
  WriteTrajectory(Path("t.h5"), RandomTrajectory(3, {2, 3}, 6));
  h5::Reader reader(Path("t.h5"));
  EXPECT_EQ(reader.DatasetShape("states"), (h5::Shape{3, 2, 3}));
  EXPECT_EQ(reader.DatasetShape("times"), (h5::Shape{3}));
  EXPECT_EQ(reader.StringAttribute("/", "format"), "diffeoflow-trajectory");
  EXPECT_EQ(reader.IntAttribute("/", "version"), 1);
  EXPECT_EQ(reader.StringAttribute("/", "kind"), "landmarks");
  EXPECT_EQ(reader.StringAttribute("options", "solver"), "rk4");
}

TEST_F(TrajectoryTest, EmptyStateShapeMeansOneAxisAndParametersAreOptional) {
  Trajectory written = RandomTrajectory(4, {}, 5);
  written.parameters.resize(0);
  written.options.clear();
  WriteTrajectory(Path("t.h5"), written);
  const Trajectory read = ReadTrajectory(Path("t.h5"));
  EXPECT_EQ(read.state_shape, (std::vector<std::uint64_t>{5}));
  EXPECT_EQ(read.parameters.size(), 0);
  EXPECT_TRUE(read.options.empty());
  EXPECT_FALSE(h5::Reader(Path("t.h5")).Has("parameters"));
  for (std::size_t i = 0; i < written.states.size(); ++i) {
    EXPECT_TRUE(SameBits(read.states[i], written.states[i]));
  }
}

TEST_F(TrajectoryTest, NoTimesRoundTrips) {
  Trajectory written;
  written.state_shape = {3};
  WriteTrajectory(Path("t.h5"), written);
  const Trajectory read = ReadTrajectory(Path("t.h5"));
  EXPECT_TRUE(read.times.empty());
  EXPECT_TRUE(read.states.empty());
  EXPECT_EQ(read.state_shape, (std::vector<std::uint64_t>{3}));
  EXPECT_EQ(read.kind, "flow");
}

TEST_F(TrajectoryTest, WriteRejectsInconsistentSizesAndLeavesNoFile) {
  Trajectory fewer_states = RandomTrajectory(3, {2}, 2);
  fewer_states.states.pop_back();
  ExpectInputError([&] { WriteTrajectory(Path("t.h5"), fewer_states); },
                   {Path("t.h5"), "3 times", "2 states"});
  Trajectory wrong_size = RandomTrajectory(3, {2, 2}, 4);
  wrong_size.states[1] = Vector::Zero(3);
  ExpectInputError([&] { WriteTrajectory(Path("t.h5"), wrong_size); },
                   {Path("t.h5"), "state 1", "(2, 2)"});
  ExpectInputError([&] { WriteTrajectory(Path("missing/t.h5"), RandomTrajectory(2, {1}, 1)); },
                   {Path("missing/t.h5")});
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(TrajectoryTest, ReadRejectsFilesThatAreNotTrajectories) {
  ExpectInputError([&] { ReadTrajectory(Path("missing.h5")); }, {Path("missing.h5")});
  {
    std::ofstream out(Path("text.h5"));
    out << "not hdf5 at all\n";
  }
  ExpectInputError([&] { ReadTrajectory(Path("text.h5")); }, {Path("text.h5")});
  {
    h5::Writer writer(Path("other.h5"));
    writer.WriteDoubles("states", std::vector<double>{1, 2}, {1, 2});
    writer.SetAttribute("/", "format", "something-else");
    writer.Commit();
  }
  ExpectInputError([&] { ReadTrajectory(Path("other.h5")); },
                   {Path("other.h5"), "not a diffeoflow trajectory"});
  {
    h5::Writer writer(Path("bare.h5"));
    writer.WriteDoubles("x", std::vector<double>{1}, {1});
    writer.Commit();
  }
  ExpectInputError([&] { ReadTrajectory(Path("bare.h5")); }, {Path("bare.h5"), "format"});
}

TEST_F(TrajectoryTest, ReadRejectsBadShapesAndVersions) {
  const auto write = [&](const std::string& name, std::int64_t version, const h5::Shape& times,
                         const h5::Shape& states) {
    h5::Writer writer(Path(name));
    writer.SetAttribute("/", "format", "diffeoflow-trajectory");
    writer.SetAttribute("/", "version", version);
    writer.SetAttribute("/", "kind", "flow");
    writer.WriteDoubles("times", std::vector<double>(times[0] * (times.size() > 1 ? times[1] : 1)),
                        times);
    std::uint64_t count = 1;
    for (auto d : states) count *= d;
    writer.WriteDoubles("states", std::vector<double>(count), states);
    writer.Commit();
  };
  write("version.h5", 2, {3}, {3, 2});
  ExpectInputError([&] { ReadTrajectory(Path("version.h5")); }, {Path("version.h5"), "version"});
  write("mismatch.h5", 1, {3}, {4, 2});
  ExpectInputError([&] { ReadTrajectory(Path("mismatch.h5")); }, {Path("mismatch.h5"), "states"});
  write("rank.h5", 1, {3}, {3});
  ExpectInputError([&] { ReadTrajectory(Path("rank.h5")); }, {Path("rank.h5"), "states"});
  write("times.h5", 1, {3, 2}, {3, 2});
  ExpectInputError([&] { ReadTrajectory(Path("times.h5")); }, {Path("times.h5"), "times"});
  write("good.h5", 1, {3}, {3, 2});
  EXPECT_EQ(ReadTrajectory(Path("good.h5")).states.size(), 3u);
}

}  // namespace
}  // namespace diffeoflow
