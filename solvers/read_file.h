// Reading whole input files with the checks every reader needs first: the path exists, is a
// regular file (not a folder) and is not empty. Messages start with "argument: path: " (or
// "path: " without an argument), as solvers/errors.h asks.
#pragma once

#include <cstdint>
#include <string>

namespace diffeoflow {

// "argument: path: " or "path: ".
std::string InputPrefix(const std::string& argument, const std::string& path);

// The size of a regular, non-empty file; InputError for anything else.
std::uint64_t CheckedFileSize(const std::string& path, const std::string& argument = "");

// The whole file (at most 16 GiB); InputError when it is missing, empty, a folder or unreadable.
std::string ReadWholeFile(const std::string& path, const std::string& argument = "");

}  // namespace diffeoflow
