// Atlas estimation by geodesic shooting (registration/atlas.h) on a small 2-D population with a
// known mean (registration/population.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "registration/atlas.h"
#include "registration/image_io.h"
#include "registration/population.h"
#include "registration/shapes.h"
#include "solvers/errors.h"
#include "tests/registration/thread_workers.h"
#include "tests/scratch.h"

namespace diffeoflow::registration {
namespace {

// 4 subjects of 48²: a C shape under two antithetic pairs of random diffeomorphisms.
Population SmallPopulation() {
  ShapeOptions shape;
  shape.size = 48;
  shape.edge_width_px = 2.0;
  PopulationOptions options;
  options.subjects = 4;
  options.max_displacement_fraction = 0.08;
  options.seed = 5;
  return MakePopulation(CShapeImage(shape), options);
}

AtlasOptions SmallAtlasOptions() {
  AtlasOptions options;
  options.iterations = 1;
  options.tolerance = 0.0;
  options.registration.affine.mode = AffineMode::kNone;
  options.registration.metric.threads = 1;
  // Short registrations (a second each): the test checks the averaging, not the optimiser.
  options.registration.iterations = 15;
  options.registration.time_steps = 4;
  return options;
}

double Ssd(const Image& a, const Image& b) { return (a.data - b.data).squaredNorm(); }

// The subjects as a worker holds them, from memory (the files are LoadAtlasSubjects'): `owned`
// loaded, and no reader (the split is kept for every round).
AtlasSubjects InMemory(const Population& population, std::vector<int> owned) {
  AtlasSubjects subjects;
  for (std::size_t i = 0; i < population.subjects.size(); ++i) {
    subjects.names.push_back("subject" + std::to_string(i));
  }
  subjects.owned = std::move(owned);
  for (int i : subjects.owned) subjects.images.push_back(population.subjects[i]);
  subjects.reference = population.subjects[0];
  return subjects;
}

AtlasSubjects InMemory(const Population& population, Workers& workers) {
  return InMemory(population, OwnedItems(static_cast<int>(population.subjects.size()), workers));
}

TEST(Atlas, TemplateIsCloserToTheTrueMeanThanSubjectsAndVoxelwiseMean) {
  const Population population = SmallPopulation();
  const AtlasSubjects subjects = InMemory(population, Serial());
  const AtlasResult atlas = BuildAtlas(subjects, SmallAtlasOptions());
  double subject_ssd = 0.0;
  for (const Image& s : population.subjects) subject_ssd += Ssd(s, population.mean);
  subject_ssd /= static_cast<double>(population.subjects.size());
  const double template_ssd = Ssd(atlas.template_image, population.mean);
  const double mean_ssd = Ssd(atlas.initial_template, population.mean);
  // Measured: subjects 20.8, voxel-wise mean 1.83, template 0.53 (one update).
  EXPECT_LE(template_ssd, 0.3 * subject_ssd);
  EXPECT_LT(template_ssd, 0.5 * mean_ssd);
  // The mean momentum shrinks as the template moves to the centre.
  EXPECT_LT(atlas.rounds.back().mean_momentum_norm, atlas.rounds.front().mean_momentum_norm);
  ASSERT_EQ(atlas.subjects.size(), population.subjects.size());
  for (const AtlasSubjectMaps& m : atlas.subjects) {
    EXPECT_GT(m.min_jacobian, 0.0);
    EXPECT_EQ(m.momentum.data.size(), m.momentum.grid.dim * m.momentum.grid.voxels());
  }
}

TEST(Atlas, TwoWorkersGiveTheSameBitsAsOne) {
  const Population population = SmallPopulation();
  AtlasOptions options = SmallAtlasOptions();
  options.iterations = 1;
  const AtlasResult serial = BuildAtlas(InMemory(population, Serial()), options);
  testing::ThreadWorkerGroup group(2);
  std::vector<AtlasResult> results(2);
  group.Run([&](Workers& workers) {
    results[static_cast<std::size_t>(workers.rank())] =
        BuildAtlas(InMemory(population, workers), options, nullptr, workers);
  });
  for (const AtlasResult& r : results) {
    ASSERT_EQ(r.template_image.data.size(), serial.template_image.data.size());
    EXPECT_TRUE((r.template_image.data.array() == serial.template_image.data.array()).all());
    EXPECT_TRUE((r.initial_template.data.array() == serial.initial_template.data.array()).all());
    ASSERT_EQ(r.rounds.size(), serial.rounds.size());
    for (std::size_t k = 0; k < r.rounds.size(); ++k) {
      EXPECT_EQ(r.rounds[k].mean_momentum_norm, serial.rounds[k].mean_momentum_norm);
      EXPECT_EQ(r.rounds[k].mean_ssd, serial.rounds[k].mean_ssd);
    }
  }
  // Each worker holds its own subjects' maps: subjects 0, 2 on rank 0 and 1, 3 on rank 1.
  ASSERT_EQ(results[1].subjects.size(), 2u);
  EXPECT_EQ(results[1].subjects[1].index, 3);
  EXPECT_TRUE((results[1].subjects[1].displacement.data.array() ==
               serial.subjects[3].displacement.data.array())
                  .all());
}

TEST(Atlas, RebalancedWorkersReadTheSubjectsTheyTakeOverAndKeepTheBits) {
  const Population population = SmallPopulation();
  AtlasOptions options = SmallAtlasOptions();
  options.iterations = 2;
  const AtlasResult serial = BuildAtlas(InMemory(population, Serial()), options);
  // Rank 0 starts with three subjects, rank 1 with one: from round 1 on the split follows the
  // registration times, so rank 1 takes over subjects it must read.
  const std::vector<std::vector<int>> loaded = {{0, 1, 2}, {3}};
  testing::ThreadWorkerGroup group(2);
  std::vector<AtlasResult> results(2);
  std::vector<std::vector<int>> reads(2);
  group.Run([&](Workers& workers) {
    const auto rank = static_cast<std::size_t>(workers.rank());
    AtlasSubjects subjects = InMemory(population, loaded[rank]);
    subjects.read = [&population, &reads, rank](int i) {
      reads[rank].push_back(i);
      return population.subjects[static_cast<std::size_t>(i)];
    };
    results[rank] = BuildAtlas(subjects, options, nullptr, workers);
  });
  EXPECT_FALSE(reads[1].empty());
  for (std::size_t rank = 0; rank < 2; ++rank) {
    for (int i : reads[rank]) {
      const std::vector<int>& mine = loaded[rank];
      EXPECT_EQ(std::count(mine.begin(), mine.end(), i), 0) << "rank " << rank << " read " << i;
    }
  }
  std::vector<int> last_round;
  for (const AtlasResult& r : results) {
    EXPECT_TRUE((r.template_image.data.array() == serial.template_image.data.array()).all());
    for (const AtlasSubjectMaps& m : r.subjects) {
      last_round.push_back(m.index);
      EXPECT_TRUE((m.displacement.data.array() ==
                   serial.subjects[static_cast<std::size_t>(m.index)].displacement.data.array())
                      .all())
          << "subject " << m.index;
    }
    ASSERT_EQ(r.summaries.size(), 4u);
    for (const AtlasSubjectSummary& s : r.summaries) EXPECT_GT(s.registration_seconds, 0.0);
  }
  std::sort(last_round.begin(), last_round.end());
  EXPECT_EQ(last_round, (std::vector<int>{0, 1, 2, 3}));
}

class AtlasFiles : public testing::ScratchTest {
 protected:
  AtlasFiles() : ScratchTest("diffeoflow_atlas_") {}
};

TEST_F(AtlasFiles, AFailureOnOneWorkerStopsAllNamingTheSubject) {
  const Population population = SmallPopulation();
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < population.subjects.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "s%zu.nii.gz", i);
    paths.push_back(Path(name));
    WriteImage(paths.back(), population.subjects[i]);
  }
  std::ofstream(paths[3]) << "not an image";
  testing::ThreadWorkerGroup group(2);
  std::vector<std::string> messages(2);
  group.Run([&](Workers& workers) {
    try {
      LoadAtlasSubjects(paths, "--images", nullptr, workers);
    } catch (const InputError& e) {
      messages[static_cast<std::size_t>(workers.rank())] = e.what();
    }
  });
  // Subject 3 belongs to rank 1; rank 0 stops with the same message.
  for (const std::string& m : messages) {
    EXPECT_NE(m.find("subject 3"), std::string::npos) << m;
    EXPECT_NE(m.find("s3.nii.gz"), std::string::npos) << m;
  }
  EXPECT_EQ(messages[0], messages[1]);
}

TEST(Atlas, RejectsTooFewSubjectsAndMoreWorkersThanSubjects) {
  EXPECT_THROW(LoadAtlasSubjects({"a.nii.gz"}, "--images", nullptr), InputError);
  testing::ThreadWorkerGroup group(3);
  std::vector<std::string> messages(3);
  group.Run([&](Workers& workers) {
    try {
      LoadAtlasSubjects({"a.nii.gz", "b.nii.gz"}, "--images", nullptr, workers);
    } catch (const InputError& e) {
      messages[static_cast<std::size_t>(workers.rank())] = e.what();
    }
  });
  for (const std::string& m : messages) {
    EXPECT_NE(m.find("2 subjects for 3 workers"), std::string::npos) << m;
  }
}

TEST(Population, VelocitiesComeInAntitheticPairsAndAreReproducible) {
  const Population a = SmallPopulation();
  const Population b = SmallPopulation();
  ASSERT_EQ(a.subjects.size(), 4u);
  for (std::size_t i = 0; i < a.subjects.size(); ++i) {
    EXPECT_TRUE((a.subjects[i].data.array() == b.subjects[i].data.array()).all());
    EXPECT_GT(Ssd(a.subjects[i], a.mean), 1.0);  // every subject differs from the mean
  }
  // φ_{2k+1} = φ_{2k}⁻¹: the displacements nearly cancel when composed.
  const VectorField composed = ComposeDisplacements(a.displacements_mm[0], a.displacements_mm[1]);
  // (Composing a map with itself instead would double the displacement.)
  const double largest = a.displacements_mm[0].data.cwiseAbs().maxCoeff();
  EXPECT_GT(largest, 1.0);
  EXPECT_LT(composed.data.cwiseAbs().maxCoeff(), 0.1 * largest);
  PopulationOptions odd;
  odd.subjects = 3;
  EXPECT_THROW(odd.Validate(), InputError);
}

}  // namespace
}  // namespace diffeoflow::registration
