#include "reports/durations.hpp"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "reports/junit.hpp"
#include "util/error.hpp"
#include "util/files.hpp"

namespace testfleet::reports {
namespace {

// Longer than any test anyone would wait for: such a value is a corrupt file, not a duration.
constexpr double kMaxSeconds = 7 * 24 * 3600.0;

std::string junit_key_text(const std::string& classname, const std::string& name) {
  return classname + '\x1f' + name;
}

std::string line_and_column(const std::string& text, std::size_t byte) {
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return fmt::format("{}:{}", line, column);
}

}  // namespace

void DurationStore::load_test_durations(const std::filesystem::path& path) {
  std::string text = util::read_file(path);
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    std::size_t pos = what.find("error");
    throw UsageError(fmt::format("{}:{}: not a valid durations file: {}", path.string(),
                                 line_and_column(text, e.byte > 0 ? e.byte - 1 : 0),
                                 pos == std::string::npos ? what : what.substr(pos)));
  }
  if (!document.is_object()) {
    throw UsageError(fmt::format("{}: a durations file must hold a JSON object of test ID to seconds, not {}",
                                 path.string(), document.type_name()));
  }
  for (const auto& [id, value] : document.items()) {
    if (!value.is_number()) {
      throw UsageError(fmt::format("{}: the duration of '{}' must be a number of seconds, not {}",
                                   path.string(), id, value.dump()));
    }
    double seconds = value.get<double>();
    if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxSeconds) {
      throw UsageError(fmt::format("{}: the duration of '{}' is {}: it must be between 0 and {} seconds",
                                   path.string(), id, value.dump(), kMaxSeconds));
    }
    by_id_[id] = seconds;
  }
}

void DurationStore::load_junit(const std::filesystem::path& path) {
  for (const TestCaseRecord& record : read_testcases(path)) {
    if (!std::isfinite(record.time) || record.time < 0 || record.time > kMaxSeconds) continue;
    // A failing call plus a teardown error gives two testcases of one test: keep the longer time.
    double& slot = by_junit_key_[junit_key_text(record.classname, record.name)];
    slot = std::max(slot, record.time);
  }
}

std::optional<double> DurationStore::lookup(const std::string& id, const JUnitKey* key) const {
  if (auto it = by_id_.find(id); it != by_id_.end()) return it->second;
  if (key != nullptr) {
    if (auto it = by_junit_key_.find(junit_key_text(key->classname, key->name)); it != by_junit_key_.end()) {
      return it->second;
    }
  }
  return std::nullopt;
}

void DurationStore::set(const std::string& id, double seconds) {
  by_id_[id] = seconds;
}

std::string DurationStore::to_test_durations_json() const {
  nlohmann::ordered_json document = nlohmann::ordered_json::object();
  for (const auto& [id, seconds] : by_id_) document[id] = seconds;
  return document.dump(4, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace testfleet::reports
