// What CI systems read besides the JUnit file: on GitHub Actions a Markdown job summary
// ($GITHUB_STEP_SUMMARY), `::error` annotations on failed tests and each group's log folded in
// `::group::`; on GitLab CI collapsible log sections. Formats: ../shared/FORMATS.md, "CI conventions".
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "reports/junit.hpp"
#include "util/subprocess.hpp"

namespace testfleet::ci {

enum class Provider { kNone, kGitHub, kGitLab };

// `setting` is auto, none, github or gitlab; auto looks at GITHUB_ACTIONS and GITLAB_CI.
Provider detect(std::string_view setting, const util::EnvVars& env);

struct GroupSummary {
  int index = 0;
  std::size_t tests = 0;
  double seconds = 0;
  double estimate_seconds = 0;
  std::string status;  // "exit 0", "killed by SIGKILL", "environment failed"
  bool failed = false;
  std::filesystem::path log;
};

struct RunSummary {
  std::string run_id;
  reports::Totals totals;
  std::size_t not_reported = 0;
  double wall_seconds = 0;
  double lower_bound_seconds = 0;
  std::vector<GroupSummary> groups;
  std::vector<reports::TestCaseRecord> testcases;
  // The source file of a testcase by "classname\x1fname", when the runner can tell (for annotations).
  std::map<std::string, std::string> files;
  std::string merged_junit;
};

// Markdown for $GITHUB_STEP_SUMMARY: totals, per-group times, slowest tests, failures with their first lines;
// never more than `max_bytes` (GitHub takes 1 MiB per step).
std::string github_step_summary(const RunSummary& summary, std::size_t max_bytes = 1000 * 1000);

// `::error` lines for failed and errored testcases, at most `max` (GitHub shows 10 per step). Each names the
// test's own file (`file` attribute, else `summary.files`) and the line of it the failure names last
// (traceback_line), else the testcase's `line` attribute; its title names the test by test_id.
std::vector<std::string> github_annotations(const RunSummary& summary, std::size_t max = 10);

// The test's ID in the one form the summary and the annotations use: pytest's node ID
// ("tests/test_pricing.py::TestCart::test_total[1]") when its file is known and its classname is that file's
// module (pytest's dotted classname, perhaps behind a --junit-prefix); otherwise "classname::name", as the
// generic runner's IDs are, or the name alone.
std::string test_id(const reports::TestCaseRecord& record, std::string_view file);

// The line of `file` that a failure's text names last, 0 when none does. pytest's tracebacks name every
// frame, the innermost last: "path:33: ..." (--tb=auto, long, short) or `File "path", line 33` (--tb=native),
// the path relative to where pytest ran or absolute, so `file` is matched by the path's last components.
int traceback_line(std::string_view text, std::string_view file);

// GitHub's escaping of a workflow command's message, and of a property value.
std::string github_escape_data(std::string_view text);
std::string github_escape_property(std::string_view text);

// A log folded for the provider: `::group::title` ... `::endgroup::` on GitHub, a collapsed section on
// GitLab, the content as it is otherwise. `name` is the GitLab section name ([A-Za-z0-9_.-] kept).
std::string fold(Provider provider, const std::string& name, const std::string& title,
                 const std::string& content, long long unix_time);

}  // namespace testfleet::ci
