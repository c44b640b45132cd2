// Results are written atomically: to a temporary name in the destination folder, then renamed.
// An interrupted or failed run never leaves a half-written file under the final name.
#pragma once

#include <string>

namespace diffeoflow {

// A temporary path beside `path` (same folder, so rename is atomic), unique per process and call.
std::string TemporaryPathFor(const std::string& path);

// Renames `temporary` to `path`; throws InputError naming `path` on failure.
void CommitFile(const std::string& temporary, const std::string& path);

// Writes `contents` to `path` atomically (temporary + fsync + rename). Throws InputError naming
// the path when the folder is missing or read-only.
void WriteFileAtomically(const std::string& path, const std::string& contents);

// Creates `dir` and its parents when missing. Throws InputError naming `argument` and the path when
// it exists as a file or cannot be created / written.
void EnsureOutputDirectory(const std::string& dir, const std::string& argument = "--out");

}  // namespace diffeoflow
