// Splitting tests into groups whose summed durations are as even as they can be. The plan depends only on
// the set of tests and their durations, never on the order they were collected in, so that machines which
// collect in different orders (CI shards) compute the same plan.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace testfleet::planning {

struct Test {
  std::string id;
  double seconds = 0;      // known or estimated duration
  bool estimated = false;  // no duration was known: `seconds` is the estimate
};

struct Group {
  int index = 0;                   // 1-based
  std::vector<std::size_t> tests;  // indices into Plan::tests, in collection order
  double seconds = 0;              // estimated
};

enum class Algorithm {
  kLpt,     // longest first into the least loaded group
  kChunks,  // contiguous runs of the canonical (sorted by ID) order, so files and classes stay together
};

Algorithm parse_algorithm(std::string_view name);  // throws UsageError naming the value
std::string_view to_string(Algorithm algorithm);

struct Plan {
  std::vector<Test> tests;  // in collection order
  std::vector<Group> groups;
  int requested_groups = 0;  // more than groups.size() when there were fewer tests than groups
  Algorithm algorithm = Algorithm::kLpt;

  double total_seconds() const;
  double makespan_seconds() const;  // the largest group's estimate
  // max(total / groups, longest test): no split can do better.
  double lower_bound_seconds() const;
  std::size_t estimated_count() const;
};

// Splits `tests` (in collection order) into at most `groups` non-empty groups. Duplicated IDs are a
// UsageError (the runner collected one test twice). An empty `tests` gives a plan without groups.
Plan make_plan(std::vector<Test> tests, int groups, Algorithm algorithm);

// The tests of shard `index` of `count` (1-based), in collection order: the whole suite is first split into
// `count` shards by duration (LPT), the same on every machine whatever its collection order; each machine
// then plans its own shard into local groups. A shard beyond the number of tests is empty.
std::vector<Test> shard_tests(const std::vector<Test>& tests, int index, int count);

}  // namespace testfleet::planning
