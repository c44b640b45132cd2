#include "solvers/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "solvers/errors.h"
#include "tests/scratch.h"

namespace diffeoflow {
namespace {

namespace fs = std::filesystem;

class AtomicFileTest : public testing::ScratchTest {
 protected:
  AtomicFileTest() : ScratchTest("diffeoflow-atomic-") {}
  static std::string Contents(const std::string& path) { return ReadBytes(path); }
};

using testing::ExpectInputError;

TEST_F(AtomicFileTest, TemporaryPathsAreBesideTheDestinationAndUnique) {
  const std::string path = Path("result.json");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string temporary = TemporaryPathFor(path);
    EXPECT_NE(temporary, path);
    EXPECT_EQ(fs::path(temporary).parent_path(), dir_);
    EXPECT_TRUE(seen.insert(temporary).second) << temporary << " repeated";
  }
  // A bare file name stays in the working directory.
  EXPECT_EQ(fs::path(TemporaryPathFor("out.h5")).parent_path(), fs::path("."));
}

TEST_F(AtomicFileTest, WriteFileAtomicallyWritesAndReplacesWithoutLeftovers) {
  const std::string path = Path("result.txt");
  WriteFileAtomically(path, "first");
  EXPECT_EQ(Contents(path), "first");
  const std::string binary("a\0b\xff", 4);
  WriteFileAtomically(path, binary);
  EXPECT_EQ(Contents(path), binary);
  WriteFileAtomically(Path("empty.txt"), "");
  EXPECT_EQ(Contents(Path("empty.txt")), "");
  EXPECT_EQ(Files(), (std::set<std::string>{"result.txt", "empty.txt"}));
}

TEST_F(AtomicFileTest, WriteIntoAMissingFolderNamesThePath) {
  const std::string path = Path("missing/result.txt");
  ExpectInputError([&] { WriteFileAtomically(path, "x"); }, {path});
  EXPECT_TRUE(Files().empty());
}

TEST_F(AtomicFileTest, CommitFileRenamesAndReportsFailures) {
  const std::string temporary = TemporaryPathFor(Path("a.txt"));
  {
    std::ofstream out(temporary);
    out << "payload";
  }
  CommitFile(temporary, Path("a.txt"));
  EXPECT_FALSE(fs::exists(temporary));
  EXPECT_EQ(Contents(Path("a.txt")), "payload");
  ExpectInputError([&] { CommitFile(Path("not-there"), Path("b.txt")); }, {Path("b.txt")});
  EXPECT_FALSE(fs::exists(Path("b.txt")));
}

TEST_F(AtomicFileTest, EnsureOutputDirectoryCreatesParents) {
  const std::string nested = Path("a/b/c");
  EnsureOutputDirectory(nested);
  EXPECT_TRUE(fs::is_directory(nested));
  EnsureOutputDirectory(nested);  // existing and writable: fine
  EXPECT_TRUE(fs::is_empty(nested)) << "the probe file must be removed";
}

TEST_F(AtomicFileTest, EnsureOutputDirectoryRejectsFilesAndUnwritablePlaces) {
  WriteFileAtomically(Path("file"), "x");
  ExpectInputError([&] { EnsureOutputDirectory(Path("file"), "--figures"); },
                   {"--figures", Path("file"), "not a directory"});
  ExpectInputError([&] { EnsureOutputDirectory(Path("file/sub")); }, {"--out", Path("file/sub")});
  ExpectInputError([&] { EnsureOutputDirectory(""); }, {"--out"});
  // /proc exists and cannot be written to, even by root.
  ExpectInputError([&] { EnsureOutputDirectory("/proc"); }, {"--out", "/proc", "not writable"});
  ExpectInputError([&] { EnsureOutputDirectory("/proc/diffeoflow-out"); },
                   {"--out", "/proc/diffeoflow-out"});
}

}  // namespace
}  // namespace diffeoflow
