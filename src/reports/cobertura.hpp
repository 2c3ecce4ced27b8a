// Cobertura XML (coverage.py's `coverage xml`, and other producers): merging the reports of many groups
// into one, as `coverage combine` + `coverage xml` would have written it (../shared/FORMATS.md).
//
// Groups run in different checkouts or temporary directories, so one file appears under different
// <source> roots. Every class is resolved to its absolute path (source + filename), then made relative to
// its own report's root (its one source, or the common ancestor of several), which is the same for every
// group; the result has one <source>, the first report's root. Lines are united and hits summed; for a
// branch line the missing branches are intersected (a branch is missing only if no group took it), which
// is exact where a producer writes `missing-branches` and falls back to the largest covered count where it
// does not. Every count and rate is recomputed at class, package and root level.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <vector>

#include "reports/junit.hpp"

namespace testfleet::reports {

struct CoberturaResult {
  std::vector<InputProblem> problems;  // inputs that were refused; the others were merged
  std::size_t files = 0;               // classes in the result
  std::size_t lines_valid = 0;
  std::size_t lines_covered = 0;
  std::size_t branches_valid = 0;
  std::size_t branches_covered = 0;
};

// Merges `inputs` into `out`. `source` is the one <source> of the result, when given; by default the
// first good input's root. A malformed, truncated, hostile or non-<coverage> input is recorded in
// `problems` and skipped. Throws InfrastructureError when `out` cannot be written (it is written even when
// every input was refused: an empty report, so that the problems and not a missing file are what a CI step
// shows).
CoberturaResult merge_cobertura(const std::vector<std::filesystem::path>& inputs,
                                const std::filesystem::path& out,
                                const std::optional<std::filesystem::path>& source = std::nullopt);

// coverage.py's rate: "1" when `total` is 0, else hit/total to 4 significant digits ("0.6667", "1e-05").
std::string coverage_rate(std::size_t hit, std::size_t total);

}  // namespace testfleet::reports
