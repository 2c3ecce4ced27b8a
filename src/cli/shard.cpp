#include "cli/shard.hpp"

#include <fmt/format.h>

#include <charconv>

#include "util/error.hpp"

namespace testfleet::cli {
namespace {

int parse_int(std::string_view text, const std::string& what) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw UsageError(fmt::format("{} is '{}': not a whole number", what, text));
  }
  return value;
}

std::optional<std::string> get(const util::EnvVars& env, const char* key) {
  auto it = env.find(key);
  if (it == env.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

ShardSpec checked(int index, int count, std::string source) {
  if (count < 1 || index < 1 || index > count) {
    throw UsageError(fmt::format("{} gives shard {} of {}: the index must run from 1 to the count (>= 1)",
                                 source, index, count));
  }
  return ShardSpec{index, count, std::move(source), std::nullopt, std::nullopt};
}

// A CI system's pair of variables; `base` is the index of its first node (0 or 1).
std::optional<ShardSpec> from_pair(const util::EnvVars& env, const char* index_key, const char* total_key,
                                   int base, const char* system) {
  std::optional<std::string> index = get(env, index_key);
  std::optional<std::string> total = get(env, total_key);
  if (!index || !total) return std::nullopt;
  std::string source = fmt::format("{} ({}/{})", system, index_key, total_key);
  return checked(parse_int(*index, std::string(index_key)) - base + 1,
                 parse_int(*total, std::string(total_key)), source);
}

}  // namespace

std::optional<ShardSpec> resolve_shard(const std::string& flag, int total, const util::EnvVars& env) {
  if (flag == "off") return std::nullopt;
  if (!flag.empty()) {
    std::size_t slash = flag.find('/');
    if (slash == std::string::npos) throw UsageError(fmt::format("--shard '{}' must be K/N, e.g. 2/4", flag));
    return checked(parse_int(flag.substr(0, slash), "--shard's index"),
                   parse_int(flag.substr(slash + 1), "--shard's count"), "--shard");
  }
  if (std::optional<ShardSpec> bazel = from_pair(env, "TEST_SHARD_INDEX", "TEST_TOTAL_SHARDS", 0, "Bazel")) {
    if (std::optional<std::string> status = get(env, "TEST_SHARD_STATUS_FILE"))
      bazel->bazel_status_file = *status;
    if (std::optional<std::string> xml = get(env, "XML_OUTPUT_FILE")) bazel->bazel_xml_output = *xml;
    return bazel;
  }
  if (auto gitlab = from_pair(env, "CI_NODE_INDEX", "CI_NODE_TOTAL", 1, "GitLab")) return gitlab;
  if (auto circle = from_pair(env, "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0, "CircleCI")) return circle;
  if (auto buildkite =
          from_pair(env, "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0, "Buildkite")) {
    return buildkite;
  }
  if (auto semaphore = from_pair(env, "SEMAPHORE_JOB_INDEX", "SEMAPHORE_JOB_COUNT", 1, "Semaphore"))
    return semaphore;
  if (std::optional<std::string> index = get(env, "JOB_COMPLETION_INDEX")) {
    int count = total;
    std::string source = "Kubernetes Indexed Job (JOB_COMPLETION_INDEX, --shards)";
    if (count <= 0) {
      std::optional<std::string> shards = get(env, "TESTFLEET_SHARDS");
      if (!shards) {
        throw UsageError(
            "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but not the number of shards: pass "
            "--shards N or set TESTFLEET_SHARDS to the Job's completions");
      }
      count = parse_int(*shards, "TESTFLEET_SHARDS");
      source = "Kubernetes Indexed Job (JOB_COMPLETION_INDEX, TESTFLEET_SHARDS)";
    }
    return checked(parse_int(*index, "JOB_COMPLETION_INDEX") + 1, count, source);
  }
  return std::nullopt;
}

}  // namespace testfleet::cli
