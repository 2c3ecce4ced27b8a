// Any bytes as a `.test_durations` file: refused with a usage error naming the file, or read into durations
// that are all finite and not negative, and that read back the same after being written out.
#include <cmath>
#include <cstdlib>

#include "fuzz_input.hpp"
#include "reports/durations.hpp"
#include "util/error.hpp"
#include "util/files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace testfleet;
  std::filesystem::path input = fuzz::files().write("test_durations.json", data, size);
  reports::DurationStore store;
  try {
    store.load_test_durations(input);
  } catch (const UsageError&) {
    return 0;
  }
  for (const auto& [id, seconds] : store.entries()) {
    if (!std::isfinite(seconds) || seconds < 0) std::abort();
  }
  std::filesystem::path again = fuzz::files().out("again.json");
  util::write_file_atomic(again, store.to_test_durations_json());
  reports::DurationStore reread;
  reread.load_test_durations(again);  // what we write, we read: a throw here is a finding
  if (reread.size() != store.size()) std::abort();
  return 0;
}
