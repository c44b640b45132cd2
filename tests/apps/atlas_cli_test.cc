// `diffeoflow atlas` (registration/atlas.h): its files on a small 2-D population, deterministic
// output for the same subject list, and refusals of bad input (one line, exit 2, nothing written).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "registration/displacement_file.h"
#include "registration/image_io.h"
#include "tests/apps/atlas_population.h"
#include "tests/apps/cli_fixture.h"

namespace diffeoflow {
namespace {

namespace fs = std::filesystem;
using registration::Image;
using testing::CliRun;
using testing::FileBytes;

class AtlasCli : public testing::CliTest {
 protected:
  AtlasCli() : CliTest("", "diffeoflow_atlas_cli_") {}

  std::string P(const std::string& name) const { return (dir_ / name).string(); }

  // Four 32² subjects of a C shape under antithetic random warps, as s0 … s3.nii.gz.
  std::string WritePopulation() { return testing::WriteAtlasPopulation(dir_, 4, 2); }

  static std::string Fast() {
    return " --affine none --levels 1 --registration-iterations 5 --steps 3 --threads 1"
           " --iterations 1 --quiet";
  }

};

TEST_F(AtlasCli, WritesTheTemplateEverySubjectsMapsMetricsAndFigure) {
  const std::string images = WritePopulation();
  const CliRun run = Run("atlas --images" + images + " --out " + P("out") + Fast());
  ASSERT_EQ(run.status, 0) << run.output();
  const Image atlas = registration::ReadImage(P("out/template.nii.gz"));
  EXPECT_EQ(atlas.grid.size[0], 32);
  EXPECT_TRUE(fs::exists(P("out/summary.png")));
  std::ifstream in(P("out/metrics.json"));
  const nlohmann::json metrics = nlohmann::json::parse(in);
  ASSERT_EQ(metrics["rounds"].size(), 2u);
  for (const auto& round : metrics["rounds"]) {
    EXPECT_GT(round["mean_momentum_norm"].get<double>(), 0.0);
    EXPECT_GT(round["wall_seconds"].get<double>(), 0.0);
    EXPECT_TRUE(round.contains("mean_ssd"));
  }
  EXPECT_EQ(metrics["workers"], 1);
  EXPECT_EQ(metrics["registration_options"]["method"], "shooting");
  ASSERT_EQ(metrics["subjects"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const std::string folder = P("out/" + metrics["subjects"][i]["folder"].get<std::string>());
    const registration::VectorField u =
        registration::ReadDisplacementFile(folder + "/displacement.nii.gz");
    EXPECT_EQ(u.grid.size, atlas.grid.size);
    EXPECT_TRUE(fs::exists(folder + "/momentum.nii.gz")) << folder;
    const Image jacobian = registration::ReadImage(folder + "/jacobian.nii.gz");
    EXPECT_GT(jacobian.data.minCoeff(), 0.0);
    EXPECT_FALSE(fs::exists(folder + "/affine.txt"));  // --affine none
  }
  EXPECT_NE(metrics["subjects"][2]["folder"].get<std::string>().find("002_s2"), std::string::npos);
}

TEST_F(AtlasCli, TheSameSubjectListGivesTheSameTemplateBytes) {
  const std::string images = WritePopulation();
  std::ofstream(P("subjects.txt")) << "# the population\ns0.nii.gz\ns1.nii.gz\n\ns2.nii.gz\n"
                                   << P("s3.nii.gz") << "\n";
  const CliRun a = Run("atlas --images" + images + " --out " + P("a") + Fast());
  const CliRun b = Run("atlas --list " + P("subjects.txt") + " --out " + P("b") + Fast());
  ASSERT_EQ(a.status, 0) << a.output();
  ASSERT_EQ(b.status, 0) << b.output();
  EXPECT_EQ(FileBytes(P("a/template.nii.gz")), FileBytes(P("b/template.nii.gz")));
  EXPECT_EQ(FileBytes(P("a/subjects/003_s3/displacement.nii.gz")),
            FileBytes(P("b/subjects/003_s3/displacement.nii.gz")));
}

TEST_F(AtlasCli, BadInputIsOneLineExitTwoAndNothingWritten) {
  const std::string images = WritePopulation();
  // A subject far away in the world, one of another dimension, an unreadable one.
  registration::Image far = registration::ReadImage(P("s1.nii.gz"));
  far.grid.origin_mm = {1000.0, 1000.0, 0.0};
  registration::WriteImage(P("far.nii.gz"), far);
  registration::Image volume;
  volume.grid.dim = 3;
  volume.grid.size = {32, 32, 8};
  volume.data = Eigen::VectorXd::Zero(volume.grid.voxels());
  volume.data[100] = 1.0;
  registration::WriteImage(P("volume.nii.gz"), volume);
  std::ofstream(P("broken.nii.gz")) << "not an image";
  struct Case {
    std::string args;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {"--images " + P("s0.nii.gz") + " " + P("far.nii.gz"),
       {"subject 1", "far.nii.gz", "do not overlap"}},
      {"--images " + P("s0.nii.gz") + " " + P("s1.nii.gz") + " " + P("broken.nii.gz"),
       {"subject 2", "broken.nii.gz"}},
      {"--images " + P("s0.nii.gz") + " " + P("volume.nii.gz"),
       {"subject 1", "volume.nii.gz", "3-D", "2-D"}},
      {"--images " + P("s0.nii.gz"), {"at least 2 subjects", "got 1"}},
      {"--images " + P("s0.nii.gz") + " " + P("missing.nii.gz"), {"missing.nii.gz"}},
      {"--list " + P("no_list.txt"), {"--list", "no_list.txt"}},
      {"--images" + images + " --list " + P("no_list.txt"), {"either --images or --list"}},
      {"--images" + images + " --iterations -1", {"--iterations"}},
  };
  for (const Case& c : cases) {
    const CliRun run = Run("atlas " + c.args + " --out " + P("out") + Fast());
    EXPECT_EQ(run.status, 2) << c.args << ": " << run.output();
    for (const std::string& word : c.words) {
      EXPECT_NE(run.err.find(word), std::string::npos) << word << " in: " << run.err;
    }
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_FALSE(fs::exists(P("out"))) << c.args;
  }
}

}  // namespace
}  // namespace diffeoflow
