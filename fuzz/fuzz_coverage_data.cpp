// Any bytes as a coverage.py data file (an SQLite database): refused with a problem, or combined with itself
// into a file that reads again with the same files and lines.
#include <cstdlib>

#include "fuzz_input.hpp"
#include "reports/coverage_data.hpp"
#include "util/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace testfleet;
  std::filesystem::path input = fuzz::files().write("input.coverage", data, size);
  std::filesystem::path out = fuzz::files().out("combined.coverage");
  std::filesystem::remove(out);
  reports::CoverageCombineResult first;
  try {
    first = reports::combine_coverage_data({input, input}, out);
  } catch (const UsageError&) {
    return 0;  // not coverage data, or line and arc data mixed: named, nothing written
  }
  if (!first.problems.empty()) return 0;
  std::filesystem::path again = fuzz::files().out("again.coverage");
  std::filesystem::remove(again);
  reports::CoverageCombineResult second = reports::combine_coverage_data({out}, again);
  if (!second.problems.empty() || second.files != first.files || second.lines != first.lines ||
      second.has_arcs != first.has_arcs) {
    std::abort();
  }
  return 0;
}
