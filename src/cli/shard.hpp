// Which shard of a plan this machine runs: `--shard K/N`, or what the CI system says (GitLab `parallel:`,
// CircleCI, Buildkite, Semaphore, Kubernetes Indexed Jobs, Bazel test sharding). Every machine computes the
// same split of the whole suite and runs its own part (planning::shard_tests).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "util/subprocess.hpp"

namespace testfleet::cli {

struct ShardSpec {
  int index = 1;  // 1-based
  int count = 1;
  std::string source;  // "--shard", "GitLab (CI_NODE_INDEX/CI_NODE_TOTAL)", ...
  // Bazel: touched to say the runner shards; the merged JUnit is copied to the XML output file.
  std::optional<std::filesystem::path> bazel_status_file;
  std::optional<std::filesystem::path> bazel_xml_output;
};

// `flag` is "K/N", "off" or empty (detect); `total` is --shards (the count for Kubernetes Indexed Jobs).
// Throws UsageError naming the flag or variable whose value is wrong.
std::optional<ShardSpec> resolve_shard(const std::string& flag, int total, const util::EnvVars& env);

}  // namespace testfleet::cli
