#include "reports/durations.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

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

namespace {

// Reads `.test_durations` as it streams by (no document is built: a file of a million tests is read at
// the speed of its bytes). Only a flat object of numbers is accepted; the first problem stops the parse.
class DurationsReader : public nlohmann::json_sax<nlohmann::json> {
 public:
  DurationsReader(const std::filesystem::path& path, const std::string& text, DurationTable& out)
      : path_(path), text_(text), out_(out) {}

  // Empty while the file is good.
  const std::string& error() const { return error_; }

  bool null() override { return not_a_number("null"); }
  bool boolean(bool value) override { return not_a_number(value ? "true" : "false"); }
  bool number_integer(number_integer_t value) override {
    return number(static_cast<double>(value), [value] { return std::to_string(value); });
  }
  bool number_unsigned(number_unsigned_t value) override {
    return number(static_cast<double>(value), [value] { return std::to_string(value); });
  }
  bool number_float(number_float_t value, const string_t& text) override {
    return number(value, [&text] { return text; });
  }
  bool string(string_t& value) override { return not_a_number(nlohmann::json(value).dump()); }
  bool binary(binary_t&) override { return not_a_number("binary data"); }
  bool start_object(std::size_t) override {
    if (depth_ == 0) {
      depth_ = 1;
      return true;
    }
    return not_a_number("an object");
  }
  bool key(string_t& value) override {
    key_ = std::move(value);
    return true;
  }
  bool end_object() override {
    depth_ = 0;
    return true;
  }
  bool start_array(std::size_t) override {
    return depth_ == 0 ? not_an_object("an array") : not_a_number("an array");
  }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    std::string what = e.what();
    std::size_t pos = what.find("error");
    error_ = fmt::format("{}:{}: not a valid durations file: {}", path_.string(),
                         line_and_column(text_, position > 0 ? position - 1 : 0),
                         pos == std::string::npos ? what : what.substr(pos));
    return false;
  }

 private:
  // `text_of` gives the number as the file wrote it, for an error only.
  template <typename TextOf>
  bool number(double seconds, TextOf text_of) {
    if (depth_ == 0) return not_an_object("a number");
    if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxSeconds) {
      error_ = fmt::format("{}: the duration of '{}' is {}: it must be between 0 and {} seconds",
                           path_.string(), key_, text_of(), kMaxSeconds);
      return false;
    }
    out_.insert_or_assign(key_, seconds);  // a key given twice: the last value, as JSON parsers do
    return true;
  }
  bool not_a_number(const std::string& what) {
    if (depth_ == 0) return not_an_object(what);
    error_ = fmt::format("{}: the duration of '{}' must be a number of seconds, not {}", path_.string(), key_,
                         what);
    return false;
  }
  bool not_an_object(const std::string& what) {
    error_ = fmt::format("{}: a durations file must hold a JSON object of test ID to seconds, not {}",
                         path_.string(), what);
    return false;
  }

  const std::filesystem::path& path_;
  const std::string& text_;
  DurationTable& out_;
  int depth_ = 0;
  std::string key_;
  std::string error_;
};

}  // namespace

void DurationStore::load_test_durations(const std::filesystem::path& path) {
  std::string text = util::read_file(path);
  DurationTable read;
  // pytest-split writes a line per test (json.dump with indent): the lines count the tests, where a guess
  // from the size sized the table twice too large (96 MB zeroed for 900,000 tests). A file on one line
  // gets the guess, and the table grows if it was short.
  std::size_t lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  read.reserve(lines > 2 ? lines : text.size() / 64, text.size());
  DurationsReader reader(path, text, read);
  bool parsed = nlohmann::json::sax_parse(text, &reader);
  if (!reader.error().empty()) throw UsageError(reader.error());
  if (!parsed) throw UsageError(fmt::format("{}: not a valid durations file", path.string()));
  if (by_id_.empty()) {
    by_id_ = std::move(read);
  } else {
    for (const auto& [id, seconds] : read.entries()) by_id_.insert_or_assign(id, seconds);
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
  if (std::optional<double> seconds = by_id_.find(id)) return seconds;
  if (key != nullptr) {
    if (auto it = by_junit_key_.find(junit_key_text(key->classname, key->name)); it != by_junit_key_.end()) {
      return it->second;
    }
  }
  return std::nullopt;
}

void DurationStore::set(std::string_view id, double seconds) {
  by_id_.insert_or_assign(id, seconds);
}

std::string DurationStore::to_test_durations_json() const {
  std::vector<std::pair<std::string_view, double>> sorted = by_id_.entries();
  std::sort(sorted.begin(), sorted.end());
  nlohmann::ordered_json document = nlohmann::ordered_json::object();
  for (const auto& [id, seconds] : sorted) document[std::string(id)] = seconds;
  return document.dump(4, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace testfleet::reports
