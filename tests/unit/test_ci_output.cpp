#include <gtest/gtest.h>

#include "ci/ci_output.hpp"

using namespace testfleet;

namespace {

ci::RunSummary summary_with_failures(std::size_t count, std::size_t text_size) {
  ci::RunSummary summary;
  summary.run_id = "r1";
  summary.merged_junit = "unit.xml";
  for (std::size_t i = 0; i < count; ++i) {
    reports::TestCaseRecord record;
    record.classname = "tests.test_a";
    record.name = "test_" + std::to_string(i) + "[a|b]";
    record.outcome = i % 2 == 0 ? reports::Outcome::kFailed : reports::Outcome::kError;
    record.message = "assert 1 == 2\nsecond line";
    record.text = std::string(text_size, 'x');
    record.time = static_cast<double>(i);
    summary.testcases.push_back(record);
  }
  summary.totals.tests = count;
  summary.totals.failures = count;
  return summary;
}

}  // namespace

TEST(CiDetect, FromTheEnvironmentOrTheSetting) {
  EXPECT_EQ(ci::detect("auto", {{"GITHUB_ACTIONS", "true"}}), ci::Provider::kGitHub);
  EXPECT_EQ(ci::detect("auto", {{"GITLAB_CI", "true"}}), ci::Provider::kGitLab);
  EXPECT_EQ(ci::detect("auto", {}), ci::Provider::kNone);
  EXPECT_EQ(ci::detect("none", {{"GITHUB_ACTIONS", "true"}}), ci::Provider::kNone);
  EXPECT_EQ(ci::detect("gitlab", {}), ci::Provider::kGitLab);
}

TEST(GitHubEscaping, DataAndProperties) {
  EXPECT_EQ(ci::github_escape_data("50%\r\nnext"), "50%25%0D%0Anext");
  EXPECT_EQ(ci::github_escape_property("a:b,c%"), "a%3Ab%2Cc%25");
}

TEST(GitHubAnnotations, AtMostTenThenANotice) {
  ci::RunSummary summary = summary_with_failures(12, 10);
  summary.files["tests.test_a\x1ftest_0[a|b]"] = "tests/test_a.py";
  std::vector<std::string> lines = ci::github_annotations(summary);
  ASSERT_EQ(lines.size(), 11u);
  // The test's ID in one form, pytest's node ID; no line: the failure text names none.
  EXPECT_EQ(
      lines[0].rfind("::error file=tests/test_a.py,title=failed%3A tests/test_a.py%3A%3Atest_0[a|b]::", 0),
      0u)
      << lines[0];
  EXPECT_NE(lines[0].find("assert 1 == 2%0Asecond line"), std::string::npos);
  EXPECT_EQ(lines[1].find('\n'), std::string::npos);
  EXPECT_EQ(lines.back().rfind("::notice", 0), 0u);
}

TEST(GitHubSummary, StaysUnderTheLimitAndNamesFailures) {
  ci::RunSummary summary = summary_with_failures(2000, 3000);
  summary.groups.push_back({1, 2000, 12.5, 10, "exit 1", true, "log"});
  std::string markdown = ci::github_step_summary(summary, 100 * 1000);
  EXPECT_LE(markdown.size(), 100u * 1000);
  EXPECT_NE(markdown.find("### Failures (2000)"), std::string::npos);
  EXPECT_NE(markdown.find("test_0[a\\|b]"), std::string::npos);
  EXPECT_NE(markdown.find("more: see unit.xml"), std::string::npos);
  EXPECT_NE(markdown.find("| 1 | 2000 | 12.5s |"), std::string::npos);
}

TEST(Fold, GitHubGroupsAndGitLabSections) {
  std::string github = ci::fold(ci::Provider::kGitHub, "g1", "group 1", "line\n::error::not a command\n", 5);
  EXPECT_EQ(github, "::group::group 1\nline\n ::error::not a command\n::endgroup::\n");
  std::string gitlab = ci::fold(ci::Provider::kGitLab, "group 1!", "group 1", "line", 1700000000);
  EXPECT_EQ(gitlab,
            "\x1b[0Ksection_start:1700000000:group_1_[collapsed=true]\r\x1b[0Kgroup 1\nline\n"
            "\x1b[0Ksection_end:1700000000:group_1_\r\x1b[0K\n");
  EXPECT_EQ(ci::fold(ci::Provider::kNone, "x", "t", "body", 1), "body\n");
}

namespace {

// Failure texts as pytest 7 writes them into its JUnit (tests/test_pricing.py calls shop/pricing.py, which
// raises), for each --tb style that names locations.
const char* const kLongTraceback = R"(self = <test_pricing.TestEmpty object at 0x7f5a86ededd0>

    def test_empty(self):
>       total([])

tests/test_pricing.py:33: 
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ 

items = []

    def total(items):
        if not items:
>           raise ValueError("no items")
E           ValueError: no items

shop/pricing.py:3: ValueError)";
const char* const kShortTraceback = R"(tests/test_pricing.py:33: in test_empty
    total([])
shop/pricing.py:3: in total
    raise ValueError("no items")
E   ValueError: no items)";
const char* const kNativeTraceback = R"(Traceback (most recent call last):
  File "/code/tests/test_pricing.py", line 33, in test_empty
    total([])
  File "/code/shop/pricing.py", line 3, in total
    raise ValueError("no items")
ValueError: no items)";

ci::RunSummary one_failure(const std::string& text) {
  ci::RunSummary summary;
  reports::TestCaseRecord record;
  record.classname = "tests.test_pricing.TestEmpty";
  record.name = "test_empty";
  record.outcome = reports::Outcome::kFailed;
  record.message = "ValueError: no items";
  record.text = text;
  summary.testcases.push_back(record);
  summary.files["tests.test_pricing.TestEmpty\x1ftest_empty"] = "tests/test_pricing.py";
  return summary;
}

}  // namespace

TEST(GitHubAnnotations, TheTestsOwnFileAtTheLineItsTracebackNamesLast) {
  for (const char* text : {kLongTraceback, kShortTraceback, kNativeTraceback}) {
    std::vector<std::string> lines = ci::github_annotations(one_failure(text));
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].rfind("::error file=tests/test_pricing.py,line=33,title=failed%3A "
                             "tests/test_pricing.py%3A%3ATestEmpty%3A%3Atest_empty::ValueError: no items%0A",
                             0),
              0u)
        << lines[0];
  }
}

TEST(TracebackLine, FramesOfTheFileWhereverPytestRan) {
  EXPECT_EQ(ci::traceback_line(kLongTraceback, "tests/test_pricing.py"), 33);
  EXPECT_EQ(ci::traceback_line(kLongTraceback, "shop/pricing.py"), 3);
  EXPECT_EQ(ci::traceback_line(kNativeTraceback, "shop/pricing.py"), 3);
  // An absolute path in a container, a path relative to a folder below the rootdir.
  EXPECT_EQ(ci::traceback_line("/code/tests/test_a.py:12: AssertionError", "tests/test_a.py"), 12);
  EXPECT_EQ(ci::traceback_line("test_a.py:12: AssertionError", "tests/test_a.py"), 12);
  EXPECT_EQ(ci::traceback_line("../tests/test_a.py:12: AssertionError", "tests/test_a.py"), 12);
  // The innermost frame in the file is the last one named.
  EXPECT_EQ(
      ci::traceback_line("tests/test_a.py:5: in helper\ntests/test_a.py:9: in test\n", "tests/test_a.py"), 9);
  // Another file of the same name, text that only looks like a location, nothing at all.
  EXPECT_EQ(ci::traceback_line("other/test_a.py:12: AssertionError", "tests/test_a.py"), 0);
  EXPECT_EQ(ci::traceback_line("E   assert 'tests/test_a.py:7' == 'x'", "tests/test_a.py"), 0);
  EXPECT_EQ(ci::traceback_line("E   assert 2 == 3", "tests/test_a.py"), 0);
  EXPECT_EQ(ci::traceback_line(kLongTraceback, ""), 0);
}

TEST(GitHubAnnotations, WithoutATracebackLineTheTestcasesLineAttribute) {
  // --tb=line leaves no location in the JUnit text; pytest's xunit1 `line` counts from 0.
  ci::RunSummary summary = one_failure("E   ValueError: no items");
  summary.testcases[0].line = 31;
  EXPECT_EQ(ci::github_annotations(summary)[0].rfind("::error file=tests/test_pricing.py,line=32,title=", 0),
            0u);
  // Another producer's line is its own.
  reports::TestCaseRecord php;
  php.classname = "App.Tests.CartTest";
  php.name = "testTotal";
  php.file = "tests/CartTest.php";
  php.line = 40;
  php.outcome = reports::Outcome::kError;
  summary.testcases = {php};
  EXPECT_EQ(
      ci::github_annotations(summary)[0].rfind(
          "::error file=tests/CartTest.php,line=40,title=error in App.Tests.CartTest%3A%3AtestTotal::", 0),
      0u)
      << ci::github_annotations(summary)[0];
}

TEST(TestId, PytestsNodeIdWhenTheFileIsKnownElseTheRunnersForm) {
  reports::TestCaseRecord record;
  record.classname = "tests.unit.test_cart.TestCart.TestEmpty";
  record.name = "test_total[a.b-1]";
  EXPECT_EQ(ci::test_id(record, "tests/unit/test_cart.py"),
            "tests/unit/test_cart.py::TestCart::TestEmpty::test_total[a.b-1]");
  record.classname = "ci.tests.unit.test_cart";  // --junit-prefix=ci
  EXPECT_EQ(ci::test_id(record, "tests/unit/test_cart.py"), "tests/unit/test_cart.py::test_total[a.b-1]");
  record.classname = "tests.unit.test_cart_more";  // not this file's module
  EXPECT_EQ(ci::test_id(record, "tests/unit/test_cart.py"), "tests.unit.test_cart_more::test_total[a.b-1]");
  EXPECT_EQ(ci::test_id(record, ""), "tests.unit.test_cart_more::test_total[a.b-1]");
  record.classname.clear();
  EXPECT_EQ(ci::test_id(record, ""), "test_total[a.b-1]");
}

TEST(GitHubSummary, NamesTestsAsTheAnnotationsDo) {
  ci::RunSummary summary = one_failure(kShortTraceback);
  std::string markdown = ci::github_step_summary(summary);
  EXPECT_NE(markdown.find("`tests/test_pricing.py::TestEmpty::test_empty`"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("failed <code>tests/test_pricing.py::TestEmpty::test_empty</code>"),
            std::string::npos);
  EXPECT_EQ(markdown.find("tests.test_pricing"), std::string::npos);
}
