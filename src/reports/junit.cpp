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

#include <cmath>
#include <cstdlib>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "reports/xml_input.hpp"
#include "util/error.hpp"
#include "util/files.hpp"

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
  std::string digits;
  digits.reserve(text.size());
  for (char c : text) {
    if (c != ',') digits += c;
  }
  std::string_view trimmed = digits;
  while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t')) trimmed.remove_prefix(1);
  while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t')) trimmed.remove_suffix(1);
  if (trimmed.empty()) return std::nullopt;
  std::string owned(trimmed);
  char* end = nullptr;
  double value = std::strtod(owned.c_str(), &end);
  if (end != owned.c_str() + owned.size() || !std::isfinite(value) || value < 0) return std::nullopt;
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
TestCaseRecord classify(pugi::xml_node testcase) {
  TestCaseRecord record;
  record.classname = testcase.attribute("classname").value();
  record.name = testcase.attribute("name").value();
  record.file = testcase.attribute("file").value();
  record.time = parse_time(testcase.attribute("time").value()).value_or(0.0);
  pugi::xml_node error;
  pugi::xml_node failure;
  pugi::xml_node skipped;
  bool flaky = false;
  for (pugi::xml_node child = testcase.first_child(); child; child = child.next_sibling()) {
    std::string_view name = child.name();
    if (name == "error" && !error) error = child;
    if (name == "failure" && !failure) failure = child;
    if (name == "skipped" && !skipped) skipped = child;
    if (name == "flakyFailure" || name == "flakyError") flaky = true;
  }
  pugi::xml_node detail;
  if (error) {
    record.outcome = Outcome::kError;
    detail = error;
  } else if (failure) {
    record.outcome = Outcome::kFailed;
    detail = failure;
  } else if (skipped) {
    record.outcome = Outcome::kSkipped;
    detail = skipped;
  } else {
    std::string_view status = testcase.attribute("status").value();
    if (is_not_run_status(status)) {
      record.outcome = Outcome::kNotRun;
      record.message = fmt::format("status={}", status);
    } else {
      record.outcome = Outcome::kPassed;
      record.flaky = flaky;
    }
  }
  if (detail) {
    record.message = detail.attribute("message").value();
    record.text = element_text(detail);
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
  virtual void testcase(pugi::xml_node testcase, TestCaseRecord record) = 0;
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
      TestCaseRecord record = classify(child);
      record.suite = std::string(name);
      case_time += record.time;
      visitor.testcase(child, std::move(record));
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
    TestCaseRecord record = classify(child);
    record.suite = name;
    case_time += record.time;
    visitor.testcase(child, std::move(record));
  }
  visitor.leave_suite(pugi::xml_node(), case_time);
}

class RecordCollector final : public SuiteVisitor {
 public:
  void enter_suite(pugi::xml_node, std::string_view) override {}
  void leave_suite(pugi::xml_node, double) override {}
  void testcase(pugi::xml_node, TestCaseRecord record) override { records.push_back(std::move(record)); }
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

}  // namespace

std::vector<TestCaseRecord> read_testcases(const std::filesystem::path& path) {
  XmlInput input(path, {"testsuites", "testsuite"});
  RecordCollector collector;
  walk_file(input, collector);
  return std::move(collector.records);
}

struct JUnitMerger::Impl {
  class MergingVisitor;
  struct Case {
    TestCaseRecord record;
    std::string xml;
  };
  struct Item {
    bool is_suite;
    std::uint32_t index;
  };
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
    std::vector<Item> items;
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
  std::vector<Case> cases;
  std::vector<InputProblem> problems;
  std::string root_name;
  // (classname, name) -> the source it was first seen in; 0 is add_testcase, files count from 1.
  std::unordered_map<std::string, std::uint32_t> first_source;
  std::unordered_set<std::string> duplicate_keys;
  std::vector<std::pair<std::string, std::string>> duplicates;
  std::uint32_t sources = 0;

  std::uint32_t child_suite(std::uint32_t parent, std::string_view name) {
    auto found = suites[parent].children.find(std::string(name));
    if (found != suites[parent].children.end()) return found->second;
    auto index = static_cast<std::uint32_t>(suites.size());
    suites.emplace_back();
    suites.back().name = std::string(name);
    suites[parent].children.emplace(std::string(name), index);
    suites[parent].items.push_back({true, index});
    return index;
  }

  void add_case(std::uint32_t suite, std::uint32_t source, TestCaseRecord record, std::string xml) {
    std::string key = record.classname;
    key += '\0';
    key += record.name;
    auto [it, inserted] = first_source.emplace(key, source);
    if (!inserted && it->second != source && duplicate_keys.insert(key).second) {
      duplicates.emplace_back(record.classname, record.name);
    }
    suites[suite].items.push_back({false, static_cast<std::uint32_t>(cases.size())});
    cases.push_back({std::move(record), std::move(xml)});
  }

  Counts count(std::uint32_t suite, std::vector<Counts>& counts) const {
    Counts total;
    for (const Item& item : suites[suite].items) {
      if (item.is_suite) {
        Counts nested = count(item.index, counts);
        total.tests += nested.tests;
        total.failures += nested.failures;
        total.errors += nested.errors;
        total.skipped += nested.skipped;
        total.not_run += nested.not_run;
        continue;
      }
      ++total.tests;
      switch (cases[item.index].record.outcome) {
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

  void write_suite(std::string& out, std::uint32_t index, const std::vector<Counts>& counts,
                   int depth) const {
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
    for (const Item& item : suite.items) {
      if (item.is_suite) {
        write_suite(out, item.index, counts, depth + 1);
      } else {
        out += indent;
        out += "  ";
        out += cases[item.index].xml;
        out += '\n';
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
  }

  void collect(std::uint32_t suite, std::vector<TestCaseRecord>& out) const {
    for (const Item& item : suites[suite].items) {
      if (item.is_suite) {
        collect(item.index, out);
      } else {
        out.push_back(cases[item.index].record);
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

  void testcase(pugi::xml_node testcase, TestCaseRecord record) override {
    pugi::xml_attribute time = testcase.attribute("time");
    if (time && std::string_view(time.value()).find(',') != std::string_view::npos) {
      time.set_value(fmt::format("{}", record.time).c_str());
    }
    if (record.outcome == Outcome::kNotRun) {
      testcase.append_child("skipped").append_attribute("message").set_value(record.message.c_str());
    }
    std::string xml;
    append_element(xml, testcase);
    merger_.add_case(stack_.back(), source_, std::move(record), std::move(xml));
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
  TestCaseRecord copy = record;
  copy.suite = suite;
  impl_->suites[index].time += record.time;
  std::string xml = testcase_xml(copy);
  impl_->add_case(index, 0, std::move(copy), std::move(xml));
}

void JUnitMerger::write(const std::filesystem::path& out, std::optional<double> wall_time) const {
  std::vector<Impl::Counts> counts(impl_->suites.size());
  Impl::Counts total = impl_->count(0, counts);
  double time = 0;
  for (const Impl::Item& item : impl_->suites[0].items) time += impl_->suites[item.index].time;
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites";
  if (!impl_->root_name.empty()) append_attribute(xml, "name", impl_->root_name);
  append_attribute(xml, "tests", std::to_string(total.tests));
  append_attribute(xml, "failures", std::to_string(total.failures));
  append_attribute(xml, "errors", std::to_string(total.errors));
  append_attribute(xml, "skipped", std::to_string(total.skipped));
  append_attribute(xml, "time", format_time(wall_time.value_or(time)));
  xml += ">\n";
  for (const Impl::Item& item : impl_->suites[0].items) impl_->write_suite(xml, item.index, counts, 1);
  xml += "</testsuites>\n";
  util::write_file_atomic(out, xml);
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
  for (const Impl::Item& item : impl_->suites[0].items) totals.time += impl_->suites[item.index].time;
  return totals;
}

std::vector<std::pair<std::string, std::string>> JUnitMerger::duplicates() const {
  return impl_->duplicates;
}

}  // namespace testfleet::reports
