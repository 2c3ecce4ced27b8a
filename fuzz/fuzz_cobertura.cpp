// Any bytes as a Cobertura report, merged with itself: refused with a problem, or merged into a report that
// parses again and counts what the first merge counted.
#include <cstdlib>

#include "fuzz_input.hpp"
#include "reports/cobertura.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace testfleet;
  std::filesystem::path input = fuzz::files().write("coverage.xml", data, size);
  std::filesystem::path out = fuzz::files().out("merged.xml");
  reports::CoberturaResult first = reports::merge_cobertura({input, input}, out);
  if (!first.problems.empty()) return 0;
  std::filesystem::path again = fuzz::files().out("again.xml");
  reports::CoberturaResult second = reports::merge_cobertura({out}, again);
  if (!second.problems.empty() || second.lines_valid != first.lines_valid ||
      second.lines_covered != first.lines_covered || second.branches_valid != first.branches_valid) {
    std::abort();
  }
  return 0;
}
