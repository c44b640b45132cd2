// `mpirun -np 2 diffeoflow atlas` (registration/atlas.h over mpi/'s Workers) against the serial
// command: the template and every subject's files are the same bytes for one and two ranks (the
// momenta and intensities are summed in subject order, Workers::SumInItemOrder), each rank writes
// its own subjects, a subject that cannot be read on rank 1 stops both ranks with its name, and
// more ranks than subjects are refused.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/apps/atlas_population.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;
using diffeoflow::testing::CliRun;
using diffeoflow::testing::FileBytes;

const bool kRootAllowed = diffeoflow::testing::AllowOpenMpiAsRoot();

class AtlasMpi : public diffeoflow::testing::CliTest {
 protected:
  AtlasMpi() : CliTest("atlas", "diffeoflow_atlas_mpi_") {}

  std::string P(const std::string& name) const { return (dir_ / name).string(); }

  // `diffeoflow atlas <args>` on `ranks` ranks.
  CliRun RunMpi(int ranks, const std::string& args) {
    return diffeoflow::testing::RunCommand(std::string(DIFFEOFLOW_MPIEXEC_NP) + " " +
                                               std::to_string(ranks) + " " + DIFFEOFLOW_CLI +
                                               " atlas " + args,
                                           dir_);
  }

  // `count` 32² subjects of a C shape under antithetic random warps, as s0 … .nii.gz.
  std::string WritePopulation(int count) {
    return diffeoflow::testing::WriteAtlasPopulation(dir_, count, 5);
  }

  // Bit-identity across rank counts needs the same threads per rank (shooting's per-thread sums).
  static std::string Fast() {
    return " --affine none --levels 1 --registration-iterations 5 --steps 3 --threads 1"
           " --iterations 2 --quiet";
  }

  static nlohmann::json Metrics(const std::string& dir) {
    std::ifstream in(dir + "/metrics.json");
    return nlohmann::json::parse(in);
  }
};

TEST_F(AtlasMpi, TwoRanksGiveTheSerialTemplateAndSubjectFilesBitForBit) {
  ASSERT_TRUE(kRootAllowed);
  // Five subjects of an antithetic population of six: rank 0 owns 0, 2, 4 and rank 1 owns 1, 3,
  // an uneven split.
  WritePopulation(6);
  std::string images;
  for (const char* name : {"s0.nii.gz", "s1.nii.gz", "s2.nii.gz", "s3.nii.gz", "s4.nii.gz"}) {
    images.append(" ").append(P(name));
  }
  const CliRun one = Run("--images" + images + " --out " + P("serial") + Fast());
  ASSERT_EQ(one.status, 0) << one.output();
  const CliRun two = RunMpi(2, "--images" + images + " --out " + P("two") + Fast());
  ASSERT_EQ(two.status, 0) << two.output();

  const std::string template_serial = FileBytes(P("serial/template.nii.gz"));
  ASSERT_FALSE(template_serial.empty());
  EXPECT_EQ(template_serial, FileBytes(P("two/template.nii.gz")));
  const nlohmann::json a = Metrics(P("serial")), b = Metrics(P("two"));
  EXPECT_EQ(a["workers"], 1);
  EXPECT_EQ(b["workers"], 2);
  ASSERT_EQ(a["rounds"].size(), b["rounds"].size());
  for (std::size_t r = 0; r < a["rounds"].size(); ++r) {
    EXPECT_EQ(a["rounds"][r]["mean_momentum_norm"], b["rounds"][r]["mean_momentum_norm"]) << r;
    EXPECT_EQ(a["rounds"][r]["mean_ssd"], b["rounds"][r]["mean_ssd"]) << r;
  }
  // Every subject's files, written by the rank that owns it, equal the serial run's.
  ASSERT_EQ(a["subjects"].size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    const std::string folder = a["subjects"][i]["folder"].get<std::string>();
    for (const char* file : {"displacement.nii.gz", "momentum.nii.gz", "jacobian.nii.gz"}) {
      const std::string serial_file = P("serial/" + folder + "/" + file);
      ASSERT_TRUE(fs::exists(serial_file)) << serial_file;
      EXPECT_EQ(FileBytes(serial_file), FileBytes(P("two/" + folder + "/" + file)))
          << folder << file;
    }
  }
}

TEST_F(AtlasMpi, AnUnreadableSubjectOnRankOneStopsBothNamingIt) {
  ASSERT_TRUE(kRootAllowed);
  WritePopulation(4);
  std::ofstream(P("broken.nii.gz")) << "not an image";
  // Subject 3 (rank 1's second) cannot be read.
  std::string images;
  for (const char* name : {"s0.nii.gz", "s1.nii.gz", "s2.nii.gz", "broken.nii.gz"}) {
    images.append(" ").append(P(name));
  }
  const CliRun run = RunMpi(2, "--images" + images + " --out " + P("out") + Fast());
  EXPECT_EQ(run.status, 2) << run.output();
  EXPECT_NE(run.err.find("subject 3"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("broken.nii.gz"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(P("out/template.nii.gz")));
}

TEST_F(AtlasMpi, MoreRanksThanSubjectsAreRefused) {
  ASSERT_TRUE(kRootAllowed);
  const std::string images = WritePopulation(2);
  const CliRun run = RunMpi(3, "--images" + images + " --out " + P("out") + Fast());
  EXPECT_EQ(run.status, 2) << run.output();
  EXPECT_NE(run.err.find("2 subjects for 3 workers"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(P("out/template.nii.gz")));
}

}  // namespace
