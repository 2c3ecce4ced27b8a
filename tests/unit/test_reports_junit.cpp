#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <pugixml.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "reports/junit.hpp"
#include "reports/xml_input.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/subprocess.hpp"

namespace testfleet::reports {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAreArray;

const std::filesystem::path kData = std::filesystem::path(TESTFLEET_TEST_DATA) / "junit";

using Key = std::tuple<std::string, std::string, Outcome, std::string>;

std::vector<Key> keys(const std::vector<TestCaseRecord>& records) {
  std::vector<Key> out;
  for (const TestCaseRecord& r : records) out.emplace_back(r.classname, r.name, r.outcome, r.message);
  return out;
}

Totals count(const std::vector<TestCaseRecord>& records) {
  Totals totals;
  for (const TestCaseRecord& r : records) {
    ++totals.tests;
    if (r.outcome == Outcome::kFailed) ++totals.failures;
    if (r.outcome == Outcome::kError) ++totals.errors;
    if (r.outcome == Outcome::kSkipped || r.outcome == Outcome::kNotRun) ++totals.skipped;
  }
  return totals;
}

const TestCaseRecord& find(const std::vector<TestCaseRecord>& records, std::string_view name) {
  auto it =
      std::find_if(records.begin(), records.end(), [&](const TestCaseRecord& r) { return r.name == name; });
  if (it == records.end()) throw std::runtime_error("no testcase " + std::string(name));
  return *it;
}

struct SuiteCounts {
  std::string tests, failures, errors, skipped, time;
};

SuiteCounts counts_of(pugi::xml_node suite) {
  return {suite.attribute("tests").value(), suite.attribute("failures").value(),
          suite.attribute("errors").value(), suite.attribute("skipped").value(),
          suite.attribute("time").value()};
}

std::map<std::string, std::string> describe(const SuiteCounts& c) {
  return {{"tests", c.tests}, {"failures", c.failures}, {"errors", c.errors}, {"skipped", c.skipped}};
}

pugi::xml_document parse(const std::filesystem::path& path) {
  pugi::xml_document doc;
  pugi::xml_parse_result result = doc.load_file(path.c_str());
  if (!result) throw std::runtime_error(path.string() + ": " + result.description());
  return doc;
}

std::string read_text(const std::filesystem::path& path) {
  return util::read_file(path);
}

// "2026-11-26T07:36:53.012013" (no zone, read as UTC) as seconds since the epoch.
double epoch_seconds(const char* timestamp) {
  std::tm tm{};
  std::istringstream in(timestamp);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) throw std::runtime_error(std::string("not a timestamp: ") + timestamp);
  double fraction = 0;
  if (const char* dot = std::strchr(timestamp, '.')) fraction = std::stod(std::string("0") + dot);
  return static_cast<double>(timegm(&tm)) + fraction;
}

class JUnitTest : public ::testing::Test {
 protected:
  util::TempDir temp_{"junit-test-"};
  std::filesystem::path out_ = temp_.path() / "merged.xml";

  std::filesystem::path write(const std::string& name, const std::string& content) {
    std::filesystem::path path = temp_.path() / name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
};

// ---- producers -----------------------------------------------------------------------------------------

TEST_F(JUnitTest, PytestRealOutputReadsEveryOutcome) {
  std::vector<TestCaseRecord> records = read_testcases(kData / "pytest/whole.xml");
  ASSERT_EQ(records.size(), 13u);
  EXPECT_EQ(find(records, "test_passes").outcome, Outcome::kPassed);
  EXPECT_EQ(find(records, "test_fails").outcome, Outcome::kFailed);
  EXPECT_THAT(find(records, "test_fails").message, HasSubstr("lists differ"));
  EXPECT_THAT(find(records, "test_fails").text, HasSubstr("test_alpha.py:9: AssertionError"));
  EXPECT_EQ(find(records, "test_skipped").outcome, Outcome::kSkipped);
  EXPECT_EQ(find(records, "test_expected_failure").outcome, Outcome::kSkipped);
  EXPECT_EQ(find(records, "test_setup_error").outcome, Outcome::kError);
  EXPECT_EQ(find(records, "test_in_class").classname, "test_beta.TestGroup");
  EXPECT_EQ(find(records, "test_in_class").suite, "pytest");
  // A failing call plus a teardown error: two testcases of one name, both kept.
  std::size_t teardown = std::count_if(records.begin(), records.end(), [](const TestCaseRecord& r) {
    return r.name == "test_fails_then_teardown_error";
  });
  EXPECT_EQ(teardown, 2u);
  // Our counts are pytest's, except that pytest's `tests` counts a failing call plus its teardown error
  // once: counts recomputed from testcases count both.
  pugi::xml_document doc = parse(kData / "pytest/whole.xml");
  SuiteCounts written = counts_of(doc.child("testsuites").child("testsuite"));
  Totals ours = count(records);
  EXPECT_EQ(std::to_string(ours.tests - 1), written.tests);
  EXPECT_EQ(std::to_string(ours.failures), written.failures);
  EXPECT_EQ(std::to_string(ours.errors), written.errors);
  EXPECT_EQ(std::to_string(ours.skipped), written.skipped);
}

TEST_F(JUnitTest, PytestPartsMergeToTheWholeRun) {
  JUnitMerger merger;
  ASSERT_TRUE(merger.add_file(kData / "pytest/part-1.xml"));
  ASSERT_TRUE(merger.add_file(kData / "pytest/part-2.xml"));
  merger.write(out_);
  std::vector<TestCaseRecord> whole = read_testcases(kData / "pytest/whole.xml");
  EXPECT_THAT(keys(merger.testcases()), UnorderedElementsAreArray(keys(whole)));
  EXPECT_THAT(keys(read_testcases(out_)), UnorderedElementsAreArray(keys(whole)));
  EXPECT_TRUE(merger.duplicates().empty());
  EXPECT_TRUE(merger.problems().empty());

  pugi::xml_document merged = parse(out_);
  pugi::xml_document expected = parse(kData / "pytest/whole.xml");
  pugi::xml_node suites = merged.child("testsuites");
  ASSERT_EQ(std::distance(suites.children("testsuite").begin(), suites.children("testsuite").end()), 1);
  pugi::xml_node suite = suites.child("testsuite");
  EXPECT_STREQ(suite.attribute("name").value(), "pytest");
  std::map<std::string, std::string> whole_counts =
      describe(counts_of(expected.child("testsuites").child("testsuite")));
  whole_counts["tests"] = "13";  // pytest wrote 12: see PytestRealOutputReadsEveryOutcome
  EXPECT_EQ(describe(counts_of(suite)), whole_counts);
  EXPECT_EQ(describe(counts_of(suites)), describe(counts_of(suite)));
  // The parts ran one after the other (generate.sh): the suite ran from part 1's start (its timestamp, which
  // the merged suite has) to part 2's end, and its own suite times include collection.
  pugi::xml_document part_1_doc = parse(kData / "pytest/part-1.xml");
  pugi::xml_document part_2_doc = parse(kData / "pytest/part-2.xml");
  pugi::xml_node part_1 = part_1_doc.child("testsuites").child("testsuite");
  pugi::xml_node part_2 = part_2_doc.child("testsuites").child("testsuite");
  EXPECT_STREQ(suite.attribute("timestamp").value(), part_1.attribute("timestamp").value());
  double span = epoch_seconds(part_2.attribute("timestamp").value()) + part_2.attribute("time").as_double() -
                epoch_seconds(part_1.attribute("timestamp").value());
  EXPECT_NEAR(suite.attribute("time").as_double(), span, 0.0011);
  EXPECT_STREQ(suites.attribute("time").value(), suite.attribute("time").value());
  // Every testcase keeps its children as written (failure text, captured output).
  pugi::xpath_node_set merged_out = suite.select_nodes("testcase/system-out");
  pugi::xpath_node_set whole_out = expected.select_nodes("//testcase/system-out");
  EXPECT_EQ(merged_out.size(), whole_out.size());
  EXPECT_EQ(merged_out.size(), 13u);
}

// pytest's own report of a run interrupted while its second test ran (pytest-interrupted/generate.sh) holds a
// `<testcase time="0.000" />` for the interrupted test: no name, no classname, no outcome. It is no result.
TEST_F(JUnitTest, PytestInterruptedWritesATestcaseWithoutANameThatIsNoResult) {
  pugi::xml_document written = parse(kData / "pytest-interrupted/junit.xml");
  ASSERT_EQ(written.select_nodes("//testcase[not(@name)]").size(), 1u);
  std::vector<TestCaseRecord> records = read_testcases(kData / "pytest-interrupted/junit.xml");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].name, "test_passes");

  JUnitMerger merger;
  ASSERT_TRUE(merger.add_file(kData / "pytest-interrupted/junit.xml"));
  TestCaseRecord interrupted;
  interrupted.classname = "test_interrupted";
  interrupted.name = "test_interrupted";
  interrupted.outcome = Outcome::kError;
  interrupted.message = "not run: the run was interrupted (SIGINT) while this test was running";
  merger.add_testcase("pytest", interrupted);
  merger.write(out_);
  Totals totals = merger.totals();
  EXPECT_EQ(totals.tests, 2u);
  EXPECT_EQ(totals.errors, 1u);
  pugi::xml_document merged = parse(out_);
  EXPECT_EQ(merged.select_nodes("//testcase").size(), 2u);
  EXPECT_EQ(merged.select_nodes("//testcase[not(@name)]").size(), 0u);
  EXPECT_STREQ(merged.child("testsuites").attribute("tests").value(), "2");
  EXPECT_STREQ(merged.child("testsuites").child("testsuite").attribute("tests").value(), "2");
  EXPECT_TRUE(merger.duplicates().empty());
}

TEST_F(JUnitTest, TestcasesWithoutANameAreLeftOutWhereverTheyAre) {
  std::filesystem::path in = write("nameless.xml", R"(<testsuites name="loose">
  <testcase time="1"/>
  <testcase name="" classname="c" time="2"><failure message="m"/></testcase>
  <testsuite name="s"><testcase classname="c" time="3"/><testcase classname="c" name="kept" time="4"/></testsuite>
</testsuites>)");
  std::vector<TestCaseRecord> records = read_testcases(in);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].name, "kept");
  JUnitMerger merger;
  ASSERT_TRUE(merger.add_file(in));
  merger.write(out_);
  pugi::xml_document merged = parse(out_);
  // The root's loose testcases were all nameless: no suite is made for them.
  EXPECT_EQ(merged.select_nodes("//testsuite").size(), 1u);
  EXPECT_EQ(merged.select_nodes("//testcase").size(), 1u);
  EXPECT_EQ(merger.totals().tests, 1u);
  EXPECT_EQ(merger.totals().failures, 0u);
}

TEST_F(JUnitTest, PytestOneFileTwiceIsReportedAsDuplicatesAndKept) {
  std::filesystem::path copy = temp_.path() / "again.xml";
  std::filesystem::copy_file(kData / "pytest/whole.xml", copy);
  JUnitMerger merger;
  merger.add_file(kData / "pytest/whole.xml");
  merger.add_file(copy);
  EXPECT_EQ(merger.totals().tests, 26u);
  // 13 testcases, 12 distinct (classname, name): the teardown pair is one name within one file.
  EXPECT_EQ(merger.duplicates().size(), 12u);
  EXPECT_THAT(merger.duplicates(), ::testing::Contains(Pair("test_beta", "test_fails_then_teardown_error")));
}

TEST_F(JUnitTest, PytestTeardownPairInOneFileIsNoDuplicate) {
  JUnitMerger merger;
  merger.add_file(kData / "pytest/part-2.xml");
  EXPECT_TRUE(merger.duplicates().empty());
  EXPECT_EQ(merger.totals().tests, 5u);
}

TEST_F(JUnitTest, GotestsumRerunsAreKeptAndCountsRecomputed) {
  std::vector<TestCaseRecord> records = read_testcases(kData / "gotestsum/report.xml");
  ASSERT_EQ(records.size(), 6u);
  EXPECT_EQ(records[1].name, "TestCheckout");
  EXPECT_EQ(records[1].outcome, Outcome::kFailed);
  EXPECT_EQ(records[2].name, "TestCheckout");
  EXPECT_EQ(records[2].outcome, Outcome::kPassed);
  EXPECT_EQ(find(records, "TestTax").outcome, Outcome::kSkipped);
  JUnitMerger merger;
  merger.add_file(kData / "gotestsum/report.xml");
  merger.write(out_);
  pugi::xml_document doc = parse(out_);
  pugi::xml_node cart =
      doc.child("testsuites").find_child_by_attribute("testsuite", "name", "example.com/shop/cart");
  EXPECT_EQ(describe(counts_of(cart)),
            (std::map<std::string, std::string>{
                {"tests", "4"}, {"failures", "2"}, {"errors", "0"}, {"skipped", "0"}}));
  pugi::xml_node price =
      doc.child("testsuites").find_child_by_attribute("testsuite", "name", "example.com/shop/price");
  EXPECT_EQ(describe(counts_of(price)),
            (std::map<std::string, std::string>{
                {"tests", "2"}, {"failures", "0"}, {"errors", "0"}, {"skipped", "1"}}));
  EXPECT_STREQ(cart.attribute("timestamp").value(), "2024-05-02T10:11:12Z");
  EXPECT_STREQ(cart.child("properties").child("property").attribute("value").value(), "go1.22.2 linux/amd64");
  EXPECT_TRUE(merger.duplicates().empty());
}

TEST_F(JUnitTest, GoJunitReportBuildErrorIsAnError) {
  std::vector<TestCaseRecord> records = read_testcases(kData / "go-junit-report/report.xml");
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(find(records, "[build failed]").outcome, Outcome::kError);
  EXPECT_EQ(find(records, "[build failed]").message, "Build error");
  EXPECT_EQ(find(records, "[build failed]").text, "db/conn.go:12:2: undefined: sql.Openn");
  EXPECT_EQ(find(records, "TestPost").text, "    api_test.go:31: status 500, want 201");
  EXPECT_EQ(find(records, "TestDelete/missing").outcome, Outcome::kSkipped);
  JUnitMerger merger;
  merger.add_file(kData / "go-junit-report/report.xml");
  Totals totals = merger.totals();
  EXPECT_EQ(totals.tests, 4u);
  EXPECT_EQ(totals.failures, 1u);
  EXPECT_EQ(totals.errors, 1u);
  EXPECT_EQ(totals.skipped, 1u);  // the producer's root wrote skipped="0"
}

TEST_F(JUnitTest, JestThousandsCommasAndWallTime) {
  std::vector<TestCaseRecord> records = read_testcases(kData / "jest-junit/junit.xml");
  EXPECT_DOUBLE_EQ(find(records, "Price rounds half up").time, 1200.25);
  EXPECT_EQ(find(records, "Cart totals with tax").outcome, Outcome::kFailed);
  EXPECT_EQ(find(records, "Cart applies coupons").outcome, Outcome::kSkipped);
  JUnitMerger merger;
  merger.add_file(kData / "jest-junit/junit.xml");
  // From Cart's start (10:11:12) to Price's end (10:11:14 + 1234.5 s).
  EXPECT_DOUBLE_EQ(merger.totals().time, 2 + 1234.5);
  merger.write(out_, 4.021);
  pugi::xml_document doc = parse(out_);
  EXPECT_STREQ(doc.child("testsuites").attribute("name").value(), "jest tests");
  EXPECT_STREQ(doc.child("testsuites").attribute("time").value(), "4.021");
  pugi::xml_node price = doc.child("testsuites").find_child_by_attribute("testsuite", "name", "Price");
  EXPECT_STREQ(price.attribute("time").value(), "1234.500");
  EXPECT_STREQ(price.child("testcase").attribute("time").value(), "1200.25");
  EXPECT_EQ(read_text(out_).find(','), std::string::npos) << "no time keeps its comma";
}

TEST_F(JUnitTest, SurefireFlakyAndRerunElementsKeptAsWritten) {
  std::vector<TestCaseRecord> records = read_testcases(kData / "surefire/TEST-com.example.CartTest.xml");
  EXPECT_EQ(find(records, "checkoutTalksToPayment").outcome, Outcome::kPassed);
  EXPECT_TRUE(find(records, "checkoutTalksToPayment").flaky);
  EXPECT_EQ(find(records, "totalsWithTax").outcome, Outcome::kFailed);
  EXPECT_FALSE(find(records, "totalsWithTax").flaky);
  EXPECT_EQ(find(records, "totalsWithTax").message, "expected:<108> but was:<100>");

  JUnitMerger merger;
  merger.add_file(kData / "surefire/TEST-com.example.CartTest.xml");
  merger.add_file(kData / "surefire/TEST-com.example.PriceTest.xml");
  merger.write(out_);
  pugi::xml_document doc = parse(out_);
  pugi::xml_node root = doc.child("testsuites");
  EXPECT_EQ(describe(counts_of(root)),
            (std::map<std::string, std::string>{
                {"tests", "6"}, {"failures", "1"}, {"errors", "1"}, {"skipped", "1"}}));
  pugi::xml_node flaky = root.select_node("testsuite/testcase[@name='checkoutTalksToPayment']").node();
  EXPECT_STREQ(flaky.child("flakyFailure").attribute("type").value(), "java.net.SocketException");
  EXPECT_THAT(flaky.child("flakyFailure").child("stackTrace").text().get(), HasSubstr("Payment.java:40"));
  EXPECT_STREQ(flaky.child("flakyFailure").child("system-out").text().get(), "attempt 1");
  EXPECT_TRUE(flaky.child("flakyError"));
  pugi::xml_node failed = root.select_node("testsuite/testcase[@name='totalsWithTax']").node();
  EXPECT_EQ(std::distance(failed.children("rerunFailure").begin(), failed.children("rerunFailure").end()), 2);
  EXPECT_STREQ(failed.child("system-out").text().get(), "computing total");
  pugi::xml_node rerun_error = root.select_node("testsuite/testcase[@name='loadsRates']/rerunError").node();
  EXPECT_TRUE(rerun_error);
  pugi::xml_node cart = root.find_child_by_attribute("testsuite", "name", "com.example.CartTest");
  EXPECT_STREQ(cart.child("properties")
                   .find_child_by_attribute("property", "name", "java.version")
                   .attribute("value")
                   .value(),
               "17.0.10");
  pugi::xml_node price = root.find_child_by_attribute("testsuite", "name", "com.example.PriceTest");
  EXPECT_STREQ(price.attribute("time").value(), "1001.500");
}

TEST_F(JUnitTest, CtestDisabledIsNotRunNeverPassed) {
  std::vector<TestCaseRecord> records = read_testcases(kData / "ctest/junit.xml");
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(find(records, "e2e_docker").outcome, Outcome::kNotRun);
  EXPECT_EQ(find(records, "e2e_slow").outcome, Outcome::kNotRun);
  EXPECT_EQ(find(records, "unit_reports").outcome, Outcome::kFailed);
  EXPECT_EQ(find(records, "unit_util").outcome, Outcome::kPassed);
  JUnitMerger merger;
  merger.add_file(kData / "ctest/junit.xml");
  Totals totals = merger.totals();
  EXPECT_EQ(totals.skipped, 2u);
  EXPECT_EQ(totals.failures, 1u);
  merger.write(out_);
  // A consumer that reads only children must see them skipped: re-read the output the same way.
  std::vector<TestCaseRecord> reread = read_testcases(out_);
  EXPECT_EQ(find(reread, "e2e_docker").outcome, Outcome::kSkipped);
  EXPECT_EQ(find(reread, "e2e_slow").outcome, Outcome::kSkipped);
  pugi::xml_document doc = parse(out_);
  pugi::xml_node suite = doc.child("testsuites").child("testsuite");
  EXPECT_STREQ(suite.attribute("name").value(), "Linux-c++");
  EXPECT_STREQ(suite.attribute("disabled").value(), "2");
  EXPECT_STREQ(suite.attribute("skipped").value(), "2");
  EXPECT_STREQ(suite.find_child_by_attribute("testcase", "name", "e2e_docker").attribute("status").value(),
               "disabled");
}

TEST_F(JUnitTest, NestedSuitesCountedAtEveryLevel) {
  JUnitMerger merger;
  merger.add_file(kData / "nested/report.xml");
  merger.write(out_);
  pugi::xml_document doc = parse(out_);
  pugi::xml_node integration = doc.child("testsuites").child("testsuite");
  EXPECT_EQ(describe(counts_of(integration)),
            (std::map<std::string, std::string>{
                {"tests", "4"}, {"failures", "1"}, {"errors", "1"}, {"skipped", "0"}}));
  pugi::xml_node db = integration.find_child_by_attribute("testsuite", "name", "integration.db");
  EXPECT_EQ(describe(counts_of(db)),
            (std::map<std::string, std::string>{
                {"tests", "2"}, {"failures", "0"}, {"errors", "1"}, {"skipped", "0"}}));
  std::vector<TestCaseRecord> records = merger.testcases();
  EXPECT_EQ(find(records, "migrates").suite, "integration.db");
  EXPECT_EQ(find(records, "top_level_case").suite, "integration");
}

TEST_F(JUnitTest, SuitesOfOneNameMergeAtTheirOwnLevelOnly) {
  std::filesystem::path a = write("a.xml", R"(<testsuites>
  <testsuite name="outer"><testsuite name="inner"><testcase classname="c" name="one" time="1"/></testsuite></testsuite>
  <testsuite name="inner"><testcase classname="c" name="top" time="1"/></testsuite>
</testsuites>)");
  std::filesystem::path b = write("b.xml", R"(<testsuite name="outer" time="5">
  <testsuite name="inner" time="2"><testcase classname="c" name="two" time="2"><failure/></testcase></testsuite>
</testsuite>)");
  JUnitMerger merger;
  merger.add_file(a);
  merger.add_file(b);
  merger.write(out_);
  pugi::xml_document doc = parse(out_);
  pugi::xml_node root = doc.child("testsuites");
  ASSERT_EQ(std::distance(root.children("testsuite").begin(), root.children("testsuite").end()), 2);
  pugi::xml_node outer = root.find_child_by_attribute("testsuite", "name", "outer");
  ASSERT_EQ(std::distance(outer.children("testsuite").begin(), outer.children("testsuite").end()), 1);
  pugi::xml_node inner = outer.child("testsuite");
  EXPECT_STREQ(inner.attribute("tests").value(), "2");
  EXPECT_STREQ(inner.attribute("failures").value(), "1");
  // Parts of one suite without timestamps ran alongside each other: the longest, 2 (written) rather than 1
  // (no suite time: its cases).
  EXPECT_STREQ(inner.attribute("time").value(), "2.000");
  EXPECT_STREQ(outer.attribute("time").value(), "5.000");  // of 1 and 5
  EXPECT_STREQ(root.attribute("tests").value(), "3");
  // Different suites without timestamps: one after the other, outer (5) then the top-level inner (1).
  EXPECT_STREQ(root.attribute("time").value(), "6.000");
}

// The groups of one run, each a part of suite "pytest" with pytest's timestamp (when its session started) and
// time: the merged suite has the earliest timestamp, and its time runs from there to the latest end.
TEST_F(JUnitTest, ASuiteMergedFromGroupsRunsFromTheEarliestStartToTheLatestEnd) {
  auto group = [&](int index, const char* timestamp, const char* time) {
    return write(
        fmt::format("group-{}.xml", index),
        fmt::format(R"(<testsuites><testsuite name="pytest" time="{}" timestamp="{}" hostname="g{}">)"
                    R"(<testcase classname="t" name="test_{}" time="0.5"/></testsuite></testsuites>)",
                    time, timestamp, index, index));
  };
  JUnitMerger merger;
  ASSERT_TRUE(merger.add_file(group(1, "2024-05-02T10:00:05.5", "10")));
  ASSERT_TRUE(merger.add_file(group(2, "2024-05-02T10:00:01", "3")));
  ASSERT_TRUE(merger.add_file(group(3, "2024-05-02T10:00:02.250", "1.25")));
  TestCaseRecord not_run;
  not_run.classname = "t";
  not_run.name = "test_4";
  not_run.outcome = Outcome::kError;
  merger.add_testcase("pytest", not_run);
  EXPECT_DOUBLE_EQ(merger.totals().time, 14.5);
  merger.write(out_);
  pugi::xml_document doc = parse(out_);
  pugi::xml_node suite = doc.child("testsuites").child("testsuite");
  EXPECT_STREQ(suite.attribute("timestamp").value(), "2024-05-02T10:00:01");  // group 2's, as it wrote it
  EXPECT_STREQ(suite.attribute("time").value(), "14.500");                    // 10:00:01 to 10:00:15.5
  EXPECT_STREQ(suite.attribute("hostname").value(), "g1");  // other attributes: the first input's
  EXPECT_STREQ(doc.child("testsuites").attribute("time").value(), "14.500");
  // A run gives its wall time, which holds the groups' span and what came before and after it.
  merger.write(out_, 21.25);
  doc = parse(out_);
  EXPECT_STREQ(doc.child("testsuites").attribute("time").value(), "21.250");
  EXPECT_STREQ(doc.child("testsuites").child("testsuite").attribute("time").value(), "14.500");
}

TEST_F(JUnitTest, SuiteTimestampsWithZonesWithoutAndUnreadable) {
  auto merged = [&](const std::vector<std::pair<std::string, std::string>>& parts) {
    JUnitMerger merger;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      std::string timestamp = parts[i].first.empty() ? "" : " timestamp=\"" + parts[i].first + "\"";
      EXPECT_TRUE(merger.add_file(write(fmt::format("part-{}.xml", i),
                                        fmt::format(R"(<testsuite name="s" time="{}"{}>)"
                                                    R"(<testcase classname="c" name="t{}"/></testsuite>)",
                                                    parts[i].second, timestamp, i))));
    }
    merger.write(out_);
    pugi::xml_document doc = parse(out_);
    pugi::xml_node suite = doc.child("testsuites").child("testsuite");
    return std::pair<std::string, std::string>(suite.attribute("timestamp").value(),
                                               suite.attribute("time").value());
  };
  // 12:00+02:00 is 10:00Z, the earlier: the suite ends at 10:00:00.5Z + 1.
  EXPECT_EQ(merged({{"2024-05-02T12:00:00+02:00", "1"}, {"2024-05-02T10:00:00.5Z", "1"}}),
            (std::pair<std::string, std::string>("2024-05-02T12:00:00+02:00", "1.500")));
  EXPECT_EQ(merged({{"2024-05-02 10:00:03+0000", "1"}, {"2024-05-02T09:59:59-00:00", "2"}}),
            (std::pair<std::string, std::string>("2024-05-02T09:59:59-00:00", "5.000")));
  // A zone and no zone cannot be compared: the parts ran alongside, the longest counts.
  EXPECT_EQ(merged({{"2024-05-02T10:00:00", "2"}, {"2024-05-02T10:00:30Z", "3"}}).second, "3.000");
  // An unreadable timestamp is no start: its part ran alongside the others (and is the longest here); the
  // timestamp written is one that reads.
  EXPECT_EQ(merged({{"yesterday", "4"}, {"2024-05-02T10:00:00", "1"}, {"2024-05-02T10:00:01", "1"}}),
            (std::pair<std::string, std::string>("2024-05-02T10:00:00", "4.000")));
  EXPECT_EQ(merged({{"2024-02-30T10:00:00", "4"}, {"", "1"}}),
            (std::pair<std::string, std::string>("2024-02-30T10:00:00", "4.000")));
}

// Each producer's files merged, byte for byte as reviewed against FORMATS.md: counts recomputed, times
// without commas, ctest's not-run given a <skipped>, every testcase child kept. A change of output shows
// here first; regenerate only after reading the difference.
class JUnitGoldenTest : public JUnitTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(JUnitGoldenTest, MergedOutputIsTheReviewedOne) {
  std::filesystem::path dir = kData / GetParam();
  std::vector<std::filesystem::path> inputs;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".xml" && name != "expected-merged.xml" && name != "whole.xml") {
      inputs.push_back(entry.path());
    }
  }
  std::sort(inputs.begin(), inputs.end());
  ASSERT_FALSE(inputs.empty());
  JUnitMerger merger;
  for (const std::filesystem::path& input : inputs) ASSERT_TRUE(merger.add_file(input)) << input;
  merger.write(out_);
  EXPECT_EQ(read_text(out_), read_text(dir / "expected-merged.xml"));
}

INSTANTIATE_TEST_SUITE_P(Producers, JUnitGoldenTest,
                         ::testing::Values("pytest", "pytest-interrupted", "gotestsum", "go-junit-report",
                                           "jest-junit", "surefire", "ctest", "nested"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string name;
                           for (char c : param_info.param)
                             name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

// ---- consumers -----------------------------------------------------------------------------------------

// publish-unit-test-result-action reads the files with junitparser: counts from top-level suites, states
// from testcases. Run the same library on our output and compare with what we say.
TEST_F(JUnitTest, JunitparserReadsTheMergedFileAsWeCountIt) {
  JUnitMerger merger;
  for (const char* file :
       {"pytest/part-1.xml", "pytest/part-2.xml", "gotestsum/report.xml", "go-junit-report/report.xml",
        "jest-junit/junit.xml", "surefire/TEST-com.example.CartTest.xml",
        "surefire/TEST-com.example.PriceTest.xml", "ctest/junit.xml", "nested/report.xml"}) {
    ASSERT_TRUE(merger.add_file(kData / file)) << file;
  }
  merger.write(out_);
  util::SpawnSpec spec;
  spec.argv = {"/usr/bin/python3", "-c", R"(
import sys, junitparser
xml = junitparser.JUnitXml.fromfile(sys.argv[1])
tests = failures = errors = skipped = 0
for suite in xml:
    tests += int(suite._elem.get("tests")); failures += int(suite._elem.get("failures"))
    errors += int(suite._elem.get("errors")); skipped += int(suite._elem.get("skipped"))
cases = xml._elem.iter("testcase")
states = {"failure": 0, "error": 0, "skipped": 0, "passed": 0}
for case in cases:
    kinds = [child.tag for child in case]
    state = "error" if "error" in kinds else "failure" if "failure" in kinds else (
        "skipped" if "skipped" in kinds else "passed")
    states[state] += 1
print(tests, failures, errors, skipped, states["failure"], states["error"], states["skipped"])
)",
               out_.string()};
  util::CommandResult result = util::run_command(spec, std::chrono::seconds(60));
  ASSERT_TRUE(result.status.success()) << result.output;
  Totals totals = merger.totals();
  std::string expected = std::to_string(totals.tests) + " " + std::to_string(totals.failures) + " " +
                         std::to_string(totals.errors) + " " + std::to_string(totals.skipped) + " " +
                         std::to_string(totals.failures) + " " + std::to_string(totals.errors) + " " +
                         std::to_string(totals.skipped) + "\n";
  EXPECT_EQ(result.output, expected);
  EXPECT_EQ(totals.tests, 13u + 6u + 4u + 5u + 6u + 5u + 4u);
}

TEST_F(JUnitTest, ControlCharactersAndBrokenUtf8AreWrittenParseable) {
  std::filesystem::path in = write("ctl.xml",
                                   "<testsuite name=\"s\"><testcase classname=\"c\" name=\"t&#27;x\">"
                                   "<failure message=\"bell&#7;\">esc \x1b[31m red \xff\xfe end</failure>"
                                   "<system-out>tab\tok</system-out></testcase></testsuite>");
  JUnitMerger merger;
  ASSERT_TRUE(merger.add_file(in)) << merger.problems().front().message;
  merger.write(out_);
  std::string text = read_text(out_);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find("&#27;"), std::string::npos);
  EXPECT_THAT(text, HasSubstr("name=\"t#x1Bx\""));
  EXPECT_THAT(text, HasSubstr("esc #x1B[31m red \xEF\xBF\xBD\xEF\xBF\xBD end"));
  EXPECT_THAT(text, HasSubstr("tab\tok"));
  util::SpawnSpec spec;
  spec.argv = {"/usr/bin/python3", "-c", "import sys, xml.etree.ElementTree as e; e.parse(sys.argv[1])",
               out_.string()};
  util::CommandResult result = util::run_command(spec, std::chrono::seconds(60));
  EXPECT_TRUE(result.status.success()) << result.output;
}

// ---- synthesized testcases -----------------------------------------------------------------------------

TEST_F(JUnitTest, AddTestcaseForACrashedGroup) {
  JUnitMerger merger;
  merger.add_file(kData / "pytest/part-1.xml");
  TestCaseRecord crashed;
  crashed.classname = "test_beta";
  crashed.name = "test_setup_error";
  crashed.outcome = Outcome::kError;
  crashed.message = "group 2 crashed: killed by SIGKILL";
  crashed.text = "last output <of> the group & more";
  merger.add_testcase("pytest", crashed);
  merger.write(out_);
  Totals totals = merger.totals();
  EXPECT_EQ(totals.tests, 9u);
  EXPECT_EQ(totals.errors, 1u);
  std::vector<TestCaseRecord> reread = read_testcases(out_);
  const TestCaseRecord& record = find(reread, "test_setup_error");
  EXPECT_EQ(record.outcome, Outcome::kError);
  EXPECT_EQ(record.message, "group 2 crashed: killed by SIGKILL");
  EXPECT_EQ(record.text, "last output <of> the group & more");
  EXPECT_EQ(record.suite, "pytest");
  pugi::xml_document doc = parse(out_);
  EXPECT_EQ(std::distance(doc.child("testsuites").children("testsuite").begin(),
                          doc.child("testsuites").children("testsuite").end()),
            1);
}

TEST_F(JUnitTest, AddTestcaseDuplicatingAFileIsReported) {
  JUnitMerger merger;
  merger.add_file(kData / "pytest/part-2.xml");
  TestCaseRecord again;
  again.classname = "test_beta";
  again.name = "test_setup_error";
  again.outcome = Outcome::kError;
  merger.add_testcase("pytest", again);
  EXPECT_THAT(merger.duplicates(), ElementsAre(Pair("test_beta", "test_setup_error")));
}

// ---- bad input -----------------------------------------------------------------------------------------

std::string error_of(const std::filesystem::path& path) {
  try {
    read_testcases(path);
  } catch (const UsageError& error) {
    return error.what();
  }
  return "(no error)";
}

TEST_F(JUnitTest, BadInputsNameFileLineAndColumn) {
  const std::filesystem::path bad = kData / "bad";
  EXPECT_EQ(error_of(bad / "empty.xml"), (bad / "empty.xml").string() + ":1:1: empty file");
  EXPECT_EQ(error_of(bad / "blank.xml"), (bad / "blank.xml").string() + ":1:1: empty file");
  EXPECT_THAT(error_of(bad / "truncated.xml"), HasSubstr((bad / "truncated.xml").string() + ":5:77: "));
  EXPECT_THAT(
      error_of(bad / "malformed.xml"),
      HasSubstr((bad / "malformed.xml").string() + ":4:5: attribute \"time\" of <testcase> given twice"));
  std::filesystem::path appended =
      write("appended.xml", "<testsuite name=\"a\"/>\n  <testsuite name=\"b\"/>\n");
  EXPECT_EQ(
      error_of(appended),
      appended.string() + ":2:3: a second root element <testsuite> (two reports written into one file?)");
  EXPECT_EQ(error_of(bad / "wrong-root.xml"),
            (bad / "wrong-root.xml").string() +
                ":3:1: root element is <coverage>, expected <testsuites> or <testsuite>");
  EXPECT_EQ(error_of(kData / "missing.xml").rfind((kData / "missing.xml").string() + ": cannot read", 0), 0u);
}

TEST_F(JUnitTest, DoctypeIsRefusedAndNothingExpanded) {
  const std::filesystem::path bad = kData / "bad";
  EXPECT_THAT(error_of(bad / "billion-laughs.xml"),
              HasSubstr((bad / "billion-laughs.xml").string() + ":2:1: DOCTYPE refused"));
  EXPECT_THAT(error_of(bad / "external-entity.xml"),
              HasSubstr((bad / "external-entity.xml").string() + ":2:1: DOCTYPE refused"));
  // An entity that nothing declares stays text as written; only the predefined ones are decoded.
  std::vector<TestCaseRecord> records = read_testcases(bad / "undeclared-entity.xml");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].name, "&undeclared; & A");
}

TEST_F(JUnitTest, MergerRecordsBadFilesAndMergesTheGoodOnes) {
  JUnitMerger merger;
  EXPECT_TRUE(merger.add_file(kData / "pytest/part-1.xml"));
  EXPECT_FALSE(merger.add_file(kData / "bad/truncated.xml"));
  EXPECT_FALSE(merger.add_file(kData / "bad/billion-laughs.xml"));
  EXPECT_TRUE(merger.add_file(kData / "pytest/part-2.xml"));
  ASSERT_EQ(merger.problems().size(), 2u);
  EXPECT_EQ(merger.problems()[0].file, kData / "bad/truncated.xml");
  EXPECT_THAT(merger.problems()[0].message, HasSubstr("truncated.xml:5:77"));
  merger.write(out_);
  EXPECT_THAT(keys(read_testcases(out_)),
              UnorderedElementsAreArray(keys(read_testcases(kData / "pytest/whole.xml"))));
}

TEST_F(JUnitTest, DeepNestingIsRefusedWithoutCrashing) {
  std::string deep;
  for (int i = 0; i < 200000; ++i) deep += "<testsuite name=\"s\">";
  for (int i = 0; i < 200000; ++i) deep += "</testsuite>";
  EXPECT_THAT(error_of(write("deep.xml", deep)), HasSubstr("nested deeper than"));
}

TEST_F(JUnitTest, DeepElementsInsideATestcaseAreCopiedWithoutRecursion) {
  std::string deep = "<testsuite name=\"s\"><testcase classname=\"c\" name=\"t\"><system-out>";
  for (int i = 0; i < 300000; ++i) deep += "<x>";
  for (int i = 0; i < 300000; ++i) deep += "</x>";
  deep += "</system-out></testcase></testsuite>";
  JUnitMerger merger;
  ASSERT_TRUE(merger.add_file(write("deep.xml", deep)));
  merger.write(out_);
  EXPECT_EQ(merger.totals().tests, 1u);
}

TEST_F(JUnitTest, LargeAndSmallTestcasesInterleavedKeepTheirText) {
  // Stored testcases live in chunks; big ones in blocks of their own: both must come back intact.
  std::string xml = "<testsuite name=\"s\">";
  for (int i = 0; i < 40; ++i) {
    std::string output(i % 3 == 0 ? 700000 : 30000, static_cast<char>('a' + i % 26));
    xml += "<testcase classname=\"c\" name=\"t" + std::to_string(i) + "\"><failure message=\"m" +
           std::to_string(i) + "\">" + output + "</failure></testcase>";
  }
  xml += "</testsuite>";
  JUnitMerger merger;
  ASSERT_TRUE(merger.add_file(write("large.xml", xml)));
  merger.write(out_);
  std::vector<TestCaseRecord> records = read_testcases(out_);
  ASSERT_EQ(records.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(records[i].name, "t" + std::to_string(i));
    EXPECT_EQ(records[i].message, "m" + std::to_string(i));
    EXPECT_EQ(records[i].text, std::string(i % 3 == 0 ? 700000 : 30000, static_cast<char>('a' + i % 26)));
  }
  EXPECT_EQ(merger.testcases()[39].text, records[39].text);
}

TEST_F(JUnitTest, HugeFileIsRefusedBeforeReading) {
  std::filesystem::path huge = temp_.path() / "huge.xml";
  std::ofstream(huge).close();
  std::filesystem::resize_file(huge, (std::uintmax_t{1} << 30) + 1);  // sparse: no disk used
  EXPECT_THAT(error_of(huge), HasSubstr("larger than the 1024 MiB limit"));
}

TEST_F(JUnitTest, WriteToAMissingDirectoryIsAnInfrastructureError) {
  JUnitMerger merger;
  merger.add_file(kData / "ctest/junit.xml");
  EXPECT_THROW(merger.write(temp_.path() / "no/such/dir/out.xml"), InfrastructureError);
}

// ---- verbatim copies, two threads, inputs read again -----------------------------------------------------

TEST(VerbatimElementTest, CopiesWhatEveryConsumerAcceptsAndNothingElse) {
  // Accepted whole: the element is the entire text.
  for (std::string_view element : {
           std::string_view(R"(<testcase classname="c" name="t" time="1"/>)"),
           std::string_view(R"(<testcase name='single quotes' time = "2" />)"),
           std::string_view(
               "<testcase name=\"a\">\n  <failure message=\"x &amp; y &quot;z&quot;\">trace &lt;1&gt; "
               "&apos;</failure>\n</testcase >"),
           std::string_view("<testcase name=\"c\"><failure><![CDATA[a < b & c ]] > ]]></failure></testcase>"),
           std::string_view("<testcase name=\"caf\xC3\xA9 \xF0\x9F\x9A\x80\">\t\r\n</testcase>"),
           std::string_view("<t><a><b><c/></b></a><a/></t>"),
       }) {
    EXPECT_EQ(verbatim_element_length(element), element.size()) << element;
  }
  // Only the first element, not what follows it.
  EXPECT_EQ(verbatim_element_length("<a x=\"1\"/><b/>"), 10u);
  EXPECT_EQ(verbatim_element_length("<a><b/></a>\n</suite>"), 11u);
  // Refused: what pugixml lets through and other readers do not, and what we do not copy as it is.
  for (std::string_view element : {
           std::string_view("<a>&#27;</a>"),             // a character reference (this one not XML 1.0)
           std::string_view("<a>&#65;</a>"),             // any character reference is serialised
           std::string_view("<a>fish & chips</a>"),      // a bare '&'
           std::string_view("<a>&nbsp;</a>"),            // an entity XML does not predefine
           std::string_view("<a b=\"x<y\"/>"),           // '<' in an attribute value
           std::string_view("<a>x ]]> y</a>"),           // "]]>" in text
           std::string_view("<a>bell \x07</a>"),         // a control character
           std::string_view("<a>\xFF</a>"),              // not UTF-8
           std::string_view("<a>\xC0\xAF</a>"),          // overlong UTF-8
           std::string_view("<a>\xED\xA0\x80</a>"),      // a surrogate
           std::string_view("<a>\xEF\xBF\xBE</a>"),      // U+FFFE
           std::string_view("<a>\xE2\x82</a>"),          // truncated UTF-8
           std::string_view("<a><!-- note --></a>"),     // a comment
           std::string_view("<a><?pi x?></a>"),          // a processing instruction
           std::string_view("<a b=\"1\"c=\"2\"/>"),      // attributes not separated
           std::string_view("<a b=1/>"),                 // an unquoted value
           std::string_view("<a><b></b>"),               // not closed
           std::string_view("<a><![CDATA[x</a>"),        // CDATA not closed
           std::string_view("<a><![CDATA[\x01]]></a>"),  // a control character in CDATA
           std::string_view("<a b=\"x"),                 // cut in an attribute
           std::string_view("text"),                     // not an element
           std::string_view(""),
       }) {
    EXPECT_EQ(verbatim_element_length(element), 0u) << element;
  }
}

TEST_F(JUnitTest, TestcasesThatCannotBeCopiedAreSerialisedParseably) {
  // Character references, a bare '&' pugixml accepts, control characters and a comment: each testcase is
  // written from its parsed document instead, in a form expat (Python's parser) reads.
  std::filesystem::path in =
      write("odd.xml",
            "<testsuite name=\"s\">"
            "<testcase classname=\"c\" name=\"ref\"><failure>esc &#27; A &#65;</failure></testcase>"
            "<testcase classname=\"c\" name=\"amp\"><failure>fish & chips</failure></testcase>"
            "<testcase classname=\"c\" name=\"comment\"><!-- x --></testcase>"
            "<testcase classname=\"c\" name=\"plain\" time=\"1\"/>"
            "</testsuite>");
  JUnitMerger merger;
  ASSERT_TRUE(merger.add_file(in));
  merger.write(out_);
  std::string text = read_text(out_);
  EXPECT_THAT(text, HasSubstr("esc #x1B A A</failure>"));
  EXPECT_THAT(text, HasSubstr("fish &amp; chips"));
  EXPECT_THAT(text, Not(HasSubstr("<!--")));
  EXPECT_THAT(text, HasSubstr(R"(<testcase classname="c" name="plain" time="1"/>)"));
  util::SpawnSpec spec;
  spec.argv = {
      "/usr/bin/python3", "-c",
      "import sys, xml.etree.ElementTree as E; print(len(E.parse(sys.argv[1]).findall('.//testcase')))",
      out_.string()};
  util::CommandResult python = util::run_command(spec, std::chrono::seconds(60));
  EXPECT_EQ(python.output, "4\n") << python.output;
}

namespace {

// Files that exercise every part of a merge: suites met again in later files, nested suites, properties,
// system-out and -err, testcases copied and testcases rewritten, a duplicate, a bad file.
std::vector<std::string> varied_inputs() {
  std::vector<std::string> files;
  for (int f = 0; f < 7; ++f) {
    std::string xml = "<testsuites name=\"all\">";
    // The earliest timestamp is the last file's: read by the second thread.
    xml += "<testsuite name=\"shared\" time=\"1.5\" hostname=\"h" + std::to_string(f) +
           "\" timestamp=\"2024-05-02T10:00:0" + std::to_string(9 - f) +
           "\"><properties>"
           "<property name=\"p\" value=\"" +
           std::to_string(f % 2) + "\"/></properties>";
    for (int t = 0; t < 5; ++t) {
      xml += "<testcase classname=\"k" + std::to_string(f) + "\" name=\"t" + std::to_string(t) +
             "\" time=\"0.25\"";
      xml += t == 1   ? "><failure message=\"m\">trace &lt;" + std::to_string(f) + "&gt;</failure></testcase>"
             : t == 2 ? "><skipped/></testcase>"
             : t == 3 ? " status=\"disabled\"/>"
                      : "/>";
    }
    xml += "<testcase classname=\"k\" name=\"commas\" time=\"1,000.5\"/>";
    xml += "<testsuite name=\"nested" + std::to_string(f % 3) + "\"><testcase classname=\"n\" name=\"x" +
           std::to_string(f) + "\"><error>e &#65;</error></testcase></testsuite>";
    xml += "<system-out>out " + std::to_string(f) + "</system-out><system-err>err</system-err></testsuite>";
    xml += "<testsuite name=\"only" + std::to_string(f) +
           "\"><testcase classname=\"same\" name=\"everywhere\"/>"
           "</testsuite></testsuites>";
    files.push_back(xml);
  }
  files[4] = "<testsuite name=\"broken\"><testcase";  // truncated: a problem, the others merged
  return files;
}

}  // namespace

TEST_F(JUnitTest, MergedOnTwoThreadsIsByteForByteTheSequentialMerge) {
  std::vector<std::filesystem::path> paths;
  std::vector<std::string> inputs = varied_inputs();
  for (std::size_t i = 0; i < inputs.size(); ++i)
    paths.push_back(write(fmt::format("in-{}.xml", i), inputs[i]));
  JUnitMerger sequential;
  std::vector<bool> one_by_one;
  for (const auto& path : paths) one_by_one.push_back(sequential.add_file(path));
  JUnitMerger parallel;
  EXPECT_EQ(parallel.add_files(paths), one_by_one);
  EXPECT_EQ(one_by_one, (std::vector<bool>{true, true, true, true, false, true, true}));

  std::filesystem::path a = temp_.path() / "sequential.xml";
  std::filesystem::path b = temp_.path() / "parallel.xml";
  sequential.write(a);
  parallel.write(b);
  EXPECT_EQ(read_text(a), read_text(b));
  EXPECT_EQ(keys(sequential.testcases()), keys(parallel.testcases()));
  EXPECT_EQ(sequential.duplicates(), parallel.duplicates());
  EXPECT_THAT(parallel.duplicates(), ElementsAre(Pair("k", "commas"), Pair("same", "everywhere")));
  ASSERT_EQ(parallel.problems().size(), 1u);
  EXPECT_EQ(parallel.problems()[0].file, paths[4]);
  EXPECT_EQ(parallel.totals().tests, sequential.totals().tests);
  EXPECT_EQ(parallel.totals().tests, 6u * 8u);
  pugi::xml_document doc = parse(b);
  pugi::xml_node shared = doc.child("testsuites").find_child_by_attribute("testsuite", "name", "shared");
  EXPECT_STREQ(shared.attribute("timestamp").value(), "2024-05-02T10:00:03");  // the last file's
  EXPECT_STREQ(shared.attribute("time").value(), "7.500");  // to the first file's end, 10:00:09 + 1.5
}

TEST_F(JUnitTest, AnInputChangedBeforeTheResultIsWrittenIsNamedAndNothingIsWritten) {
  std::filesystem::path in =
      write("in.xml", R"(<testsuite name="s"><testcase classname="c" name="t"/></testsuite>)");
  JUnitMerger merger;
  ASSERT_TRUE(merger.add_file(in));
  std::ofstream(in, std::ios::app) << "\n<!-- appended by someone -->\n";
  try {
    merger.write(out_);
    FAIL() << "a changed input was copied from";
  } catch (const UsageError& error) {
    EXPECT_THAT(error.what(), HasSubstr(in.string()));
    EXPECT_THAT(error.what(), HasSubstr("changed while it was being merged"));
  }
  EXPECT_FALSE(std::filesystem::exists(out_));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(temp_.path()), {}), 1)
      << "a temporary file was left";
}

TEST_F(JUnitTest, AResultWrittenOverAnInputStillReadsThatInput) {
  // `testfleet merge junit a.xml a.xml b.xml`: the result replaces a.xml, whose testcases are still read
  // back afterwards (duplicates, summaries) from the file as it was.
  std::filesystem::path a =
      write("a.xml", R"(<testsuite name="s"><testcase classname="c" name="twice"/></testsuite>)");
  std::filesystem::path b = write(
      "b.xml",
      R"(<testsuite name="s"><testcase classname="c" name="twice"/><testcase classname="c" name="b"/></testsuite>)");
  JUnitMerger merger;
  EXPECT_EQ(merger.add_files({a, b}), (std::vector<bool>{true, true}));
  merger.write(a);
  EXPECT_EQ(read_testcases(a).size(), 3u);
  EXPECT_THAT(merger.duplicates(), ElementsAre(Pair("c", "twice")));
  EXPECT_EQ(merger.testcases().size(), 3u);
}

TEST_F(JUnitTest, InputsBeyondThoseKeptOpenAreReadAgainByPath) {
  std::vector<std::filesystem::path> paths;
  for (int i = 0; i < 150; ++i) {
    paths.push_back(
        write(fmt::format("many-{}.xml", i),
              fmt::format(R"(<testsuite name="s"><testcase classname="c" name="t{}"/></testsuite>)", i)));
  }
  JUnitMerger merger;
  std::vector<bool> added = merger.add_files(paths);
  EXPECT_EQ(std::count(added.begin(), added.end(), true), 150);
  merger.write(out_);
  std::vector<TestCaseRecord> records = read_testcases(out_);
  ASSERT_EQ(records.size(), 150u);
  for (int i = 0; i < 150; ++i) EXPECT_EQ(records[i].name, fmt::format("t{}", i));
  // The last files, no longer open, are checked as the open ones are.
  std::ofstream(paths.back(), std::ios::app) << " ";
  EXPECT_THROW(merger.write(out_), UsageError);
}

}  // namespace
}  // namespace testfleet::reports
