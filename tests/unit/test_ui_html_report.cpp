// The HTML report made from reports directories written here the way `testfleet run` and the pytest plugin
// write them: run.json, progress streams (one cut short by a kill), JUnit files, output logs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "ui/html_report.hpp"
#include "util/error.hpp"
#include "util/files.hpp"

namespace testfleet::ui {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kStart = 1795680000;
// A test ID with everything a page could trip on.
const std::string kOddId =
    "tests/test_odd.py::test_x[<script>alert(\"x\")</script> & 'q' caf\u00e9 \u65e5\u672c]";

std::string progress_line(const json& event) {
  return event.dump() + "\n";
}

json group_entry(int index, std::size_t tests, double started, double ended, const std::string& status) {
  return {{"group", index},
          {"tests", tests},
          {"estimate_seconds", 10.0},
          {"log", "/elsewhere/group-" + std::to_string(index) + "/output.log"},
          {"command", {"/usr/bin/python3", "-m", "pytest", "tests", "--junit-xml=group/junit.xml"}},
          {"provision_seconds", 0.5},
          {"teardown_seconds", 0.125 * index},
          {"started", started},
          {"ended", ended},
          {"status", status},
          {"timed_out", false}};
}

// Two groups: group 1 with a progress stream (one failure with an odd ID, and a test still running when
// a kill cut the stream mid-line), group 2 with JUnit only (a generic runner).
class ReportDirectory : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_.path() / "testfleet-reports";
    fs::create_directories(dir_ / "group-1");
    fs::create_directories(dir_ / "group-2");
    json run = {
        {"run_id", "20261126-abc"},
        {"cwd", "/project"},
        {"algorithm", "lpt"},
        {"exit_code", 1},
        {"wall_seconds", 12.0},
        {"lower_bound_seconds", 9.5},
        {"merged_junit", (temp_.path() / "unit.xml").string()},
        {"times",
         {{"run_started", kStart},
          {"prepare_seconds", 0.25},
          {"provision_started", kStart + 1},
          {"execute_started", kStart + 1.5},
          {"teardown_started", kStart + 10},
          {"teardown_ended", kStart + 10.5}}},
        {"totals", {{"tests", 6}, {"failures", 2}, {"errors", 1}, {"skipped", 0}, {"not_reported", 1}}},
        {"groups",
         {group_entry(1, 4, kStart + 1.5, kStart + 9, "killed by SIGKILL"),
          group_entry(2, 2, kStart + 1.5, kStart + 6, "exit 1")}}};
    util::write_file_atomic(dir_ / "run.json", run.dump(2));

    std::string progress = progress_line({{"event", "selected"}, {"count", 4}, {"time", kStart + 2}});
    progress +=
        progress_line({{"event", "start"}, {"id", "tests/test_a.py::test_one"}, {"time", kStart + 2}});
    progress += progress_line({{"event", "test"},
                               {"id", "tests/test_a.py::test_one"},
                               {"outcome", "passed"},
                               {"seconds", 0.9},
                               {"message", ""},
                               {"time", kStart + 3}});
    progress += progress_line({{"event", "start"}, {"id", kOddId}, {"time", kStart + 3}});
    progress += progress_line({{"event", "test"},
                               {"id", kOddId},
                               {"outcome", "failed"},
                               {"seconds", 1.5},
                               {"message", "assert '<b>' == \"&amp;\""},
                               {"time", kStart + 4.5}});
    progress +=
        progress_line({{"event", "start"}, {"id", "tests/test_a.py::test_hangs"}, {"time", kStart + 4.5}});
    progress += "{\"event\": \"test\", \"id\": \"tests/test_a.py::test_ha";  // cut by the kill
    util::write_file_atomic(dir_ / "group-1" / "progress.jsonl", progress);
    util::write_file_atomic(dir_ / "group-1" / "output.log",
                            "\x1b[31mFAILED\x1b[0m tests/test_odd.py - <script>\r\nbell \a\n");

    util::write_file_atomic(dir_ / "group-2" / "junit.xml", R"(<?xml version="1.0"?>
<testsuite name="go" tests="2" failures="1">
  <testcase classname="pkg/server" name="TestServe" time="2.5"/>
  <testcase classname="pkg/server" name="TestShutdown" time="1.25"><failure message="timeout &lt;5s&gt;">stack
trace</failure></testcase>
</testsuite>
)");
    util::write_file_atomic(dir_ / "group-2" / "output.log", "ok pkg/server\n");

    util::write_file_atomic(temp_.path() / "unit.xml", R"(<?xml version="1.0"?>
<testsuites><testsuite name="pytest" tests="5">
  <testcase classname="tests.test_a" name="test_one" time="0.9"/>
  <testcase classname="tests.test_odd" name="test_x[&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'q' café 日本]" time="1.5"><failure message="assert '&lt;b&gt;' == &quot;&amp;amp;&quot;">def test_x():
&gt;   assert '&lt;b&gt;' == "&amp;amp;"</failure></testcase>
  <testcase classname="tests.test_a" name="test_hangs"><error message="group 1 crashed (killed by SIGKILL) while running this test">group log</error></testcase>
</testsuite><testsuite name="go">
  <testcase classname="pkg/server" name="TestServe" time="2.5"/>
  <testcase classname="pkg/server" name="TestShutdown" time="1.25"><failure message="timeout &lt;5s&gt;">stack
trace</failure></testcase>
</testsuite></testsuites>
)");
  }

  util::TempDir temp_{"testfleet-report-test-"};
  fs::path dir_;
};

TEST_F(ReportDirectory, ReadsEveryGroupAndFailure) {
  RunRecord run = load_run(dir_);
  EXPECT_EQ(run.run_id, "20261126-abc");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.totals.failures, 2u);
  EXPECT_EQ(run.not_reported, 1u);
  EXPECT_TRUE(run.notes.empty());
  ASSERT_EQ(run.groups.size(), 2u);

  const GroupRecord& first = run.groups[0];
  EXPECT_FALSE(first.tests_approximate);
  ASSERT_EQ(first.tests.size(), 3u);
  EXPECT_EQ(first.tests[1].id, kOddId);
  EXPECT_EQ(first.tests[1].outcome, reports::Outcome::kFailed);
  EXPECT_DOUBLE_EQ(first.tests[1].started, kStart + 3);
  EXPECT_DOUBLE_EQ(first.tests[1].ended, kStart + 4.5);
  // Started, never reported: it ran until the group was killed.
  EXPECT_EQ(first.tests[2].id, "tests/test_a.py::test_hangs");
  EXPECT_TRUE(first.tests[2].unfinished);
  EXPECT_DOUBLE_EQ(first.tests[2].ended, kStart + 9);
  // The log is found in the directory itself, not where run.json said it was.
  EXPECT_EQ(first.log, dir_ / "group-1" / "output.log");
  EXPECT_THAT(first.output, HasSubstr("bell"));
  EXPECT_EQ(first.command.size(), 5u);
  EXPECT_DOUBLE_EQ(first.provision_seconds.value_or(0), 0.5);

  // Without a progress stream, the JUnit's tests are laid end to end from the group's start.
  const GroupRecord& second = run.groups[1];
  EXPECT_TRUE(second.tests_approximate);
  ASSERT_EQ(second.tests.size(), 2u);
  EXPECT_EQ(second.tests[1].id, "pkg/server::TestShutdown");
  EXPECT_DOUBLE_EQ(second.tests[1].started, kStart + 4);
  EXPECT_DOUBLE_EQ(second.tests[1].ended, kStart + 5.25);

  // Failures as the merged JUnit has them, each with the group whose JUnit reported it when one did.
  ASSERT_EQ(run.failures.size(), 3u);
  EXPECT_EQ(run.failures[0].record.name,
            "test_x[<script>alert(\"x\")</script> & 'q' caf\u00e9 \u65e5\u672c]");
  EXPECT_EQ(run.failures[0].group, 0);
  EXPECT_EQ(run.failures[1].record.outcome, reports::Outcome::kError);
  EXPECT_EQ(run.failures[2].record.name, "TestShutdown");
  EXPECT_EQ(run.failures[2].group, 2);
}

TEST_F(ReportDirectory, PageEscapesEverythingAndFetchesNothing) {
  std::string page = render_html_report(load_run(dir_), "testfleet 0.1.0");
  EXPECT_THAT(page, HasSubstr("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';"));
  EXPECT_THAT(page, Not(HasSubstr("<script")));
  EXPECT_THAT(page, Not(HasSubstr("http://")));
  EXPECT_THAT(page, Not(HasSubstr("https://")));
  EXPECT_THAT(page, Not(HasSubstr("\x1b")));
  EXPECT_THAT(page, Not(HasSubstr("\a")));
  EXPECT_THAT(page, HasSubstr("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39; caf\u00e9 "
                              "\u65e5\u672c]"));
  EXPECT_THAT(page, HasSubstr("assert &#39;&lt;b&gt;&#39; == &quot;&amp;amp;&quot;"));
  EXPECT_THAT(page, HasSubstr("bell &#x2407;"));
  EXPECT_THAT(page, HasSubstr("group 1"));
  EXPECT_THAT(page, HasSubstr("group 2"));
  EXPECT_THAT(page, HasSubstr("TestShutdown"));
  EXPECT_THAT(page, HasSubstr("killed by SIGKILL"));
  EXPECT_THAT(page, HasSubstr("/usr/bin/python3 -m pytest tests --junit-xml=group/junit.xml"));
  EXPECT_THAT(page, HasSubstr("<a href=\"group-1/output.log\">"));
  // The unfinished test has a bar of its own.
  EXPECT_THAT(page, HasSubstr("class=\"seg t unfinished\""));
  // No attribute value runs past its closing quote: every quote inside values is escaped.
  std::regex attribute(R"re(\s[a-z-]+="[^"<>]*")re");
  std::string stripped = std::regex_replace(page, attribute, "");
  EXPECT_THAT(stripped, Not(HasSubstr("=\"")));
}

TEST_F(ReportDirectory, TimelineShowsEveryPhase) {
  RunRecord run = load_run(dir_);
  EXPECT_DOUBLE_EQ(run.prepare_seconds, 0.25);
  EXPECT_DOUBLE_EQ(run.groups[1].teardown_seconds.value_or(0), 0.25);
  std::string page = render_html_report(run, "testfleet");
  // The run is 12 s long: the timeline's percentages are of that.
  EXPECT_THAT(page, HasSubstr("style=\"left:0.000%;width:2.083%\" title=\"prepare: 250 ms\""));
  EXPECT_THAT(page, HasSubstr("style=\"left:2.083%;width:6.250%\" title=\"collect and plan: 750 ms\""));
  EXPECT_THAT(page, HasSubstr("style=\"left:8.333%;width:4.167%\" title=\"provisioning: 500 ms\""));
  EXPECT_THAT(page,
              HasSubstr("style=\"left:83.333%;width:1.042%\" title=\"teardown of its environment: 125 ms\""));
  EXPECT_THAT(page,
              HasSubstr("style=\"left:83.333%;width:2.083%\" title=\"teardown of its environment: 250 ms\""));
  // The failing test's bar: from 3 s to 4.5 s.
  EXPECT_THAT(page, HasSubstr("class=\"seg t fail\" style=\"left:25.000%;width:12.500%\""));
  // Makespan 7.5 s (the groups from 1.5 s to 9 s), their work 12 s over 2 groups: ideal 6 s, ending at 7.5 s.
  EXPECT_THAT(page, HasSubstr("<b>7.5s</b><span>makespan</span>"));
  EXPECT_THAT(page, HasSubstr("<b>6.0s</b><span>ideal</span>"));
  EXPECT_THAT(page, HasSubstr("<b>80%</b><span>balance</span>"));
  EXPECT_THAT(page, HasSubstr("<div class=\"mark\" style=\"left:62.500%\""));
}

TEST_F(ReportDirectory, EstimatesShownOnlyWhenDurationsWereKnown) {
  EXPECT_THAT(render_html_report(load_run(dir_), "testfleet"), HasSubstr("planned lower bound"));
  json run = json::parse(util::read_file(dir_ / "run.json"));
  run["estimated_tests"] = 6;  // every planned test
  util::write_file_atomic(dir_ / "run.json", run.dump());
  std::string page = render_html_report(load_run(dir_), "testfleet");
  EXPECT_THAT(page, Not(HasSubstr("planned lower bound")));
  EXPECT_THAT(page, Not(HasSubstr(">10.0s<")));
}

TEST_F(ReportDirectory, WithoutTheMergedJUnitFailuresComeFromTheGroups) {
  fs::remove(temp_.path() / "unit.xml");
  RunRecord run = load_run(dir_);
  ASSERT_EQ(run.notes.size(), 1u);
  EXPECT_THAT(run.notes[0], HasSubstr("unit.xml is gone"));
  EXPECT_TRUE(run.shard.empty());
  ASSERT_EQ(run.failures.size(), 3u);
  // Group 1 wrote no JUnit: its progress stream names the failure and the test it died in.
  EXPECT_EQ(run.failures[0].record.name, kOddId);
  EXPECT_EQ(run.failures[0].group, 1);
  EXPECT_EQ(run.failures[1].record.name, "tests/test_a.py::test_hangs");
  EXPECT_EQ(run.failures[2].record.name, "TestShutdown");
  EXPECT_EQ(run.failures[2].group, 2);
  EXPECT_THAT(render_html_report(run, "testfleet"), HasSubstr("unit.xml is gone"));
}

TEST_F(ReportDirectory, AMovedDirectoryKeepsItsMergedJUnitAsJunitXml) {
  fs::rename(temp_.path() / "unit.xml", dir_ / "junit.xml");
  json run = json::parse(util::read_file(dir_ / "run.json"));
  run["shard"] = {{"index", 2}, {"count", 4}, {"source", "CI_NODE_INDEX"}};
  util::write_file_atomic(dir_ / "run.json", run.dump());
  RunRecord record = load_run(dir_);
  EXPECT_TRUE(record.notes.empty());
  EXPECT_EQ(record.failures.size(), 3u);
  EXPECT_EQ(record.shard, "2/4");
  EXPECT_THAT(render_html_report(record, "testfleet"), HasSubstr("shard 2/4 &middot; 2 groups"));
}

TEST_F(ReportDirectory, WritesReportHtml) {
  fs::path written = write_html_report(dir_, "testfleet 0.1.0");
  EXPECT_EQ(written, dir_ / "report.html");
  std::string page = util::read_file(written);
  EXPECT_THAT(page, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(page, HasSubstr("testfleet 0.1.0"));
}

TEST_F(ReportDirectory, ABadGroupJUnitIsANote) {
  util::write_file_atomic(dir_ / "group-2" / "junit.xml", "<testsuite><testcase name=\"a\">");
  RunRecord run = load_run(dir_);
  ASSERT_EQ(run.notes.size(), 1u);
  EXPECT_THAT(run.notes[0], HasSubstr("group 2's JUnit is unreadable"));
  EXPECT_TRUE(run.groups[1].tests.empty());
}

TEST(Report, ADirectoryWithoutARunIsAUsageError) {
  util::TempDir temp("testfleet-report-test-");
  EXPECT_THROW(load_run(temp.path()), UsageError);
  util::write_file_atomic(temp.path() / "run.json", "{\"run_id\": ");
  try {
    load_run(temp.path());
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr((temp.path() / "run.json").string()));
  }
}

TEST(Report, ManyTinyPassingTestsShareBarsButAFailureKeepsItsOwn) {
  util::TempDir temp("testfleet-report-test-");
  fs::create_directories(temp.path() / "group-1");
  json run = {{"run_id", "r"},
              {"exit_code", 1},
              {"wall_seconds", 30.0},
              {"times", {{"run_started", kStart}, {"teardown_ended", kStart + 30}}},
              {"groups", {group_entry(1, 10000, kStart, kStart + 25, "exit 1")}}};
  util::write_file_atomic(temp.path() / "run.json", run.dump());
  std::string progress;
  for (int i = 0; i < 10000; ++i) {
    double at = kStart + 1 + i * 0.001;
    std::string id = "tests/test_many.py::test_" + std::to_string(i);
    progress += progress_line({{"event", "start"}, {"id", id}, {"time", at}});
    progress += progress_line({{"event", "test"},
                               {"id", id},
                               {"outcome", i == 6789 ? "failed" : "passed"},
                               {"seconds", 0.001},
                               {"message", ""},
                               {"time", at + 0.001}});
  }
  util::write_file_atomic(temp.path() / "group-1" / "progress.jsonl", progress);
  // A log far larger than the page keeps: only its tail is shown.
  util::write_file_atomic(temp.path() / "group-1" / "output.log", std::string(1 << 20, 'x') + "\nthe end\n");

  RunRecord record = load_run(temp.path());
  ASSERT_EQ(record.groups[0].tests.size(), 10000u);
  EXPECT_EQ(record.groups[0].output_bytes, (1u << 20) + 9);
  EXPECT_EQ(record.groups[0].output, "the end\n");
  std::string page = render_html_report(record, "testfleet");
  std::size_t bars = 0;
  for (std::size_t at = page.find("class=\"seg t "); at != std::string::npos;
       at = page.find("class=\"seg t ", at + 1)) {
    ++bars;
  }
  EXPECT_GT(bars, 3u);
  EXPECT_LT(bars, 1000u);
  EXPECT_THAT(page, HasSubstr("class=\"seg t fail\""));
  EXPECT_THAT(page, HasSubstr("title=\"tests/test_many.py::test_6789\nfailed"));
  EXPECT_LT(page.size(), 1000000u);
}

TEST(HtmlEscape, MakesAnyTextSafe) {
  EXPECT_EQ(html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(html_escape("caf\u00e9 \u65e5\u672c \U0001F600"), "caf\u00e9 \u65e5\u672c \U0001F600");
  EXPECT_EQ(html_escape("tab\there\nline"), "tab\there\nline");
  EXPECT_EQ(html_escape("crlf\r\nnext\rover"), "crlf\nnext\nover");
  EXPECT_EQ(html_escape(std::string("nul\0bell\a", 9)), "nul&#x2400;bell&#x2407;");
  EXPECT_EQ(html_escape("\x1b[1;31mred\x1b[0m \x1b]0;title\a!"), "red !");
  // Invalid UTF-8: stray continuation, overlong form, a surrogate, past U+10FFFF, cut short.
  EXPECT_EQ(html_escape("\x80|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe6\x97"),
            "\uFFFD|\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD\uFFFD|\uFFFD\uFFFD");
  EXPECT_EQ(html_escape("\xc2\x85"), "\uFFFD");  // a C1 control
}

}  // namespace
}  // namespace testfleet::ui
