#include "util/files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/error.hpp"

namespace testfleet::util {

ssize_t read_up_to(int fd, char* into, std::size_t capacity) {
  std::size_t done = 0;
  while (done < capacity) {
    ssize_t n = ::read(fd, into + done, capacity - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

std::string read_file(const std::filesystem::path& path) {
  // Sized from fstat and read straight into the string: a stream buffer copied a file three times over,
  // which for an 80 MB .test_durations was a tenth of planning a million tests. One byte more than fstat
  // says, so that a file that grew meanwhile (or a /proc file, whose size is 0) is read to its end.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UsageError(fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
  struct stat st {};
  std::size_t expected =
      ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? static_cast<std::size_t>(st.st_size) : 0;
  std::string text(expected + 1, '\0');
  std::size_t size = 0;
  while (true) {
    ssize_t n = read_up_to(fd, text.data() + size, text.size() - size);
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      if (saved == EISDIR) throw UsageError(fmt::format("cannot read {}: it is a directory", path.string()));
      throw UsageError(fmt::format("cannot read {}: {}", path.string(), std::strerror(saved)));
    }
    size += static_cast<std::size_t>(n);
    if (size < text.size()) break;  // the end of the file
    text.resize(text.size() * 2 + 65536);
  }
  ::close(fd);
  text.resize(size);
  return text;
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  std::filesystem::path temp = path;
  temp += fmt::format(".tmp.{}", ::getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw InfrastructureError(fmt::format("cannot write {}: {}", temp.string(), std::strerror(errno)));
  }
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      throw InfrastructureError(fmt::format("cannot write {}: {}", path.string(), std::strerror(saved)));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    int saved = errno;
    ::unlink(temp.c_str());
    throw InfrastructureError(fmt::format("cannot write {}: {}", path.string(), std::strerror(saved)));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(temp.c_str());
    throw InfrastructureError(fmt::format("cannot write {}: {}", path.string(), std::strerror(saved)));
  }
}

void write_private_file(const std::filesystem::path& path, std::string_view content,
                        std::optional<uid_t> owner, std::optional<gid_t> group) {
  auto fail = [&path](const char* step) {
    throw InfrastructureError(
        fmt::format("cannot write {}: {} failed: {}", path.string(), step, std::strerror(errno)));
  };
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail("unlink");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) fail("open");
  // Closed on every way out, the error paths included.
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if ((owner || group) &&
      ::fchown(fd, owner.value_or(static_cast<uid_t>(-1)), group.value_or(static_cast<gid_t>(-1))) != 0) {
    fail("chown");
  }
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write");
    done += static_cast<std::size_t>(n);
  }
}

std::filesystem::path default_temp_parent() {
  const char* tmpdir = std::getenv("TMPDIR");
  if (tmpdir != nullptr && *tmpdir != '\0') return tmpdir;
  return "/tmp";
}

TempDir::TempDir(std::string_view prefix, const std::filesystem::path& parent) {
  std::filesystem::path base = parent.empty() ? default_temp_parent() : parent;
  std::string pattern = (base / (std::string(prefix) + "XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw InfrastructureError(
        fmt::format("cannot create a temporary directory in {}: {}", base.string(), std::strerror(errno)));
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  remove();
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) {
  other.path_.clear();
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

bool TempDir::remove() noexcept {
  if (path_.empty()) return true;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) return false;
  path_.clear();
  return true;
}

}  // namespace testfleet::util
