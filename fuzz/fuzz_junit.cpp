// Any bytes as a JUnit file: read_testcases either returns or throws UsageError; the merger records the
// problem or merges, and what it writes must parse again with the same outcomes.
#include <cstdlib>

#include "fuzz_input.hpp"
#include "reports/junit.hpp"
#include "util/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace testfleet;
  std::filesystem::path input = fuzz::files().write("input.xml", data, size);
  std::size_t read = 0;
  try {
    read = reports::read_testcases(input).size();
  } catch (const UsageError&) {
    return 0;
  }
  reports::JUnitMerger merger;
  if (!merger.add_file(input)) std::abort();  // read_testcases accepted it
  std::filesystem::path out = fuzz::files().out("merged.xml");
  merger.write(out);
  std::vector<reports::TestCaseRecord> again =
      reports::read_testcases(out);  // throws, and so crashes, if invalid
  if (again.size() != read || merger.totals().tests != read) std::abort();
  return 0;
}
