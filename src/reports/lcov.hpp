// LCOV tracefiles (geninfo/lcov, coverage.py `coverage lcov`, c8, llvm-cov export): merging the tracefiles
// of many groups into one, as `lcov -a` does (../shared/FORMATS.md).
//
// Records are merged per (test name, source file). Line counts are summed; a branch counts "-" (its line
// never ran) plus "-" as "-" and "-" plus n as n; functions are merged by name (FN/FNDA) or, in the lcov
// >= 2.2 form, by location with their aliases (FNL/FNA), and the result keeps the form its inputs used.
// The summary counts (LF/LH, BRF/BRH, FNF/FNH) are recomputed, never summed: a tracefile's own are those of
// one group. A branch's block/branch text is free (coverage.py writes prose with commas), so a BRDA line is
// split at its first two and its last comma.
#pragma once

#include <cstddef>
#include <filesystem>
#include <vector>

#include "reports/junit.hpp"

namespace testfleet::reports {

struct LcovResult {
  std::vector<InputProblem> problems;  // inputs refused ("file:line: what"): not merged
  // Inputs merged with a doubt: a line whose checksum differs from an earlier input's (the source changed
  // between groups); the earlier checksum is kept.
  std::vector<InputProblem> warnings;
  std::size_t records = 0;  // (test name, source file) pairs in the result
  std::size_t lines_found = 0;
  std::size_t lines_hit = 0;
  std::size_t branches_found = 0;
  std::size_t branches_hit = 0;
  std::size_t functions_found = 0;
  std::size_t functions_hit = 0;
};

// Merges `inputs` into `out`; a malformed or truncated input (a record without end_of_record, a count that
// is not a number) is recorded in `problems` and skipped whole. Throws InfrastructureError when `out`
// cannot be written.
LcovResult merge_lcov(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& out);

}  // namespace testfleet::reports
