// JUnit XML: reading testcases from any common producer and merging many files into one that
// publish-unit-test-result-action and GitLab read right (../shared/FORMATS.md). Counts are always
// recomputed from testcases; nothing is expanded from a DOCTYPE; a bad input is named with its position
// and the good ones are still merged.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace testfleet::reports {

enum class Outcome : std::uint8_t {
  kPassed,
  kFailed,
  kError,
  kSkipped,
  kNotRun,  // ctest status="disabled"/"notrun": not run, and not passed either
};

std::string_view to_string(Outcome outcome);

// One <testcase>, as publishers and summaries need it.
struct TestCaseRecord {
  std::string suite;  // name of the innermost <testsuite>
  std::string classname;
  std::string name;
  std::string file;  // the `file` attribute, when the producer wrote one
  int line = 0;      // the `line` attribute as written (pytest's xunit1 counts from 0), 0 when none
  double time = 0;   // seconds
  Outcome outcome = Outcome::kPassed;
  std::string message;  // message attribute of the failure/error/skipped element
  std::string text;     // its text (traceback), as written
  bool flaky = false;   // passed after failed attempts (Surefire flakyFailure/flakyError)
};

struct Totals {
  std::size_t tests = 0;
  std::size_t failures = 0;
  std::size_t errors = 0;
  std::size_t skipped = 0;  // skipped + not run
  double time = 0;          // the root's, as write() without a wall time writes it
};

// A problem with one input: "unit-3.xml:12:5: unexpected end of file". Never fatal for the merge.
struct InputProblem {
  std::filesystem::path file;
  std::string message;  // already names file and line:column
};

// Reads the testcases of one file (any producer; nested suites walked). A testcase without a name is no
// result and is left out (pytest writes one for the test a Ctrl-C interrupted). Throws UsageError naming the
// file, line and column for malformed, empty, truncated, hostile (DOCTYPE) or wrong-root XML.
std::vector<TestCaseRecord> read_testcases(const std::filesystem::path& path);

class JUnitMerger {
 public:
  JUnitMerger();
  ~JUnitMerger();
  JUnitMerger(const JUnitMerger&) = delete;
  JUnitMerger& operator=(const JUnitMerger&) = delete;

  // Adds every suite and testcase of a file, kept as written (failure text, system-out, properties,
  // rerun/flaky elements), but for testcases without a name, which are no results (read_testcases). A
  // malformed file is recorded as a problem and skipped. Returns false then.
  bool add_file(const std::filesystem::path& path);
  // add_file for each of `paths`, in order, on two threads: what comes out is the same. Whether each was
  // added.
  std::vector<bool> add_files(const std::vector<std::filesystem::path>& paths);

  // Adds a testcase that no input reported (its group crashed, was killed or timed out): written as an
  // <error> (or the outcome given) in the suite named `suite`.
  void add_testcase(const std::string& suite, const TestCaseRecord& record);

  // Writes one <testsuites> whose suites of the same name (at the same nesting level) are merged, with
  // every count recomputed from testcases at every level. Times are wall-clock times at every level. A
  // merged suite's parts (its namesakes in the inputs, each added testcase) are the groups of one suite,
  // which ran side by side: its `timestamp` is the earliest part's, and its time runs from there to the
  // latest part's end (timestamp + time, the part's own suite time, which counts collection and setup that
  // no testcase carries); a part without a timestamp started with the others, so the suite took at least
  // as long as its longest part. `wall_time` (seconds), when given, is the root's time (a run's: discovery
  // to merge, so it holds every suite's); otherwise the root's time runs from the earliest top-level
  // suite's start to the latest one's end, or, when some top-level suite has no timestamp, is their times
  // added up (different suites, as one runner runs them: one after the other). Throws InfrastructureError
  // when it cannot write.
  void write(const std::filesystem::path& out, std::optional<double> wall_time = std::nullopt) const;

  const std::vector<InputProblem>& problems() const;
  // Every testcase in the merged result, in output order.
  std::vector<TestCaseRecord> testcases() const;
  Totals totals() const;
  // (classname, name) pairs that came from two or more different input files: the plan ran them twice.
  std::vector<std::pair<std::string, std::string>> duplicates() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace testfleet::reports
