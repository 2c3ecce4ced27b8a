// Merging JUnit files from different producers into one file that both publish-unit-test-result-action
// (counts from the top-level suites' attributes) and GitLab (testcases only) read right.
//
// Every testcase is kept as its producer wrote it (failure text, system-out, Surefire's rerun and flaky
// elements), serialised once when its file is read, so that only one input document is in memory at a
// time and the merged result costs about the size of the inputs. Two things are rewritten because
// consumers would otherwise misread them: a time with thousands commas ("1,234.5" reads as 1 in Ruby and
// fails in Python), and ctest's `status="disabled"`/`"notrun"` testcase, which has no child element and so
// reads as passed: it gets a <skipped> child. Counts are never trusted: every suite's tests, failures,
// errors and skipped are recomputed from the testcases under it, nested suites included, because that is
// what the top-level attributes must say for a publisher that reads nothing else.
#include "reports/junit.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <string_view>
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

double walk_suite(pugi::xml_node suite, std::string_view name, SuiteVisitor& visitor) {
  visitor.enter_suite(suite, name);
  double case_time = 0;
  for (pugi::xml_node child = suite.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view child_name = child.name();
    if (child_name == "testcase") {
      Verdict verdict = judge(child);
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
      loose_cases = true;
    }
  }
  if (!loose_cases) return;
  std::string name = root.attribute("name").value();
  if (name.empty()) name = input.path().stem().string();
  visitor.enter_suite(root, name);
  double case_time = 0;
  for (pugi::xml_node child : root.children("testcase")) {
    Verdict verdict = judge(child);
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

// Holds the serialised testcases in 1 MiB chunks: nothing moves once stored (a growing std::string would
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

 private:
  static constexpr std::size_t kChunkBytes = std::size_t{1} << 20;
  std::vector<std::unique_ptr<char[]>> chunks_;
  std::vector<std::unique_ptr<char[]>> large_;
  std::size_t used_ = kChunkBytes;  // no chunk yet
};

}  // namespace

std::vector<TestCaseRecord> read_testcases(const std::filesystem::path& path) {
  XmlInput input(path, {"testsuites", "testsuite"});
  RecordCollector collector;
  walk_file(input, collector);
  return std::move(collector.records);
}

struct JUnitMerger::Impl {
  class MergingVisitor;

  // 24 bytes a testcase besides its XML and 12 more in `hashes` and its suite's items: a merge of
  // 200,000 costs little more than their text.
  struct Case {
    const char* xml;  // in `arena`
    std::uint32_t length;
    std::uint32_t suite;
    std::uint32_t source;  // 0 is add_testcase, files count from 1
    Outcome outcome;
    bool flaky;

    std::string_view text() const { return {xml, length}; }
  };
  // A suite's items: testcases, and nested suites flagged by the top bit.
  static constexpr std::uint32_t kSuiteItem = 0x80000000u;
  struct Suite {
    std::string name;
    std::vector<std::pair<std::string, std::string>> attributes;  // as first written, counts excluded
    double time = 0;
    bool disabled_attribute = false;  // ctest writes one; recomputed when any input had it
    std::string properties;           // <property> elements, each once
    std::unordered_set<std::string> property_set;
    std::string system_out;
    std::string system_err;
    std::string others;  // any other child element, kept
    std::vector<std::uint32_t> items;
    std::unordered_map<std::string, std::uint32_t> children;
  };
  struct Counts {
    std::size_t tests = 0;
    std::size_t failures = 0;
    std::size_t errors = 0;
    std::size_t skipped = 0;
    std::size_t not_run = 0;
  };

  // suites[0] is the root: its children are the top-level suites.
  std::vector<Suite> suites{1};
  std::deque<Case> cases;
  // Hash of (classname, name) of cases[i]: the names are read back from the XML only for equal hashes.
  std::deque<std::uint64_t> hashes;
  Arena arena;
  std::string scratch;  // one testcase serialised, reused
  std::vector<InputProblem> problems;
  std::string root_name;
  std::uint32_t sources = 0;

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

  void add_case(std::uint32_t suite, std::uint32_t source, std::string_view classname, std::string_view name,
                const Verdict& verdict, std::string_view xml) {
    auto index = static_cast<std::uint32_t>(cases.size());
    if (index >= kSuiteItem) throw UsageError("more than 2^31 testcases to merge");
    hashes.push_back(identity_hash(classname, name));
    suites[suite].items.push_back(index);
    std::string_view stored = arena.store(xml);
    cases.push_back({stored.data(), static_cast<std::uint32_t>(stored.size()), suite, source, verdict.outcome,
                     verdict.flaky});
  }

  // The testcase as read back from its stored XML; outcome and flakiness as judged when it was read (a
  // not-run testcase was given a <skipped> on the way).
  TestCaseRecord record(const Case& stored) const {
    pugi::xml_document doc;
    doc.load_buffer(stored.xml, stored.length, pugi::parse_default);
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

  void write_suite(ReportWriter& writer, std::uint32_t index, const std::vector<Counts>& counts,
                   int depth) const {
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
    append_attribute(out, "time", format_time(suite.time));
    for (const auto& [name, value] : suite.attributes) append_attribute(out, name, value);
    out += ">\n";
    if (!suite.properties.empty()) {
      out += indent + "  <properties>" + suite.properties + "</properties>\n";
    }
    for (std::uint32_t item : suite.items) {
      if (item & kSuiteItem) {
        write_suite(writer, item & ~kSuiteItem, counts, depth + 1);
      } else {
        out += indent;
        out += "  ";
        out += cases[item].text();
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

  void collect(std::uint32_t suite, std::vector<TestCaseRecord>& out) const {
    for (std::uint32_t item : suites[suite].items) {
      if (item & kSuiteItem) {
        collect(item & ~kSuiteItem, out);
      } else {
        out.push_back(record(cases[item]));
      }
    }
  }
};

// Adds one file's suites and testcases to the merged tree.
class JUnitMerger::Impl::MergingVisitor final : public SuiteVisitor {
 public:
  MergingVisitor(Impl& merger, std::uint32_t source) : merger_(merger), source_(source) {
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
      if (is_count_attribute(attribute_name)) continue;
      bool known = false;
      for (const auto& existing : merged.attributes) known = known || existing.first == attribute_name;
      if (!known) merged.attributes.emplace_back(attribute_name, attribute.value());
    }
  }

  void leave_suite(pugi::xml_node suite, double case_time) override {
    Suite& merged = merger_.suites[stack_.back()];
    std::optional<double> written;
    if (suite && std::string_view(suite.name()) == "testsuite") {
      written = parse_time(suite.attribute("time").value());
    }
    // The producer's own suite time counts setup and collection that no testcase carries.
    merged.time += written.value_or(case_time);
    stack_.pop_back();
  }

  void testcase(pugi::xml_node testcase, const Verdict& verdict, std::string_view) override {
    pugi::xml_attribute time = testcase.attribute("time");
    if (time && std::string_view(time.value()).find(',') != std::string_view::npos) {
      time.set_value(fmt::format("{}", verdict.time).c_str());
    }
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
        if (merged.property_set.insert(xml).second) merged.properties += xml;
      }
    } else if (name == "system-out" || name == "system-err") {
      std::string& text = name == "system-out" ? merged.system_out : merged.system_err;
      std::string value = element_text(child);
      if (!text.empty() && !value.empty() && text.back() != '\n') text += '\n';
      text += value;
    } else {
      append_element(merged.others, child);
    }
  }

 private:
  Impl& merger_;
  std::uint32_t source_;
  std::vector<std::uint32_t> stack_;
};

JUnitMerger::JUnitMerger() : impl_(std::make_unique<Impl>()) {}
JUnitMerger::~JUnitMerger() = default;

bool JUnitMerger::add_file(const std::filesystem::path& path) {
  try {
    XmlInput input(path, {"testsuites", "testsuite"});
    // walk_file refuses a file before its first suite is visited, so a refused file adds nothing.
    Impl::MergingVisitor visitor(*impl_, ++impl_->sources);
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

void JUnitMerger::add_testcase(const std::string& suite, const TestCaseRecord& record) {
  std::uint32_t index = impl_->child_suite(0, suite);
  impl_->suites[index].time += record.time;
  Verdict verdict;
  verdict.outcome = record.outcome;
  verdict.flaky = record.flaky;
  verdict.time = record.time;
  impl_->add_case(index, 0, record.classname, record.name, verdict, testcase_xml(record));
}

void JUnitMerger::write(const std::filesystem::path& out, std::optional<double> wall_time) const {
  std::vector<Impl::Counts> counts(impl_->suites.size());
  Impl::Counts total = impl_->count(0, counts);
  double time = 0;
  for (std::uint32_t item : impl_->suites[0].items) time += impl_->suites[item & ~Impl::kSuiteItem].time;
  ReportWriter writer(out);
  std::string& xml = writer.buffer();
  xml += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites";
  if (!impl_->root_name.empty()) append_attribute(xml, "name", impl_->root_name);
  append_attribute(xml, "tests", std::to_string(total.tests));
  append_attribute(xml, "failures", std::to_string(total.failures));
  append_attribute(xml, "errors", std::to_string(total.errors));
  append_attribute(xml, "skipped", std::to_string(total.skipped));
  append_attribute(xml, "time", format_time(wall_time.value_or(time)));
  xml += ">\n";
  for (std::uint32_t item : impl_->suites[0].items)
    impl_->write_suite(writer, item & ~Impl::kSuiteItem, counts, 1);
  writer.buffer() += "</testsuites>\n";
  writer.commit();
}

const std::vector<InputProblem>& JUnitMerger::problems() const {
  return impl_->problems;
}

std::vector<TestCaseRecord> JUnitMerger::testcases() const {
  std::vector<TestCaseRecord> records;
  records.reserve(impl_->cases.size());
  impl_->collect(0, records);
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
  for (std::uint32_t item : impl_->suites[0].items)
    totals.time += impl_->suites[item & ~Impl::kSuiteItem].time;
  return totals;
}

std::vector<std::pair<std::string, std::string>> JUnitMerger::duplicates() const {
  std::vector<std::uint32_t> order(impl_->cases.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  const std::deque<std::uint64_t>& hashes = impl_->hashes;
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return std::tie(hashes[a], a) < std::tie(hashes[b], b);
  });
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
        TestCaseRecord record = impl_->record(impl_->cases[order[i]]);
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
