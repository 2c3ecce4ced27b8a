// The parsers read files (reports are files), so each fuzz input is written to one in a private directory
// that lives as long as the fuzzer process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "util/files.hpp"

namespace testfleet::fuzz {

class FuzzFiles {
 public:
  FuzzFiles() : dir_("testfleet-fuzz-", "/dev/shm") {}

  std::filesystem::path write(std::string_view name, const std::uint8_t* data, std::size_t size) {
    std::filesystem::path path = dir_.path() / name;
    util::write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(data), size));
    return path;
  }
  std::filesystem::path out(std::string_view name) const { return dir_.path() / name; }

 private:
  util::TempDir dir_;
};

inline FuzzFiles& files() {
  static FuzzFiles instance;
  return instance;
}

}  // namespace testfleet::fuzz
