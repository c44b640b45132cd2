#include "solvers/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "solvers/errors.h"

namespace diffeoflow {
namespace {

std::string ErrnoText(int error) { return std::error_code(error, std::generic_category()).message(); }

std::filesystem::path FolderOf(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

// Closes a POSIX descriptor on every path.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

void WriteAll(int fd, const std::string& contents, const std::string& path) {
  const char* data = contents.data();
  std::size_t remaining = contents.size();
  while (remaining > 0) {
    const ssize_t written = ::write(fd, data, remaining);
    if (written < 0) {
      if (errno == EINTR) continue;
      throw InputError("cannot write '" + path + "': " + ErrnoText(errno));
    }
    data += written;
    remaining -= static_cast<std::size_t>(written);
  }
}

}  // namespace

std::string TemporaryPathFor(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  const std::filesystem::path destination(path);
  std::string name = ".";
  name += destination.filename().string();
  name += ".tmp-";
  name += std::to_string(::getpid());
  name += '-';
  name += std::to_string(counter.fetch_add(1));
  return (FolderOf(path) / name).string();
}

void CommitFile(const std::string& temporary, const std::string& path) {
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temporary.c_str());
    throw InputError("cannot write '" + path + "': rename from temporary file failed: " +
                     ErrnoText(error));
  }
}

void WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string temporary = TemporaryPathFor(path);
  FileDescriptor fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    const int error = errno;
    throw InputError("cannot write '" + path + "': " + ErrnoText(error) + " (is folder '" +
                     FolderOf(path).string() + "' present and writable?)");
  }
  try {
    WriteAll(fd.get(), contents, path);
    if (::fsync(fd.get()) != 0) {
      throw InputError("cannot write '" + path + "': fsync failed: " + ErrnoText(errno));
    }
    if (::close(fd.Release()) != 0) {
      throw InputError("cannot write '" + path + "': close failed: " + ErrnoText(errno));
    }
  } catch (...) {
    std::remove(temporary.c_str());
    throw;
  }
  CommitFile(temporary, path);
}

void EnsureOutputDirectory(const std::string& dir, const std::string& argument) {
  namespace fs = std::filesystem;
  if (dir.empty()) {
    throw InputError(argument + ": output directory must not be empty");
  }
  std::error_code ec;
  const fs::file_status status = fs::status(dir, ec);
  if (fs::exists(status)) {
    if (!fs::is_directory(status)) {
      throw InputError(argument + ": '" + dir + "' exists and is not a directory");
    }
  } else {
    ec.clear();
    fs::create_directories(dir, ec);
    if (ec) {
      throw InputError(argument + ": cannot create directory '" + dir + "': " + ec.message());
    }
  }
  // Permission bits do not tell the whole story (root, read-only mounts): create a probe file.
  const std::string probe = TemporaryPathFor((fs::path(dir) / "probe").string());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw InputError(argument + ": directory '" + dir + "' is not writable: " + ErrnoText(errno));
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace diffeoflow
