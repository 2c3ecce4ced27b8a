// The HTML report of a run: one self-contained page (inline CSS, no script, no font, no image, nothing
// fetched; a Content-Security-Policy forbids any request should something slip in) that a CI artifact
// viewer or a browser opens from disk. It is rebuilt from the reports directory alone (run.json, each
// group's progress stream, JUnit and output log, the merged JUnit), so `testfleet report DIR` can make it
// again from a downloaded artifact, wherever the directory now lives.
//
// The timeline is the point of the page: every group as a row, its provisioning, each test as a bar at the
// time it ran (from the pytest plugin's progress stream; a runner without one has its tests laid end to end
// by their JUnit times and marked approximate), the teardown, and the ideal finish line, so that a long tail
// or an expensive start-up is seen at a glance. Runs of tiny passing tests are drawn as one bar, which keeps
// a 100,000-test page a few megabytes; a test that did not pass always has a bar of its own.
//
// Everything shown comes from files a test runner wrote, so every string is escaped, invalid UTF-8 and
// control characters are made visible rather than passed on, and long outputs are cut to their tails.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "reports/junit.hpp"

namespace testfleet::ui {

// One test in a group's timeline.
struct TimedTest {
  std::string id;  // the runner's test ID; classname::name when only JUnit knew the test
  reports::Outcome outcome = reports::Outcome::kPassed;
  double started = 0;  // seconds since the epoch
  double ended = 0;
  double seconds = 0;       // as the runner measured it (setup + call + teardown)
  bool unfinished = false;  // started, never reported: the group ended (crash, timeout, stop) during it
  std::string message;
};

struct GroupRecord {
  int index = 0;
  std::size_t planned_tests = 0;
  double estimate_seconds = 0;
  std::vector<std::string> command;
  std::filesystem::path log;  // the group's output.log, in the reports directory when it is there
  std::optional<double> provision_seconds;
  std::optional<std::string> provision_error;
  std::optional<double> teardown_seconds;  // from the run's teardown start
  std::optional<double> started;           // seconds since the epoch
  std::optional<double> ended;
  std::string status;  // "exit 1", "killed by SIGKILL", "could not start"
  bool timed_out = false;
  std::vector<TimedTest> tests;      // in the order they ran
  bool tests_approximate = false;    // placed by JUnit times, not by a progress stream
  std::string output;                // the log's tail
  std::size_t output_bytes = 0;      // the whole log's size
  std::vector<std::string> runners;  // one line per runner process or batch: "runner 1: killed by SIGKILL"
  std::optional<std::string> lost;   // why the worker left the run early
};

struct Failure {
  reports::TestCaseRecord record;
  int group = 0;  // 0 when no group's own report names the test
};

struct RunRecord {
  std::filesystem::path dir;
  std::string run_id;
  std::string cwd;
  std::string algorithm;
  std::string shard;  // "2/4" when the run was one shard of several machines
  int exit_code = 0;
  double wall_seconds = 0;
  double lower_bound_seconds = 0;  // the plan's, from past durations
  // Tests the plan had no past duration for; when it is every test, the plan's times mean nothing.
  std::optional<std::size_t> estimated_tests;
  double run_started = 0;      // phase times, seconds since the epoch (0: the phase never began)
  double prepare_seconds = 0;  // from the run's start: images built, templates made, once for all groups
  double provision_started = 0;
  double execute_started = 0;
  double teardown_started = 0;
  double teardown_ended = 0;
  reports::Totals totals;
  std::size_t not_reported = 0;
  std::string merged_junit;
  std::vector<GroupRecord> groups;
  // Tests moved between workers: "3 tests (~4.5s) from worker 2 to worker 1 at 12.3s".
  std::vector<std::string> moves;
  std::vector<Failure> failures;   // every failed or erroneous testcase of the merged JUnit
  std::vector<std::string> notes;  // what could not be read, said on the page
};

// Reads what a run left in `reports_dir`. Throws UsageError when there is no readable run.json; any other
// missing or malformed file becomes a note and the report is made from the rest.
RunRecord load_run(const std::filesystem::path& reports_dir);

// The page. `generated_by` is printed in its footer (e.g. "testfleet 0.1.0").
std::string render_html_report(const RunRecord& run, const std::string& generated_by);

// Reads `reports_dir` and writes `reports_dir`/report.html atomically; returns its path.
std::filesystem::path write_html_report(const std::filesystem::path& reports_dir,
                                        const std::string& generated_by);

// Text made safe inside HTML elements and attribute values: & < > " ' escaped, invalid UTF-8 as U+FFFD,
// control characters other than tab and newline as their visible symbols (U+2400...), escape sequences
// (terminal colours) removed.
std::string html_escape(std::string_view text);

}  // namespace testfleet::ui
