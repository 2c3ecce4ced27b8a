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
  EXPECT_EQ(lines[0].rfind("::error file=tests/test_a.py,title=failed%3A tests.test_a%3A%3Atest_0[a|b]::", 0),
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
