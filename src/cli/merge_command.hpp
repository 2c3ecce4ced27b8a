#pragma once

#include <string>
#include <vector>

namespace testfleet::cli {

// `testfleet merge junit|cobertura|lcov|coverage OUT IN...`: IN may be globs. Returns 0, or 2 when an input
// was bad (the good ones are still merged, the bad ones named with their position). `remaps` ("FROM=TO",
// coverage only) rewrite the leading part of the paths in coverage.py data, as its [paths] setting does.
int merge_reports(const std::string& kind, const std::string& out, const std::vector<std::string>& inputs,
                  const std::vector<std::string>& remaps = {});

// `testfleet merge runs OUT IN...`: the fan-in of shards. Each IN is a run's reports directory (a CI
// artifact); OUT receives one junit.xml, coverage.xml (when the runs have one), .test_durations (`durations`,
// when given, is the starting point) and summary.md. A shard missing from IN fails with exit 3, so that a
// shard that never uploaded cannot look green; failed tests give 1, bad inputs 2.
int merge_runs(const std::string& out, const std::vector<std::string>& inputs, const std::string& durations);

// Expands shell-style globs (no shell involved); a pattern matching nothing is an error naming it.
std::vector<std::string> expand_globs(const std::vector<std::string>& patterns);

}  // namespace testfleet::cli
