// Bad input through the CLI, table-driven: for every subcommand that reads files or numbers, each
// class of bad input (missing file, a directory, truncated, random bytes with a plausible
// extension, wrong element type, empty / 1-D arrays, NaN / Inf values, mismatched grids, invalid
// numbers, unknown names, unusable output paths) must give
//   - exit status 2 (an InputError, or an option CLI11 rejects while parsing: kParse),
//   - one stderr line "diffeoflow: error: …" naming the offending file or flag,
//   - no crash report (terminate, abort, sanitizer), and
//   - no result file where the output would go (a checkpoint is not a result).
// A few library entry points without a test of their own elsewhere are at the end.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "flows/datasets.h"
#include "registration/image_io.h"
#include "registration/outputs/register_outputs.h"
#include "registration/register.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"
#include "tests/apps/cli_fixture.h"

namespace {

namespace fs = std::filesystem;
using diffeoflow::testing::CliRun;
namespace reg = diffeoflow::registration;

enum class Expect {
  kInput,      // exit 2, one line
  kParse,      // rejected by CLI11 while parsing (syntax, range, choice): exit 2, one line
  kNumerical,  // exit 3, one line
};

struct Case {
  std::string args;                  // the full command line after `diffeoflow`
  std::vector<std::string> needles;  // each must appear in the message
  fs::path out;                      // where results would go (folder or file)
  Expect expect = Expect::kInput;
};

class BadInputCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::path(::testing::TempDir()) / ("diffeoflow_bad_input_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    Check(Cli("shapes --out " + P("pair") + " --size 32 --quiet"));
    const reg::Image fixed = reg::ReadImage(P("pair/fixed.png"));
    reg::WriteImage(P("fixed.nii.gz"), fixed);
    reg::WriteImage(P("fixed.nii"), fixed);
    reg::WriteImage(P("fixed.npy"), fixed);
    reg::Image volume;
    volume.grid.dim = 3;
    volume.grid.size = {32, 32, 8};
    volume.data = Eigen::VectorXd::LinSpaced(volume.grid.voxels(), 0.0, 1.0);
    reg::WriteImage(P("volume.nii.gz"), volume);
    // The moving image 1 m away in the world: no overlap with anything else here.
    reg::Image far = reg::ReadImage(P("pair/moving.png"));
    far.grid.origin_mm = {1000.0, 1000.0, 0.0};
    reg::WriteImage(P("far.nii.gz"), far);
    reg::Image nan = fixed;
    nan.data[10] = std::numeric_limits<double>::quiet_NaN();
    reg::WriteImage(P("nan.npy"), nan);
    reg::Image inf = fixed;
    inf.data[20] = std::numeric_limits<double>::infinity();
    reg::WriteImage(P("inf.nii.gz"), inf);

    // Truncated copies, random bytes, empty files, a directory with a file's name.
    for (const std::string name : {"fixed.nii.gz", "fixed.nii", "fixed.npy"}) {
      const std::string bytes = Bytes(P(name));
      Write("cut_" + name, bytes.substr(0, bytes.size() / 2));
    }
    const std::string png = Bytes(P("pair/fixed.png"));
    Write("cut_fixed.png", png.substr(0, png.size() * 2 / 3));
    std::mt19937 rng(11);
    std::string noise(3000, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    for (const std::string ext : {".nii.gz", ".nii", ".png", ".npy", ".h5", ".csv"}) {
      Write("random" + ext, noise);
    }
    Write("empty.png", "");
    Write("empty.h5", "");
    Write("image.tiff", png);
    fs::create_directories(P("folder.nii.gz"));
    fs::create_directories(P("folder.h5"));
    fs::create_directories(P("folder.csv"));
    // Wrong element types and shapes.
    const std::string cplx = "{'descr': '<c16', 'fortran_order': False, 'shape': (4, 4), }";
    Write("complex.npy", Npy(cplx, std::string(16 * 16, '\0')));
    Write("empty_array.npy", Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }", ""));
    Write("oned.npy", Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (16,), }",
                          std::string(16 * 8, '\0')));
    std::string nifti = Bytes(P("fixed.nii"));
    nifti[70] = 32;  // datatype DT_COMPLEX64
    nifti[71] = 0;
    nifti[72] = 64;  // bitpix
    nifti[73] = 0;
    Write("complex.nii", nifti);

    // A register run to apply, and broken copies of it.
    Check(Cli("register --fixed " + P("pair/fixed.png") + " --moving " + P("pair/moving.png") +
              " --out " + P("transform") + " --levels 1 --iterations 3 --steps 2 --quiet"));
    fs::create_directories(P("transform_random"));
    Write("transform_random/displacement.nii.gz", noise);
    fs::create_directories(P("transform_scalar"));
    reg::WriteImage(P("transform_scalar/displacement.nii.gz"), fixed);
    fs::create_directories(P("transform_empty"));

    // Landmarks.
    Write("source.csv", "x,y\n1,2\n3,4\n5,1\n");
    Write("target.csv", "x,y\n1.5,2\n3,4.5\n5,1.2\n");
    Write("text.csv", "hello\nworld,again\n");
    Write("wide.csv", "1,2,3,4\n5,6,7,8\n");
    Write("two.csv", "1,2\n3,4\n");
    Write("nan.csv", "1,2\nnan,4\n5,1\n");
    Write("empty.csv", "");

    // HDF5: valid files of the wrong kind, a truncated one.
    {
      diffeoflow::h5::Writer w(P("other.h5"));
      w.WriteDoubles("something", std::vector<double>{1, 2, 3}, {3});
      w.Commit();
    }
    {
      diffeoflow::h5::Writer w(P("checkpoint_bad.h5"));
      w.SetAttribute("/", "format", "diffeoflow-checkpoint");
      w.WriteDoubles("theta", std::vector<double>{1, 2, 3}, {3});
      w.WriteDoubles("optimizer/m", std::vector<double>{0, 0, 0}, {3});
      w.WriteDoubles("optimizer/v", std::vector<double>{0, 0, 0}, {3});
      w.SetAttribute("/", "epoch", std::int64_t{1});
      w.SetAttribute("/", "step", std::int64_t{1});
      w.Commit();
    }
    const std::string h5 = Bytes(P("other.h5"));
    Write("cut.h5", h5.substr(0, h5.size() / 2));

    // IDX folders: random bytes, truncated, a float element type.
    fs::create_directories(P("idx_random"));
    Write("idx_random/train-images-idx3-ubyte", noise);
    Write("idx_random/train-labels-idx1-ubyte", noise);
    fs::create_directories(P("idx_cut"));
    Write("idx_cut/train-images-idx3-ubyte", std::string("\0\0\x08\x03\0\0\0\x02\0\0\0\x1c\0\0\0\x1c", 16) + "abc");
    Write("idx_cut/train-labels-idx1-ubyte", std::string("\0\0\x08\x01\0\0\0\x02", 8) + "\x01\x02");
    fs::create_directories(P("idx_labels_only"));
    Write("idx_labels_only/train-labels-idx1-ubyte", std::string("\0\0\x08\x01\0\0\0\x02", 8) + "\x01\x02");

    // An existing file where a folder goes; a read-only folder.
    Write("a_file", "not a folder");
    fs::create_directories(P("readonly"));
    ::chmod(P("readonly").c_str(), 0555);
    const std::string probe = P("readonly/probe");
    readonly_works_ = !std::ofstream(probe).is_open();
    fs::remove(probe);

    inspect_exists_ = Cli("inspect --help").status == 0;
  }
  static void TearDownTestSuite() {
    std::cout << "[ bad inputs ] " << tried_ << " bad command lines tried\n";
    ::chmod(P("readonly").c_str(), 0755);
    fs::remove_all(root_);
  }

  static std::string P(const std::string& name) { return (root_ / name).string(); }
  static CliRun Cli(const std::string& args) {
    return diffeoflow::testing::RunDiffeoflow(args, root_);
  }
  static void Check(const CliRun& run) { ASSERT_EQ(run.status, 0) << run.output(); }
  static std::string Bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  static void Write(const std::string& name, const std::string& bytes) {
    std::ofstream(P(name), std::ios::binary) << bytes;
  }
  static std::string Npy(std::string dict, const std::string& payload) {
    while ((10 + dict.size() + 1) % 64 != 0) dict += ' ';
    dict += '\n';
    std::string header("\x93NUMPY\x01\x00", 8);
    header += static_cast<char>(dict.size() & 0xff);
    header += static_cast<char>(dict.size() >> 8);
    return header + dict + payload;
  }

  // Files under `out` that look like results (everything but checkpoints), or `out` itself.
  static std::vector<std::string> Results(const fs::path& out) {
    std::vector<std::string> found;
    if (out.empty() || !fs::exists(out)) return found;
    if (!fs::is_directory(out)) return {out.string()};
    for (const auto& entry : fs::recursive_directory_iterator(out)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_directory() || name.rfind("checkpoint", 0) == 0) continue;
      found.push_back(entry.path().string());
    }
    return found;
  }

  void RunCases(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
      SCOPED_TRACE(c.args);
      const bool existed = !c.out.empty() && fs::exists(c.out);
      const std::string before = existed && !fs::is_directory(c.out) ? Bytes(c.out.string()) : "";
      const CliRun run = Cli(c.args);
      ++tried_;
      const std::string& err = run.err;
      const auto lines = std::count(err.begin(), err.end(), '\n');
      switch (c.expect) {
        case Expect::kInput:
        case Expect::kParse:
          EXPECT_EQ(run.status, 2) << err;
          EXPECT_EQ(lines, 1) << err;
          EXPECT_EQ(err.rfind("diffeoflow: error: ", 0), 0u) << err;
          break;
        case Expect::kNumerical:
          EXPECT_EQ(run.status, 3) << err;
          EXPECT_EQ(lines, 1) << err;
          break;
      }
      const std::string first = err.substr(0, err.find('\n'));
      for (const std::string& needle : c.needles) {
        EXPECT_NE(first.find(needle), std::string::npos) << "'" << needle << "' not in: " << err;
      }
      for (const char* crash : {"terminate called", "Aborted", "Segmentation", "Sanitizer",
                                "runtime error", "core dumped"}) {
        EXPECT_EQ(err.find(crash), std::string::npos) << err;
      }
      EXPECT_TRUE(run.out.empty()) << run.out;
      if (existed) {
        if (!fs::is_directory(c.out)) {
          EXPECT_EQ(Bytes(c.out.string()), before);
        }
      } else {
        EXPECT_TRUE(Results(c.out).empty()) << Results(c.out).front();
      }
    }
  }

  static inline fs::path root_;
  static inline bool readonly_works_ = false;
  static inline bool inspect_exists_ = false;
  static inline int tried_ = 0;
};

// The image files every reader of images must reject, with the words expected in the message.
std::vector<std::pair<std::string, std::string>> BadImages() {
  return {{"missing.nii.gz", "missing.nii.gz"}, {"folder.nii.gz", "directory"},
          {"cut_fixed.nii.gz", "cut_fixed.nii.gz"}, {"cut_fixed.nii", "truncated"},
          {"cut_fixed.npy", "truncated"},       {"cut_fixed.png", "cut_fixed.png"},
          {"random.nii.gz", "random.nii.gz"},   {"random.nii", "random.nii"},
          {"random.png", "not a PNG"},          {"random.npy", "not a .npy"},
          {"complex.npy", "complex"},           {"complex.nii", "complex"},
          {"empty_array.npy", "empty"},         {"oned.npy", "1 dimension"},
          {"nan.npy", "NaN"},                   {"inf.nii.gz", "infinite"},
          {"empty.png", "empty"},               {"image.tiff", "unknown image format"}};
}

TEST_F(BadInputCli, RegisterAndCompare) {
  std::vector<Case> cases;
  const std::string fixed = " --fixed " + P("pair/fixed.png");
  const std::string moving = " --moving " + P("pair/moving.png");
  const std::string fast = " --levels 1 --iterations 2 --steps 2 --quiet";
  int k = 0;
  auto out = [&] { return root_ / ("out_register_" + std::to_string(k++)); };
  for (const std::string command : {"register", "compare"}) {
    for (const auto& [file, words] : BadImages()) {
      // As --fixed and as --moving: the message names the flag and the file or its problem.
      fs::path o = out();
      cases.push_back({command + " --fixed " + P(file) + moving + fast + " --out " + o.string(),
                       {"--fixed", words}, o});
      o = out();
      cases.push_back({command + fixed + " --moving " + P(file) + fast + " --out " + o.string(),
                       {"--moving", words}, o});
    }
    // Grids: another dimension (an error naming --moving and both sizes), or no overlap in the
    // world (naming both files). Other grids are resampled (world_space_cli_test.cc).
    fs::path o = out();
    cases.push_back({command + fixed + " --moving " + P("volume.nii.gz") + fast + " --out " +
                         o.string(),
                     {"--moving", "32x32x8", "32x32"}, o});
    o = out();
    cases.push_back({command + fixed + " --moving " + P("far.nii.gz") + fast + " --out " +
                         o.string(),
                     {"--moving", "far.nii.gz", "--fixed", "do not overlap"}, o});
  }
  struct Flag {
    std::string arguments, flag;
    Expect expect = Expect::kInput;
  };
  const Flag flags[] = {
      {"--sigma -1", "--sigma"},
      {"--sigma 0", "--sigma"},
      {"--sigma nan", "--sigma"},
      {"--sigma 1e400", "--sigma"},
      {"--sigma abc", "--sigma", Expect::kParse},
      {"--alpha 0", "--alpha"},
      {"--alpha -5", "--alpha"},
      {"--alpha inf", "--alpha"},
      {"--gamma 0", "--gamma"},
      {"--tolerance -1", "--tolerance"},
      {"--tolerance nan", "--tolerance"},
      {"--steps 0", "--steps"},
      {"--steps -3", "--steps"},
      {"--steps abc", "--steps", Expect::kParse},
      {"--steps 1.5", "--steps", Expect::kParse},
      {"--levels 0", "--levels"},
      {"--levels -1", "--levels"},  // the value that means "auto" inside
      {"--levels -2", "--levels"},
      {"--iterations -1", "--iterations"},
      {"--time-limit -1", "--time-limit"},
      {"--band-limit -1", "--band-limit"},
      {"--mesh-fraction -1", "--mesh-fraction"},
      {"--max-folded-fraction 2", "--max-folded-fraction"},
      {"--optimizer adam", "--optimizer"},
      {"--optimizer rmsprop", "--optimizer"},
      {"--solver leapfrog", "--solver"},
      {"--solver dopri5", "--solver"},
      {"--boundary mirror", "--boundary"},
      {"--similarity bad", "--similarity"},
      {"--similarity ncc --ncc-radius 0", "--ncc-radius"},
      {"--threads -2", "--threads", Expect::kParse},
  };
  for (const std::string command : {"register", "compare"}) {
    for (const Flag& f : flags) {
      const fs::path o = out();
      cases.push_back({command + fixed + moving + " " + f.arguments + " --out " + o.string() +
                           " --quiet",
                       {f.flag}, o, f.expect});
    }
  }
  cases.push_back({"register" + fixed + moving + " --method newton --out " + out().string(),
                   {"--method", "newton"}, root_ / "out_register_method"});
  // Output places: an existing file, inside a file, a read-only folder.
  cases.push_back({"register" + fixed + moving + fast + " --out " + P("a_file"),
                   {"--out", P("a_file")}, P("a_file")});
  cases.push_back({"compare" + fixed + moving + fast + " --out " + P("a_file/sub"),
                   {"--out", P("a_file")}, P("a_file/sub")});
  // A checkpoint that is not one, with --resume: named, nothing written.
  fs::create_directories(P("resume_bad"));
  fs::copy_file(P("random.h5"), P("resume_bad/checkpoint.h5"));
  cases.push_back({"register" + fixed + moving + fast + " --resume --out " + P("resume_bad"),
                   {P("resume_bad/checkpoint.h5")}, P("resume_bad")});
  // Numerical failures: exit 3, nothing written.
  cases.push_back({"register" + fixed + moving + fast + " --sigma 1e-200 --out " + P("out_nan"),
                   {"NaN or Inf", "--sigma"}, P("out_nan"), Expect::kNumerical});
  RunCases(cases);
}

TEST_F(BadInputCli, ReadOnlyOutputFolder) {
  if (!readonly_works_) {
    GTEST_SKIP() << "running as root (or on a file system ignoring permissions): a read-only "
                    "folder does not stop writes here";
  }
  const std::string images =
      " --fixed " + P("pair/fixed.png") + " --moving " + P("pair/moving.png");
  RunCases({{"register" + images + " --levels 1 --iterations 2 --out " + P("readonly/run"),
             {"--out", P("readonly")}, P("readonly/run")},
            {"train --dataset spirals --samples 100 --epochs 1 --out " + P("readonly/t"),
             {"--out", P("readonly")}, P("readonly/t")},
            {"apply --transform " + P("transform") + " --image " + P("pair/moving.png") +
                 " --out " + P("readonly/a.png"),
             {P("readonly/a.png")}, P("readonly/a.png")}});
}

TEST_F(BadInputCli, Apply) {
  std::vector<Case> cases;
  int k = 0;
  auto out = [&] { return root_ / ("applied_" + std::to_string(k++) + ".png"); };
  const std::string transform = " --transform " + P("transform");
  for (const auto& [file, words] : BadImages()) {
    const fs::path o = out();
    cases.push_back({"apply" + transform + " --image " + P(file) + " --out " + o.string(),
                     {"--image", words}, o});
  }
  const std::string image = " --image " + P("pair/moving.png");
  for (const auto& [folder, words] :
       std::vector<std::pair<std::string, std::string>>{{"missing_transform", "--transform"},
                                                        {"transform_empty", "displacement"},
                                                        {"transform_random", "--transform"},
                                                        {"transform_scalar", "--transform"},
                                                        {"a_file", "--transform"}}) {
    const fs::path o = out();
    cases.push_back({"apply --transform " + P(folder) + image + " --out " + o.string(),
                     {words}, o});
  }
  fs::path o = out();
  cases.push_back({"apply" + transform + " --image " + P("far.nii.gz") + " --out " +
                       o.string(),
                   {"--image", "do not overlap"}, o});
  o = out();
  cases.push_back({"apply" + transform + " --image " + P("volume.nii.gz") + " --out " +
                       o.string(),
                   {"--image", "32x32x8"}, o});
  o = out();
  cases.push_back({"apply" + transform + image + " --default-value nan --out " + o.string(),
                   {"--default-value"}, o});
  o = out();
  cases.push_back({"apply" + transform + image + " --interpolation cubic --out " + o.string(),
                   {"--interpolation"}, o});
  cases.push_back({"apply" + transform + image + " --out " + P("applied.tiff"),
                   {"--out", "applied.tiff"}, P("applied.tiff")});
  cases.push_back({"apply" + transform + image + " --out " + P("nowhere/applied.png"),
                   {P("nowhere/applied.png")}, P("nowhere/applied.png")});
  cases.push_back({"apply" + transform + image + " --out " + P("folder.nii.gz"),
                   {"folder.nii.gz"}, P("folder.nii.gz")});
  RunCases(cases);
}

TEST_F(BadInputCli, Train) {
  std::vector<Case> cases;
  int k = 0;
  auto out = [&] { return root_ / ("train_" + std::to_string(k++)); };
  const std::string base = "train --dataset spirals --samples 100 --quiet";
  struct Flag {
    std::string arguments;
    std::vector<std::string> needles;
    Expect expect = Expect::kInput;
  };
  const std::vector<Flag> flags = {
      {"--model transformer", {"--model", "transformer"}},
      {"--solver leapfrog", {"--solver", "leapfrog"}},
      {"--gradient magic", {"--gradient", "magic"}},
      {"--optimizer rmsprop", {"--optimizer", "rmsprop"}},
      {"--activation swish", {"--activation", "swish"}},
      {"--schedule linear", {"--schedule", "linear"}},
      {"--precision half", {"--precision"}, Expect::kParse},
      {"--lr -1", {"--lr"}},
      {"--lr 0", {"--lr"}},
      {"--lr nan", {"--lr"}},
      {"--lr 1e400", {"--lr"}},
      {"--lr abc", {"--lr"}, Expect::kParse},
      {"--epochs 0", {"--epochs"}},
      {"--epochs -2", {"--epochs"}},
      {"--hidden 0", {"--hidden"}},
      {"--channels -3", {"--channels"}},
      {"--model anode --augment -1", {"--augment"}},
      {"--batch 0", {"--batch"}, Expect::kParse},
      {"--steps 0", {"--steps"}, Expect::kParse},
      {"--samples 0", {"--samples"}, Expect::kParse},
      {"--noise -1", {"--noise"}},
      {"--test-fraction 1.5", {"--test-fraction"}},
      {"--momentum 1.5 --optimizer sgd", {"--momentum"}},
      {"--weight-decay -1", {"--weight-decay"}},
      {"--time-budget -1", {"--time-budget"}, Expect::kParse},
      {"--solver dopri5 --rtol -1", {"--rtol"}},
      {"--solver dopri5 --atol 0", {"--atol"}},
      {"--max-train -5", {"--max-train"}},
      {"--flip on", {"--flip", "image"}},
      {"--flip sideways", {"--flip"}, Expect::kParse},
      {"--shift 2", {"--shift", "image"}},
      {"--shift -1", {"--shift"}, Expect::kParse},
      {"--label-smoothing 1", {"--label-smoothing", "[0, 1)"}},
      {"--label-smoothing -0.1", {"--label-smoothing"}, Expect::kParse},
      {"--model shooting --label-smoothing 0.1", {"--label-smoothing", "shooting"}},
      {"--readout max", {"--readout"}, Expect::kParse},
      {"--readout flatten", {"--readout flatten", "on images"}},
  };
  for (const Flag& f : flags) {
    const fs::path o = out();
    const std::string epochs = f.arguments.find("--epochs") == std::string::npos ? " --epochs 1" : "";
    cases.push_back({base + epochs + " " + f.arguments + " --out " + o.string(), f.needles, o,
                     f.expect});
  }
  fs::path o = out();
  cases.push_back({"train --dataset cifar --out " + o.string(), {"--dataset"}, o, Expect::kParse});
  const std::string fmnist = "train --dataset fashion-mnist --epochs 1 --quiet --data-dir ";
  for (const auto& [dir, words] : std::vector<std::pair<std::string, std::string>>{
           {"no_such_dir", "no_such_dir"},
           {"idx_random", "idx_random/train-images-idx3-ubyte"},
           {"idx_cut", "idx_cut/train-images-idx3-ubyte"},
           {"idx_labels_only", "train-images-idx3-ubyte"},
           {"a_file", "a_file"}}) {
    o = out();
    cases.push_back({fmnist + P(dir) + " --out " + o.string(), {words}, o});
  }
  // Output places.
  cases.push_back({base + " --epochs 1 --out " + P("a_file"), {"--out", P("a_file")}, P("a_file")});
  // --resume from a file that is not a checkpoint, or of another architecture.
  for (const std::string bad : {"random.h5", "other.h5", "checkpoint_bad.h5", "cut.h5"}) {
    o = out();
    fs::create_directories(o);
    fs::copy_file(P(bad), o / "checkpoint.h5");
    cases.push_back({base + " --epochs 1 --resume --out " + o.string(),
                     {(o / "checkpoint.h5").string()}, o});
  }
  // Divergence: exit 3, no model or metrics.
  o = out();
  cases.push_back({base + " --epochs 1 --optimizer sgd --lr 1e300 --out " + o.string(),
                   {"diverged"}, o, Expect::kNumerical});
  RunCases(cases);
}

TEST_F(BadInputCli, BenchMatchLandmarksAndInspect) {
  std::vector<Case> cases;
  int k = 0;
  auto out = [&] { return root_ / ("misc_" + std::to_string(k++)); };
  const std::string bench = "bench ode --dim 2 --hidden 4 --batch 2 --repeat 1";
  for (const auto& [file, words] : std::vector<std::pair<std::string, std::string>>{
           {"missing.h5", "missing.h5"},
           {"folder.h5", "folder.h5"},
           {"random.h5", "random.h5"},
           {"empty.h5", "empty.h5"},
           {"cut.h5", "cut.h5"},
           {"other.h5", "other.h5"}}) {
    const fs::path o = out().string() + ".h5";
    cases.push_back({bench + " --weights " + P(file) + " --out " + o.string(), {words}, o});
  }
  cases.push_back({"bench ode --solver leapfrog", {"--solver"}, {}});
  cases.push_back({"bench ode --gradient magic", {"--gradient"}, {}});
  cases.push_back({"bench ode --dim 0", {"--dim"}, {}, Expect::kParse});
  cases.push_back({bench + " --out " + P("folder.h5"), {"folder.h5"}, P("folder.h5")});

  const std::string source = " --source " + P("source.csv");
  const std::string target = " --target " + P("target.csv");
  for (const auto& [file, words] : std::vector<std::pair<std::string, std::string>>{
           {"missing.csv", "missing.csv"},
           {"folder.csv", "folder.csv"},
           {"random.csv", "random.csv"},
           {"text.csv", "text.csv"},
           {"wide.csv", "wide.csv"},
           {"nan.csv", "nan.csv"},
           {"empty.csv", "empty.csv"}}) {
    fs::path o = out();
    cases.push_back({"match-landmarks --source " + P(file) + target + " --out " + o.string(),
                     {words}, o});
    o = out();
    cases.push_back({"match-landmarks" + source + " --target " + P(file) + " --out " + o.string(),
                     {words}, o});
  }
  for (const auto& [arguments, flag] : std::vector<std::pair<std::string, std::string>>{
           {" --target " + P("two.csv"), "--target"},
           {target + " --kernel-width -1", "--kernel-width"},
           {target + " --sigma -1", "--sigma"},
           {target + " --steps 0", "--steps"},
           {target + " --method foo", "--method"},
           {target + " --solver leapfrog", "--solver"},
           {target + " --optimizer rmsprop", "--optimizer"},
           {target + " --jacobian magic", "--jacobian"}}) {
    const fs::path o = out();
    cases.push_back({"match-landmarks" + source + arguments + " --out " + o.string(), {flag}, o});
  }
  cases.push_back({"match-landmarks" + source + target + " --out " + P("a_file"),
                   {P("a_file")}, P("a_file")});

  if (inspect_exists_) {
    for (const auto& [arguments, words] : std::vector<std::pair<std::string, std::string>>{
             {"--model " + P("missing.h5"), "missing.h5"},
             {"--model " + P("random.h5"), "random.h5"},
             {"--model " + P("other.h5"), "other.h5"},
             {"--model " + P("folder.h5"), "folder.h5"},
             {"--transform " + P("missing_transform"), "missing_transform"},
             {"--transform " + P("transform_random"), "transform_random"},
             {"--transform " + P("transform_empty"), "transform_empty"}}) {
      const fs::path o = out();
      cases.push_back({"inspect " + arguments + " --out " + o.string(), {words}, o});
    }
  }
  RunCases(cases);
  if (!inspect_exists_) GTEST_SKIP() << "no `inspect` subcommand in this build";
}

// Library entry points with their own bad-input paths not covered elsewhere.
TEST_F(BadInputCli, LibraryEntryPointsThrowInputErrorNamingTheFile) {
  auto expect = [](auto call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "expected InputError naming " << needle;
    } catch (const diffeoflow::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const reg::Image moving = reg::ReadImage(P("pair/moving.png"));
  for (const std::string folder :
       {"missing_transform", "transform_empty", "transform_random", "transform_scalar"}) {
    expect([&] { reg::ApplyRegistration(P(folder), moving, reg::Interpolation::kLinear); },
           "--transform");
  }
  expect([&] { diffeoflow::flows::LoadFashionMnist(P("idx_random"), true); },
         P("idx_random/train-images-idx3-ubyte"));
  expect([&] { diffeoflow::flows::LoadFashionMnist(P("idx_labels_only"), true); },
         "train-images-idx3-ubyte");
  expect([&] { diffeoflow::flows::ReadIdx(P("idx_cut/train-images-idx3-ubyte")); }, "truncated");
  expect([&] { diffeoflow::h5::Reader r(P("folder.h5")); }, P("folder.h5"));
  expect([&] { diffeoflow::h5::Reader(P("other.h5")).ReadDoubles("theta"); }, "theta");
  reg::RegistrationOptions options;
  options.levels = 1;
  options.iterations = 1;
  options.checkpoint = P("random.h5");
  options.resume = true;
  expect([&] { reg::Register(moving, moving, options); }, P("random.h5"));
}

}  // namespace
