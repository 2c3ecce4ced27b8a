// Past test durations, the input of planning: pytest-split's `.test_durations` (a JSON object of test ID to
// seconds) and JUnit XML files of earlier runs, which name tests by (classname, name) rather than by ID.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "reports/duration_table.hpp"

namespace testfleet::reports {

struct JUnitKey {
  std::string classname;
  std::string name;
};

class DurationStore {
 public:
  // Reads a `.test_durations` file. Throws UsageError naming the file and the line, or the key, when it is
  // not a JSON object of non-negative finite numbers.
  void load_test_durations(const std::filesystem::path& path);
  // Reads the testcases of a JUnit file (any producer); their times answer lookups by JUnit key.
  void load_junit(const std::filesystem::path& path);

  // The duration of a test by its ID, else by its JUnit key when the runner can name one.
  std::optional<double> lookup(const std::string& id, const JUnitKey* key = nullptr) const;
  // Whether any JUnit file was read: without one, a test's JUnit key need not be made for lookup().
  bool has_junit_keys() const { return !by_junit_key_.empty(); }

  void set(std::string_view id, double seconds);
  std::size_t size() const { return by_id_.size(); }
  // In no particular order; the views live as long as the store is not changed.
  std::vector<std::pair<std::string_view, double>> entries() const { return by_id_.entries(); }

  // pytest-split's format: sorted keys, indent 4.
  std::string to_test_durations_json() const;

 private:
  DurationTable by_id_;
  std::unordered_map<std::string, double> by_junit_key_;
};

}  // namespace testfleet::reports
