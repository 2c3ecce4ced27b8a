// Configuration from `[tool.testfleet]` in pyproject.toml or from testfleet.toml, read with toml++ so that
// every error names the file, line and key. Flags win over it: the caller applies only the keys whose flag
// was not given.
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "cli/run_options.hpp"

namespace testfleet::cli {

struct LoadedConfig {
  RunOptions options;
  std::set<std::string> keys;  // which keys the file set
  std::filesystem::path file;
};

// Reads `explicit_file` when given, else ./testfleet.toml, else [tool.testfleet] of ./pyproject.toml.
// Returns nothing when there is no configuration. Throws UsageError on an unknown key or a wrong type.
std::optional<LoadedConfig> load_config(const std::optional<std::filesystem::path>& explicit_file);

}  // namespace testfleet::cli
