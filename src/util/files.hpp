#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace testfleet::util {

// Reads a whole file; throws UsageError naming the path when it cannot.
std::string read_file(const std::filesystem::path& path);

// Reads from `fd` until `capacity` bytes are in or the file ends, retrying interrupted reads: how many
// bytes, or -1 with errno set.
ssize_t read_up_to(int fd, char* into, std::size_t capacity);

// Writes through a temporary file in the same folder and a rename, so that a reader (or a run killed
// half-way) never sees half a file. Throws InfrastructureError naming the path and errno's text.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// Writes a file that only its owner may read (mode 0600 from its creation on: no moment when another user
// could open it), owned by `owner`/`group` when given (we are root and a server reads it as its own user).
// Replaces a file already there; never follows a symlink at `path`. Throws InfrastructureError naming the
// path and errno's text.
void write_private_file(const std::filesystem::path& path, std::string_view content,
                        std::optional<uid_t> owner = std::nullopt, std::optional<gid_t> group = std::nullopt);

// A private directory (mode 0700) removed with everything in it when the object dies, unless released.
class TempDir {
 public:
  // Created as `<parent>/<prefix>XXXXXX`; parent defaults to $TMPDIR or /tmp.
  explicit TempDir(std::string_view prefix, const std::filesystem::path& parent = {});
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;

  const std::filesystem::path& path() const { return path_; }
  // Removes the directory now; returns false (and leaves the path set) when it could not.
  bool remove() noexcept;

 private:
  std::filesystem::path path_;
};

std::filesystem::path default_temp_parent();

}  // namespace testfleet::util
