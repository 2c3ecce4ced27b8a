// Any bytes as an LCOV tracefile: refused with a problem, or merged into a tracefile that reads again with
// the same counts.
#include <cstdlib>

#include "fuzz_input.hpp"
#include "reports/lcov.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace testfleet;
  std::filesystem::path input = fuzz::files().write("input.info", data, size);
  std::filesystem::path out = fuzz::files().out("merged.info");
  reports::LcovResult first = reports::merge_lcov({input, input}, out);
  if (!first.problems.empty()) return 0;
  std::filesystem::path again = fuzz::files().out("again.info");
  reports::LcovResult second = reports::merge_lcov({out}, again);
  if (!second.problems.empty() || second.lines_found != first.lines_found ||
      second.branches_found != first.branches_found || second.functions_found != first.functions_found ||
      second.records != first.records) {
    std::abort();
  }
  return 0;
}
