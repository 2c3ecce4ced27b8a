// Merging JUnit files from different producers into one file that both publish-unit-test-result-action
// (counts from the top-level suites' attributes) and GitLab (testcases only) read right.
//
// Every testcase is kept as its producer wrote it (failure text, system-out, Surefire's rerun and flaky
// elements). What is kept in memory is where each testcase's text is in its file: the text is copied from the
// file again when the result is written, so a merge holds two input documents at a time (files are read on
// two threads) and a few dozen bytes a testcase, whatever the size of the inputs. A testcase whose text
// cannot be copied as it is (see XmlInput::verbatim) is serialised from its document and kept in memory
// instead. Two things are rewritten because consumers would otherwise misread them: a time with thousands
// commas ("1,234.5" reads as 1 in Ruby and fails in Python), and ctest's `status="disabled"`/`"notrun"`
// testcase, which has no child element and so reads as passed: it gets a <skipped> child. A testcase without
// a name is left out: it is no test's result (pytest writes one when a Ctrl-C interrupts a test), and kept it
// would count as passed. Counts are never trusted: every suite's tests, failures, errors and skipped are
// recomputed from the testcases under it, nested suites included, because that is what the top-level
// attributes must say for a publisher that reads nothing else.
#include "reports/junit.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "reports/xml_input.hpp"
#include "util/error.hpp"

namespace testfleet::reports {

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::kPassed:
      return "passed";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kError:
      return "error";
    case Outcome::kSkipped:
      return "skipped";
    case Outcome::kNotRun:
      return "not run";
  }
  return "unknown";
}

namespace {

// Deeper nesting than this is no producer's: refusing it bounds the recursion on hostile input.
constexpr int kMaxSuiteDepth = 64;

// The attributes we recompute; whatever a producer wrote for them is dropped.
bool is_count_attribute(std::string_view name) {
  return name == "name" || name == "tests" || name == "failures" || name == "errors" || name == "skipped" ||
         name == "disabled" || name == "time";
}

// "1,234.5" -> 1234.5; anything unreadable, negative or not finite -> nullopt.
std::optional<double> parse_time(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  std::string without_commas;
  if (text.find(',') != std::string_view::npos) {
    for (char c : text) {
      if (c != ',') without_commas += c;
    }
    text = without_commas;
  }
  if (text.empty()) return std::nullopt;
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(value) || value < 0) {
    return std::nullopt;
  }
  return value;
}

std::string element_text(pugi::xml_node element) {
  std::string text;
  for (pugi::xml_node child = element.first_child(); child; child = child.next_sibling()) {
    if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) text += child.value();
  }
  return text;
}

bool is_not_run_status(std::string_view status) {
  return status == "disabled" || status == "notrun";
}

// What a testcase element says, by the precedence of publish-unit-test-result-action (error > failure >
// skipped); Surefire's flaky and rerun elements do not change the outcome.
struct Verdict {
  Outcome outcome = Outcome::kPassed;
  bool flaky = false;
  double time = 0;
  const char* classname = "";
  const char* name = "";
  pugi::xml_node detail;  // the <error>, <failure> or <skipped> that decided
};

Verdict judge(pugi::xml_node testcase) {
  Verdict verdict;
  std::string_view status;
  // One pass over the attributes: for 200,000 testcases, looking each one up by name shows.
  for (pugi::xml_attribute attribute = testcase.first_attribute(); attribute;
       attribute = attribute.next_attribute()) {
    const char* attribute_name = attribute.name();
    if (std::strcmp(attribute_name, "classname") == 0) {
      verdict.classname = attribute.value();
    } else if (std::strcmp(attribute_name, "name") == 0) {
      verdict.name = attribute.value();
    } else if (std::strcmp(attribute_name, "time") == 0) {
      verdict.time = parse_time(attribute.value()).value_or(0.0);
    } else if (std::strcmp(attribute_name, "status") == 0) {
      status = attribute.value();
    }
  }
  pugi::xml_node error;
  pugi::xml_node failure;
  pugi::xml_node skipped;
  bool flaky = false;
  for (pugi::xml_node child = testcase.first_child(); child; child = child.next_sibling()) {
    const char* name = child.name();
    if (!error && std::strcmp(name, "error") == 0) error = child;
    if (!failure && std::strcmp(name, "failure") == 0) failure = child;
    if (!skipped && std::strcmp(name, "skipped") == 0) skipped = child;
    if (std::strcmp(name, "flakyFailure") == 0 || std::strcmp(name, "flakyError") == 0) flaky = true;
  }
  if (error) {
    verdict.outcome = Outcome::kError;
    verdict.detail = error;
  } else if (failure) {
    verdict.outcome = Outcome::kFailed;
    verdict.detail = failure;
  } else if (skipped) {
    verdict.outcome = Outcome::kSkipped;
    verdict.detail = skipped;
  } else if (is_not_run_status(status)) {
    verdict.outcome = Outcome::kNotRun;
  } else {
    verdict.flaky = flaky;
  }
  return verdict;
}

TestCaseRecord record_of(pugi::xml_node testcase, const Verdict& verdict, std::string_view suite) {
  TestCaseRecord record;
  record.suite = std::string(suite);
  record.classname = verdict.classname;
  record.name = verdict.name;
  record.file = testcase.attribute("file").value();
  record.line = std::max(0, testcase.attribute("line").as_int());
  record.time = verdict.time;
  record.outcome = verdict.outcome;
  record.flaky = verdict.flaky;
  if (verdict.detail) {
    record.message = verdict.detail.attribute("message").value();
    record.text = element_text(verdict.detail);
  } else if (verdict.outcome == Outcome::kNotRun) {
    record.message = fmt::format("status={}", testcase.attribute("status").value());
  }
  return record;
}

// Refuses suites nested past kMaxSuiteDepth before anything of the file is used.
void check_nesting(const XmlInput& input, pugi::xml_node node, int depth) {
  if (depth > kMaxSuiteDepth) {
    input.fail(node, fmt::format("<testsuite> nested deeper than {} levels", kMaxSuiteDepth));
  }
  for (pugi::xml_node suite : node.children("testsuite")) check_nesting(input, suite, depth + 1);
}

// Receives a file's structure in document order.
class SuiteVisitor {
 public:
  virtual ~SuiteVisitor() = default;
  virtual void enter_suite(pugi::xml_node suite, std::string_view name) = 0;
  // `case_time`: the sum of the times of the testcases under this suite in this file.
  virtual void leave_suite(pugi::xml_node suite, double case_time) = 0;
  virtual void testcase(pugi::xml_node testcase, const Verdict& verdict, std::string_view suite) = 0;
  // <properties>, <system-out>, <system-err> or anything else that is neither a suite nor a testcase.
  virtual void suite_child(pugi::xml_node child) = 0;
};

// A testcase without a name is no test's result: pytest, interrupted by a Ctrl-C, writes one (`<testcase
// time="0.006" />`, from the interrupted test's setup) that would count as a passed test.
bool is_result(const Verdict& verdict) {
  return *verdict.name != '\0';
}

double walk_suite(pugi::xml_node suite, std::string_view name, SuiteVisitor& visitor) {
  visitor.enter_suite(suite, name);
  double case_time = 0;
  for (pugi::xml_node child = suite.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view child_name = child.name();
    if (child_name == "testcase") {
      Verdict verdict = judge(child);
      if (!is_result(verdict)) continue;
      case_time += verdict.time;
      visitor.testcase(child, verdict, name);
    } else if (child_name == "testsuite") {
      case_time += walk_suite(child, child.attribute("name").value(), visitor);
    } else {
      visitor.suite_child(child);
    }
  }
  visitor.leave_suite(suite, case_time);
  return case_time;
}

void walk_file(const XmlInput& input, SuiteVisitor& visitor) {
  pugi::xml_node root = input.root();
  check_nesting(input, root, std::string_view(root.name()) == "testsuite" ? 1 : 0);
  if (std::string_view(root.name()) == "testsuite") {
    walk_suite(root, root.attribute("name").value(), visitor);
    return;
  }
  // A <testsuites> root. Testcases written straight under it (no schema allows them, some tools do) are
  // kept in a suite named after the root, so that none is lost.
  bool loose_cases = false;
  for (pugi::xml_node child : root.children()) {
    if (std::string_view(child.name()) == "testsuite") {
      walk_suite(child, child.attribute("name").value(), visitor);
    } else if (std::string_view(child.name()) == "testcase") {
      loose_cases = loose_cases || is_result(judge(child));
    }
  }
  if (!loose_cases) return;
  std::string name = root.attribute("name").value();
  if (name.empty()) name = input.path().stem().string();
  visitor.enter_suite(root, name);
  double case_time = 0;
  for (pugi::xml_node child : root.children("testcase")) {
    Verdict verdict = judge(child);
    if (!is_result(verdict)) continue;
    case_time += verdict.time;
    visitor.testcase(child, verdict, name);
  }
  visitor.leave_suite(pugi::xml_node(), case_time);
}

class RecordCollector final : public SuiteVisitor {
 public:
  void enter_suite(pugi::xml_node, std::string_view) override {}
  void leave_suite(pugi::xml_node, double) override {}
  void testcase(pugi::xml_node testcase, const Verdict& verdict, std::string_view suite) override {
    records.push_back(record_of(testcase, verdict, suite));
  }
  void suite_child(pugi::xml_node) override {}

  std::vector<TestCaseRecord> records;
};

std::string format_time(double seconds) {
  return fmt::format("{:.3f}", seconds);
}

// A suite's `timestamp` as seconds since the epoch.
struct Timestamp {
  double seconds = 0;
  bool zoned = false;  // it named its zone; one without is read as UTC and compares only with its kind
};

// Reads `digits` decimal digits at text[at...]; -1 when they are not all there.
int digits_at(std::string_view text, std::size_t at, std::size_t digits) {
  if (at + digits > text.size()) return -1;
  int value = 0;
  for (std::size_t i = at; i < at + digits; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

// ISO 8601 as producers write it: "2024-05-02T10:11:12" (surefire, ctest, jest-junit, pytest 7), with a
// fraction ("...12.012013"), with a zone ("...Z", "...+01:00", "...+0100": pytest 8, Go's tools), 'T' or a
// space between date and time. nullopt for anything else.
std::optional<Timestamp> parse_timestamp(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  int year = digits_at(text, 0, 4);
  int month = digits_at(text, 5, 2);
  int day = digits_at(text, 8, 2);
  int hour = digits_at(text, 11, 2);
  int minute = digits_at(text, 14, 2);
  int second = digits_at(text, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0 || text[4] != '-' ||
      text[7] != '-' || (text[10] != 'T' && text[10] != ' ') || text[13] != ':' || text[16] != ':' ||
      hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::chrono::year_month_day date{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                                   std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok()) return std::nullopt;
  Timestamp stamp;
  stamp.seconds = static_cast<double>(std::chrono::sys_days(date).time_since_epoch().count()) * 86400.0 +
                  hour * 3600.0 + minute * 60.0 + second;
  std::size_t at = 19;
  if (at < text.size() && (text[at] == '.' || text[at] == ',')) {
    double scale = 0.1;
    std::size_t digits = 0;
    for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++digits, scale /= 10) {
      stamp.seconds += (text[at] - '0') * scale;
    }
    if (digits == 0) return std::nullopt;
  }
  if (at == text.size()) return stamp;
  stamp.zoned = true;
  if (text[at] == 'Z' && at + 1 == text.size()) return stamp;
  if (text[at] != '+' && text[at] != '-') return std::nullopt;
  int sign = text[at] == '+' ? 1 : -1;
  int zone_hours = digits_at(text, at + 1, 2);
  std::size_t minutes_at = at + 3 < text.size() && text[at + 3] == ':' ? at + 4 : at + 3;
  int zone_minutes = digits_at(text, minutes_at, 2);
  if (zone_hours < 0 || zone_minutes < 0 || minutes_at + 2 != text.size()) return std::nullopt;
  stamp.seconds -= sign * (zone_hours * 3600.0 + zone_minutes * 60.0);
  return stamp;
}

// When a merged suite ran, from its parts: each input's suite of that name at that level, and each testcase
// added to it (JUnitMerger::add_testcase). The suite ran from its earliest part's start (that part's
// timestamp, which the merged suite is given) to its latest part's end (timestamp + time). A part without a
// timestamp ran alongside the others, as the groups of one suite do, so the suite took at least as long as
// its longest part; that is all that is known when no part has a timestamp, or when the timestamps cannot be
// compared (some with a zone, some without). The result does not depend on how the parts were split between
// mergers: absorbing a second merger gives what reading its files here would have.
class SuiteTiming {
 public:
  void add_part(std::string_view timestamp, double seconds) {
    longest_ = std::max(longest_, seconds);
    std::optional<Timestamp> start = parse_timestamp(timestamp);
    if (!start) return;
    (start->zoned ? zoned_ : unzoned_) = true;
    // The first of equal starts keeps its text, as reading the parts one after another would.
    if (!start_ || start->seconds < *start_) {
      start_ = start->seconds;
      start_text_ = std::string(timestamp);
    }
    end_ = std::max(end_, start->seconds + seconds);
  }

  // A testcase added to the suite (JUnitMerger::add_testcase): a part without a timestamp.
  void add_testcase(double seconds) { longest_ = std::max(longest_, seconds); }

  // `later`'s parts, read after this one's.
  void absorb(const SuiteTiming& later) {
    longest_ = std::max(longest_, later.longest_);
    zoned_ = zoned_ || later.zoned_;
    unzoned_ = unzoned_ || later.unzoned_;
    if (later.start_ && (!start_ || *later.start_ < *start_)) {
      start_ = later.start_;
      start_text_ = later.start_text_;
    }
    end_ = std::max(end_, later.end_);
  }

  // Whether the parts' timestamps say when the suite started: start() is then comparable with another
  // comparable suite's of the same zoned().
  bool comparable() const { return start_.has_value() && !(zoned_ && unzoned_); }
  bool zoned() const { return zoned_; }
  double start() const { return start_.value_or(0); }

  double seconds() const { return comparable() ? std::max(end_ - *start_, longest_) : longest_; }

  // The earliest part's timestamp as that part wrote it; empty when no part had one that reads.
  const std::string& timestamp() const { return start_text_; }

 private:
  std::optional<double> start_;
  std::string start_text_;
  double end_ = std::numeric_limits<double>::lowest();  // of the parts with a timestamp
  double longest_ = 0;
  bool zoned_ = false;
  bool unzoned_ = false;
};

void append_attribute(std::string& out, std::string_view name, std::string_view value) {
  out += ' ';
  out += name;
  out += "=\"";
  append_escaped(out, value, true);
  out += '"';
}

// A synthesized testcase's XML: the element for its outcome carries the message and text.
std::string testcase_xml(const TestCaseRecord& record) {
  std::string xml = "<testcase";
  append_attribute(xml, "classname", record.classname);
  append_attribute(xml, "name", record.name);
  if (!record.file.empty()) append_attribute(xml, "file", record.file);
  append_attribute(xml, "time", format_time(record.time));
  std::string_view element;
  switch (record.outcome) {
    case Outcome::kPassed:
      break;
    case Outcome::kFailed:
      element = "failure";
      break;
    case Outcome::kError:
      element = "error";
      break;
    case Outcome::kSkipped:
    case Outcome::kNotRun:
      element = "skipped";
      break;
  }
  if (element.empty()) return xml + "/>";
  xml += fmt::format("><{}", element);
  append_attribute(xml, "message", record.message);
  if (record.text.empty()) {
    xml += "/>";
  } else {
    xml += '>';
    append_escaped(xml, record.text, false);
    xml += fmt::format("</{}>", element);
  }
  xml += "</testcase>";
  return xml;
}

// Holds the serialised testcases in 64 KiB chunks: nothing moves once stored (a growing std::string would
// copy everything at each doubling and hold twice the size meanwhile), and there is no per-testcase heap
// block to pay for.
class Arena {
 public:
  std::string_view store(std::string_view text) {
    if (text.size() > kChunkBytes / 4) {
      // Large fragments get a block of their own, so the current chunk is not abandoned half-full.
      large_.push_back(std::make_unique_for_overwrite<char[]>(text.size()));
      std::memcpy(large_.back().get(), text.data(), text.size());
      return {large_.back().get(), text.size()};
    }
    if (used_ + text.size() > kChunkBytes) {
      chunks_.push_back(std::make_unique_for_overwrite<char[]>(kChunkBytes));
      used_ = 0;
    }
    char* at = chunks_.back().get() + used_;
    std::memcpy(at, text.data(), text.size());
    used_ += text.size();
    return {at, text.size()};
  }

  // Takes another arena's blocks: what was stored in it stays where it is.
  void absorb(Arena&& other) {
    for (auto& block : other.large_) large_.push_back(std::move(block));
    // Its chunks are kept as blocks of their own, so that our current chunk stays the one being filled.
    for (auto& chunk : other.chunks_) large_.push_back(std::move(chunk));
    other.large_.clear();
    other.chunks_.clear();
    other.used_ = kChunkBytes;
  }

 private:
  static constexpr std::size_t kChunkBytes = std::size_t{1} << 16;
  std::vector<std::unique_ptr<char[]>> chunks_;
  std::vector<std::unique_ptr<char[]>> large_;
  std::size_t used_ = kChunkBytes;  // no chunk yet
};

// A sorted copy of `values`, by bytes from the lowest (LSD radix): linear in their number, where a comparison
// sort of 200,000 hashes took a fifth of a whole merge.
std::vector<std::uint64_t> radix_sorted(const std::vector<std::uint64_t>& values) {
  std::vector<std::uint64_t> sorted(values);
  std::vector<std::uint64_t> scratch(values.size());
  for (unsigned shift = 0; shift < 64; shift += 8) {
    std::array<std::size_t, 257> start{};
    for (std::uint64_t value : sorted) ++start[((value >> shift) & 0xFF) + 1];
    for (std::size_t digit = 1; digit < start.size(); ++digit) start[digit] += start[digit - 1];
    for (std::uint64_t value : sorted) scratch[start[(value >> shift) & 0xFF]++] = value;
    sorted.swap(scratch);
  }
  return sorted;
}

}  // namespace

std::vector<TestCaseRecord> read_testcases(const std::filesystem::path& path) {
  XmlInput input(path, {"testsuites", "testsuite"});
  RecordCollector collector;
  walk_file(input, collector);
  return std::move(collector.records);
}

struct JUnitMerger::Impl {
  class MergingVisitor;

  // 24 bytes a testcase, 8 more in `hashes` and 4 in its suite's items: a merge of 200,000 testcases holds
  // under 8 MiB of them.
  struct Case {
    std::uint64_t where;  // offset in its source file (in_file), or address in `arena`
    std::uint32_t length;
    std::uint32_t suite;
    std::uint32_t source;  // 0 is add_testcase, files count from 1
    Outcome outcome;
    bool flaky;
    bool in_file;
  };
  // A suite's items: testcases, and nested suites flagged by the top bit.
  static constexpr std::uint32_t kSuiteItem = 0x80000000u;
  struct Suite {
    std::string name;
    std::vector<std::pair<std::string, std::string>> attributes;  // as first written, counts excluded
    SuiteTiming timing;
    bool disabled_attribute = false;      // ctest writes one; recomputed when any input had it
    std::vector<std::string> properties;  // <property> elements, each once, in the order first seen
    std::unordered_set<std::string> property_set;
    std::string system_out;
    std::string system_err;
    std::string others;  // any other child element, kept
    std::vector<std::uint32_t> items;
    std::unordered_map<std::string, std::uint32_t> children;

    // An attribute keeps the value of the first input that wrote it.
    void add_attribute(std::string_view attribute, std::string_view value) {
      for (const auto& existing : attributes) {
        if (existing.first == attribute) return;
      }
      attributes.emplace_back(attribute, value);
    }
    void add_property(std::string xml) {
      if (property_set.insert(xml).second) properties.push_back(std::move(xml));
    }
    // Each input's output on a line of its own.
    static void add_output(std::string& text, std::string_view value) {
      if (!text.empty() && !value.empty() && text.back() != '\n') text += '\n';
      text += value;
    }
  };
  struct Counts {
    std::size_t tests = 0;
    std::size_t failures = 0;
    std::size_t errors = 0;
    std::size_t skipped = 0;
    std::size_t not_run = 0;
  };
  struct SourceFile {
    std::filesystem::path path;
    FileIdentity identity;
    int fd = -1;  // the first kFilesKeptOpen files stay open; others are opened again by path
  };
  static constexpr std::size_t kFilesKeptOpen = 128;
  class TextReader;

  // suites[0] is the root: its children are the top-level suites.
  std::vector<Suite> suites{1};
  std::deque<Case> cases;
  // Hash of (classname, name) of cases[i]: the names are read back only for equal hashes.
  std::vector<std::uint64_t> hashes;
  // files[source - 1]: what a case's text is read back from.
  std::vector<SourceFile> files;
  Arena arena;
  std::string scratch;  // one testcase serialised, reused
  std::vector<InputProblem> problems;
  std::string root_name;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    for (const SourceFile& file : files) {
      if (file.fd >= 0) ::close(file.fd);
    }
  }

  static std::uint64_t identity_hash(std::string_view classname, std::string_view name) {
    std::uint64_t a = std::hash<std::string_view>{}(classname);
    std::uint64_t b = std::hash<std::string_view>{}(name);
    return a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
  }

  std::uint32_t child_suite(std::uint32_t parent, std::string_view name) {
    auto found = suites[parent].children.find(std::string(name));
    if (found != suites[parent].children.end()) return found->second;
    auto index = static_cast<std::uint32_t>(suites.size());
    suites.emplace_back();
    suites.back().name = std::string(name);
    suites[parent].children.emplace(std::string(name), index);
    suites[parent].items.push_back(index | kSuiteItem);
    return index;
  }

  // A testcase whose text is `xml`, kept in memory.
  void add_case(std::uint32_t suite, std::uint32_t source, std::string_view classname, std::string_view name,
                const Verdict& verdict, std::string_view xml) {
    std::string_view stored = arena.store(xml);
    add_case(suite, source, classname, name, verdict, reinterpret_cast<std::uintptr_t>(stored.data()),
             stored.size(), false);
  }

  void add_case(std::uint32_t suite, std::uint32_t source, std::string_view classname, std::string_view name,
                const Verdict& verdict, std::uint64_t where, std::size_t length, bool in_file) {
    auto index = static_cast<std::uint32_t>(cases.size());
    if (index >= kSuiteItem) throw UsageError("more than 2^31 testcases to merge");
    if (length > UINT32_MAX)
      throw UsageError(fmt::format("a testcase of {} bytes: too large to merge", length));
    hashes.push_back(identity_hash(classname, name));
    suites[suite].items.push_back(index);
    cases.push_back(
        {where, static_cast<std::uint32_t>(length), suite, source, verdict.outcome, verdict.flaky, in_file});
  }

  // The testcase as read back from its XML; outcome and flakiness as judged when it was read (a not-run
  // testcase was given a <skipped> on the way).
  TestCaseRecord record(const Case& stored, std::string_view xml) const {
    pugi::xml_document doc;
    doc.load_buffer(xml.data(), xml.size(), pugi::parse_default);
    pugi::xml_node node = doc.first_child();
    Verdict verdict = judge(node);
    verdict.outcome = stored.outcome;
    verdict.flaky = stored.flaky;
    TestCaseRecord result = record_of(node, verdict, suites[stored.suite].name);
    if (stored.outcome == Outcome::kNotRun) {
      result.message = fmt::format("status={}", node.attribute("status").value());
      result.text.clear();
    }
    return result;
  }

  // Adds what another merger read (from the files after ours) as if this one had read it: its suites merged
  // into ours by name, its testcases after ours in each.
  void absorb(Impl&& other);

  Counts count(std::uint32_t suite, std::vector<Counts>& counts) const {
    Counts total;
    for (std::uint32_t item : suites[suite].items) {
      if (item & kSuiteItem) {
        Counts nested = count(item & ~kSuiteItem, counts);
        total.tests += nested.tests;
        total.failures += nested.failures;
        total.errors += nested.errors;
        total.skipped += nested.skipped;
        total.not_run += nested.not_run;
        continue;
      }
      ++total.tests;
      switch (cases[item].outcome) {
        case Outcome::kPassed:
          break;
        case Outcome::kFailed:
          ++total.failures;
          break;
        case Outcome::kError:
          ++total.errors;
          break;
        case Outcome::kSkipped:
          ++total.skipped;
          break;
        case Outcome::kNotRun:
          ++total.skipped;
          ++total.not_run;
          break;
      }
    }
    counts[suite] = total;
    return total;
  }

  // The root's time when no wall time is given: from the earliest top-level suite's start to the latest one's
  // end when each has a start comparable with the others', else their times added up (different suites with
  // nothing to say they ran at once, taken as one runner runs its suites: one after another).
  double root_seconds() const {
    const std::vector<std::uint32_t>& top = suites[0].items;
    if (top.empty()) return 0;
    const bool zoned = suites[top.front() & ~kSuiteItem].timing.zoned();
    bool spans = true;
    double sum = 0;
    double start = std::numeric_limits<double>::max();
    double end = std::numeric_limits<double>::lowest();
    for (std::uint32_t item : top) {
      const SuiteTiming& timing = suites[item & ~kSuiteItem].timing;
      spans = spans && timing.comparable() && timing.zoned() == zoned;
      sum += timing.seconds();
      start = std::min(start, timing.start());
      end = std::max(end, timing.start() + timing.seconds());
    }
    return spans ? end - start : sum;
  }

  void write_suite(ReportWriter& writer, TextReader& texts, std::uint32_t index,
                   const std::vector<Counts>& counts, int depth) const;
  void collect(TextReader& texts, std::uint32_t suite, std::vector<TestCaseRecord>& out) const;
};

// Reads testcases' text back from their files: each time a testcase is not in what was read last, it and the
// testcases after it in the same suite and the same file (in file order, close together) are read at once,
// so that writing a merge reads each file about once, in a few large reads.
class JUnitMerger::Impl::TextReader {
 public:
  explicit TextReader(const Impl& impl) : impl_(impl) {}
  ~TextReader() { close_file(); }
  TextReader(const TextReader&) = delete;
  TextReader& operator=(const TextReader&) = delete;

  // The text of the testcase items[k]. Valid until the next call. Throws UsageError when its file is gone
  // or has changed since it was merged.
  std::string_view text(const std::vector<std::uint32_t>& items, std::size_t k) {
    const Case& first = impl_.cases[items[k]];
    if (!first.in_file) return {reinterpret_cast<const char*>(first.where), first.length};
    if (first.source != buffer_source_ || first.where < buffer_offset_ ||
        first.where + first.length > buffer_offset_ + buffer_.size()) {
      std::uint64_t end = first.where + first.length;
      for (std::size_t next = k + 1; next < items.size() && !(items[next] & kSuiteItem); ++next) {
        const Case& c = impl_.cases[items[next]];
        if (!c.in_file || c.source != first.source || c.where < end || c.where - end > kMaxGap ||
            c.where + c.length - first.where > kMaxRead) {
          break;
        }
        end = c.where + c.length;
      }
      read(first.source, first.where, end - first.where);
    }
    return {buffer_.data() + (first.where - buffer_offset_), first.length};
  }

 private:
  // Testcases further apart than this are read separately; a read stops growing at kMaxRead.
  static constexpr std::uint64_t kMaxGap = 4096;
  static constexpr std::uint64_t kMaxRead = std::uint64_t{1} << 20;

  void read(std::uint32_t source, std::uint64_t offset, std::uint64_t length) {
    const SourceFile& file = impl_.files[source - 1];
    if (source != fd_source_) {
      close_file();
      buffer_source_ = 0;
      int fd = file.fd >= 0 ? file.fd : ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) changed(file, std::strerror(errno));
      fd_ = fd;
      fd_source_ = source;
      if (identity_of(fd) != file.identity) {
        close_file();
        changed(file, "modified or replaced");
      }
    }
    buffer_source_ = 0;
    buffer_.resize(length);
    std::size_t done = 0;
    while (done < length) {
      ssize_t got = ::pread(fd_, buffer_.data() + done, length - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) changed(file, std::strerror(errno));
      if (got == 0) changed(file, "shorter than it was");
      done += static_cast<std::size_t>(got);
    }
    buffer_source_ = source;
    buffer_offset_ = offset;
  }

  // Closes the file being read unless the merger keeps it open.
  void close_file() {
    if (fd_ >= 0 && fd_ != impl_.files[fd_source_ - 1].fd) ::close(fd_);
    fd_ = -1;
    fd_source_ = 0;
  }

  [[noreturn]] static void changed(const SourceFile& file, std::string_view what) {
    throw UsageError(
        fmt::format("{}: changed while it was being merged ({}): merge it again", file.path.string(), what));
  }

  const Impl& impl_;
  int fd_ = -1;
  std::uint32_t fd_source_ = 0;
  std::string buffer_;
  std::uint32_t buffer_source_ = 0;  // 0: nothing read
  std::uint64_t buffer_offset_ = 0;
};

void JUnitMerger::Impl::write_suite(ReportWriter& writer, TextReader& texts, std::uint32_t index,
                                    const std::vector<Counts>& counts, int depth) const {
  std::string& out = writer.buffer();
  const Suite& suite = suites[index];
  const Counts& c = counts[index];
  std::string indent(static_cast<std::size_t>(depth) * 2, ' ');
  out += indent;
  out += "<testsuite";
  append_attribute(out, "name", suite.name);
  append_attribute(out, "tests", std::to_string(c.tests));
  append_attribute(out, "failures", std::to_string(c.failures));
  append_attribute(out, "errors", std::to_string(c.errors));
  append_attribute(out, "skipped", std::to_string(c.skipped));
  if (suite.disabled_attribute) append_attribute(out, "disabled", std::to_string(c.not_run));
  append_attribute(out, "time", format_time(suite.timing.seconds()));
  for (const auto& [name, value] : suite.attributes) {
    bool earliest = name == "timestamp" && !suite.timing.timestamp().empty();
    append_attribute(out, name, earliest ? suite.timing.timestamp() : value);
  }
  out += ">\n";
  if (!suite.properties.empty()) {
    out += indent + "  <properties>";
    for (const std::string& property : suite.properties) out += property;
    out += "</properties>\n";
  }
  for (std::size_t k = 0; k < suite.items.size(); ++k) {
    std::uint32_t item = suite.items[k];
    if (item & kSuiteItem) {
      write_suite(writer, texts, item & ~kSuiteItem, counts, depth + 1);
    } else {
      out += indent;
      out += "  ";
      out += texts.text(suite.items, k);
      out += '\n';
      writer.maybe_flush();
    }
  }
  if (!suite.others.empty()) out += indent + "  " + suite.others + "\n";
  if (!suite.system_out.empty()) {
    out += indent + "  <system-out>";
    append_escaped(out, suite.system_out, false);
    out += "</system-out>\n";
  }
  if (!suite.system_err.empty()) {
    out += indent + "  <system-err>";
    append_escaped(out, suite.system_err, false);
    out += "</system-err>\n";
  }
  out += indent + "</testsuite>\n";
  writer.maybe_flush();
}

void JUnitMerger::Impl::collect(TextReader& texts, std::uint32_t suite,
                                std::vector<TestCaseRecord>& out) const {
  const std::vector<std::uint32_t>& items = suites[suite].items;
  for (std::size_t k = 0; k < items.size(); ++k) {
    if (items[k] & kSuiteItem) {
      collect(texts, items[k] & ~kSuiteItem, out);
    } else {
      out.push_back(record(cases[items[k]], texts.text(items, k)));
    }
  }
}

void JUnitMerger::Impl::absorb(Impl&& other) {
  auto case_base = static_cast<std::uint32_t>(cases.size());
  auto source_base = static_cast<std::uint32_t>(files.size());
  for (SourceFile& file : other.files) {
    files.push_back(file);
    file.fd = -1;
  }
  for (InputProblem& problem : other.problems) problems.push_back(std::move(problem));
  if (root_name.empty()) root_name = std::move(other.root_name);
  arena.absorb(std::move(other.arena));
  if (case_base + other.cases.size() >= kSuiteItem) throw UsageError("more than 2^31 testcases to merge");
  for (std::size_t i = 0; i < other.cases.size(); ++i) {
    Case c = other.cases[i];
    if (c.source != 0) c.source += source_base;
    cases.push_back(c);
    hashes.push_back(other.hashes[i]);
  }
  // Suites by name under the same parent, depth first, as reading the other files here would have.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> pending{{0, 0}};  // (other's suite, ours)
  while (!pending.empty()) {
    auto [from, to] = pending.back();
    pending.pop_back();
    Suite& theirs = other.suites[from];
    if (from != 0) {
      Suite& ours = suites[to];
      for (const auto& [name, value] : theirs.attributes) ours.add_attribute(name, value);
      ours.disabled_attribute = ours.disabled_attribute || theirs.disabled_attribute;
      ours.timing.absorb(theirs.timing);
      for (std::string& property : theirs.properties) ours.add_property(std::move(property));
      Suite::add_output(ours.system_out, theirs.system_out);
      Suite::add_output(ours.system_err, theirs.system_err);
      ours.others += theirs.others;
    }
    // Nested suites are visited after this suite's own items are placed, in their order.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> nested;
    for (std::uint32_t item : theirs.items) {
      if (item & kSuiteItem) {
        std::uint32_t child = item & ~kSuiteItem;
        nested.emplace_back(child, child_suite(to, other.suites[child].name));
      } else {
        suites[to].items.push_back(case_base + item);
        cases[case_base + item].suite = to;
      }
    }
    for (auto it = nested.rbegin(); it != nested.rend(); ++it) pending.push_back(*it);
  }
}

// Adds one file's suites and testcases to the merged tree.
class JUnitMerger::Impl::MergingVisitor final : public SuiteVisitor {
 public:
  MergingVisitor(Impl& merger, const XmlInput& input, std::uint32_t source)
      : merger_(merger), input_(input), source_(source) {
    stack_.push_back(0);
  }

  void enter_suite(pugi::xml_node suite, std::string_view name) override {
    std::uint32_t index = merger_.child_suite(stack_.back(), name);
    stack_.push_back(index);
    Suite& merged = merger_.suites[index];
    if (!suite || std::string_view(suite.name()) != "testsuite") return;
    for (pugi::xml_attribute attribute : suite.attributes()) {
      std::string_view attribute_name = attribute.name();
      if (attribute_name == "disabled") merged.disabled_attribute = true;
      if (!is_count_attribute(attribute_name)) merged.add_attribute(attribute_name, attribute.value());
    }
  }

  void leave_suite(pugi::xml_node suite, double case_time) override {
    Suite& merged = merger_.suites[stack_.back()];
    std::optional<double> written;
    if (suite && std::string_view(suite.name()) == "testsuite") {
      written = parse_time(suite.attribute("time").value());
    }
    // The producer's own suite time counts setup and collection that no testcase carries.
    merged.timing.add_part(suite ? suite.attribute("timestamp").value() : "", written.value_or(case_time));
    stack_.pop_back();
  }

  void testcase(pugi::xml_node testcase, const Verdict& verdict, std::string_view) override {
    pugi::xml_attribute time = testcase.attribute("time");
    bool time_with_commas = time && std::string_view(time.value()).find(',') != std::string_view::npos;
    if (!time_with_commas && verdict.outcome != Outcome::kNotRun) {
      // Nothing to rewrite: the producer's own text, copied from the file when the result is written.
      if (std::optional<std::string_view> text = input_.verbatim(testcase)) {
        merger_.add_case(stack_.back(), source_, verdict.classname, verdict.name, verdict,
                         input_.offset_of(*text), text->size(), true);
        return;
      }
    }
    if (time_with_commas) time.set_value(fmt::format("{}", verdict.time).c_str());
    if (verdict.outcome == Outcome::kNotRun) {
      std::string message = fmt::format("status={}", testcase.attribute("status").value());
      testcase.append_child("skipped").append_attribute("message").set_value(message.c_str());
    }
    merger_.scratch.clear();
    append_element(merger_.scratch, testcase);
    merger_.add_case(stack_.back(), source_, verdict.classname, verdict.name, verdict, merger_.scratch);
  }

  void suite_child(pugi::xml_node child) override {
    Suite& merged = merger_.suites[stack_.back()];
    std::string_view name = child.name();
    if (name == "properties") {
      for (pugi::xml_node property : child.children()) {
        if (property.type() != pugi::node_element) continue;
        std::string xml;
        append_element(xml, property);
        merged.add_property(std::move(xml));
      }
    } else if (name == "system-out" || name == "system-err") {
      Suite::add_output(name == "system-out" ? merged.system_out : merged.system_err, element_text(child));
    } else {
      append_element(merged.others, child);
    }
  }

 private:
  Impl& merger_;
  const XmlInput& input_;
  std::uint32_t source_;
  std::vector<std::uint32_t> stack_;
};

JUnitMerger::JUnitMerger() : impl_(std::make_unique<Impl>()) {}
JUnitMerger::~JUnitMerger() = default;

bool JUnitMerger::add_file(const std::filesystem::path& path) {
  try {
    impl_->files.push_back({std::filesystem::absolute(path), {}});
    XmlInput input(path, {"testsuites", "testsuite"}, Doctype::kRefuse, SourceText::kKeep);
    impl_->files.back().identity = input.identity();
    if (impl_->files.size() <= Impl::kFilesKeptOpen) impl_->files.back().fd = input.release_file();
    // walk_file refuses a file before its first suite is visited, so a refused file adds nothing.
    Impl::MergingVisitor visitor(*impl_, input, static_cast<std::uint32_t>(impl_->files.size()));
    walk_file(input, visitor);
    if (impl_->root_name.empty() && std::string_view(input.root().name()) == "testsuites") {
      impl_->root_name = input.root().attribute("name").value();
    }
    return true;
  } catch (const UsageError& error) {
    impl_->problems.push_back({path, error.what()});
    return false;
  }
}

std::vector<bool> JUnitMerger::add_files(const std::vector<std::filesystem::path>& paths) {
  std::vector<bool> added(paths.size(), false);
  // Split where half the bytes are: the first part is read here, the rest on a second thread into a merger of
  // its own, absorbed after ours, which gives what reading them all here in order would.
  std::vector<std::uintmax_t> sizes(paths.size(), 0);
  std::uintmax_t total = 0;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    std::error_code ec;
    sizes[i] = std::filesystem::file_size(paths[i], ec);
    if (ec) sizes[i] = 0;
    total += sizes[i];
  }
  std::size_t split = 0;
  for (std::uintmax_t so_far = 0; split < paths.size() && so_far * 2 < total; ++split) so_far += sizes[split];
  if (paths.size() < 2 || std::thread::hardware_concurrency() < 2 || split == paths.size()) {
    for (std::size_t i = 0; i < paths.size(); ++i) added[i] = add_file(paths[i]);
    return added;
  }
  JUnitMerger rest;
  std::exception_ptr failure;
  // Its own results: the bits of a std::vector<bool> are not separate objects to write from two threads.
  std::vector<bool> rest_added;
  std::thread second([&] {
    try {
      for (std::size_t i = split; i < paths.size(); ++i) rest_added.push_back(rest.add_file(paths[i]));
    } catch (...) {
      failure = std::current_exception();
    }
  });
  try {
    for (std::size_t i = 0; i < split; ++i) added[i] = add_file(paths[i]);
  } catch (...) {
    second.join();
    throw;
  }
  second.join();
  if (failure) std::rethrow_exception(failure);
  std::copy(rest_added.begin(), rest_added.end(), added.begin() + static_cast<std::ptrdiff_t>(split));
  impl_->absorb(std::move(*rest.impl_));
  return added;
}

void JUnitMerger::add_testcase(const std::string& suite, const TestCaseRecord& record) {
  std::uint32_t index = impl_->child_suite(0, suite);
  impl_->suites[index].timing.add_testcase(record.time);
  Verdict verdict;
  verdict.outcome = record.outcome;
  verdict.flaky = record.flaky;
  verdict.time = record.time;
  impl_->add_case(index, 0, record.classname, record.name, verdict, testcase_xml(record));
}

void JUnitMerger::write(const std::filesystem::path& out, std::optional<double> wall_time) const {
  std::vector<Impl::Counts> counts(impl_->suites.size());
  Impl::Counts total = impl_->count(0, counts);
  const double time = wall_time.value_or(impl_->root_seconds());
  ReportWriter writer(out);
  Impl::TextReader texts(*impl_);
  std::string& xml = writer.buffer();
  xml += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites";
  if (!impl_->root_name.empty()) append_attribute(xml, "name", impl_->root_name);
  append_attribute(xml, "tests", std::to_string(total.tests));
  append_attribute(xml, "failures", std::to_string(total.failures));
  append_attribute(xml, "errors", std::to_string(total.errors));
  append_attribute(xml, "skipped", std::to_string(total.skipped));
  append_attribute(xml, "time", format_time(time));
  xml += ">\n";
  for (std::uint32_t item : impl_->suites[0].items)
    impl_->write_suite(writer, texts, item & ~Impl::kSuiteItem, counts, 1);
  writer.buffer() += "</testsuites>\n";
  writer.commit();
}

const std::vector<InputProblem>& JUnitMerger::problems() const {
  return impl_->problems;
}

std::vector<TestCaseRecord> JUnitMerger::testcases() const {
  std::vector<TestCaseRecord> records;
  records.reserve(impl_->cases.size());
  Impl::TextReader texts(*impl_);
  impl_->collect(texts, 0, records);
  return records;
}

Totals JUnitMerger::totals() const {
  std::vector<Impl::Counts> counts(impl_->suites.size());
  Impl::Counts total = impl_->count(0, counts);
  Totals totals;
  totals.tests = total.tests;
  totals.failures = total.failures;
  totals.errors = total.errors;
  totals.skipped = total.skipped;
  totals.time = impl_->root_seconds();
  return totals;
}

std::vector<std::pair<std::string, std::string>> JUnitMerger::duplicates() const {
  const std::vector<std::uint64_t>& hashes = impl_->hashes;
  // The hashes that occur more than once, found in a sorted copy; usually there are none, and only the
  // testcases with one of them are looked at again.
  std::vector<std::uint64_t> repeated;
  {
    std::vector<std::uint64_t> sorted = radix_sorted(hashes);
    for (std::size_t i = 1; i < sorted.size(); ++i) {
      if (sorted[i] == sorted[i - 1] && (repeated.empty() || repeated.back() != sorted[i])) {
        repeated.push_back(sorted[i]);
      }
    }
  }
  if (repeated.empty()) return {};
  Impl::TextReader texts(*impl_);
  // The testcases of each repeated hash, grouped by hash and in the order they were added.
  std::vector<std::uint32_t> order;
  for (std::uint32_t i = 0; i < hashes.size(); ++i) {
    if (std::binary_search(repeated.begin(), repeated.end(), hashes[i])) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return hashes[a] < hashes[b]; });
  // (first index, names) of every duplicate, put back in the order the testcases were added.
  std::vector<std::pair<std::uint32_t, std::pair<std::string, std::string>>> found;
  for (std::size_t begin = 0; begin < order.size();) {
    std::size_t end = begin + 1;
    bool several_sources = false;
    while (end < order.size() && hashes[order[end]] == hashes[order[begin]]) {
      several_sources =
          several_sources || impl_->cases[order[end]].source != impl_->cases[order[begin]].source;
      ++end;
    }
    if (several_sources) {
      // Equal hashes: compare the names themselves, read back from the stored testcases.
      std::map<std::pair<std::string, std::string>, std::pair<std::uint32_t, std::set<std::uint32_t>>> names;
      for (std::size_t i = begin; i < end; ++i) {
        TestCaseRecord record = impl_->record(impl_->cases[order[i]], texts.text({order[i]}, 0));
        auto [it, inserted] =
            names.try_emplace({record.classname, record.name}, order[i], std::set<std::uint32_t>{});
        it->second.second.insert(impl_->cases[order[i]].source);
      }
      for (auto& [pair, seen] : names) {
        if (seen.second.size() > 1) found.emplace_back(seen.first, pair);
      }
    }
    begin = end;
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<std::string, std::string>> result;
  result.reserve(found.size());
  for (auto& [index, pair] : found) result.push_back(std::move(pair));
  return result;
}

}  // namespace testfleet::reports
