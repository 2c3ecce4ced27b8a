// What testfleet needs to know about a test runner, and nothing more: how to list the tests, how to run a
// given group of them writing JUnit, and how to tell which of a group's tests were reported. The core
// (planning, execution, merging) never assumes pytest; pytest is one Runner, any command is another.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "reports/durations.hpp"
#include "reports/junit.hpp"
#include "util/subprocess.hpp"

namespace testfleet::runners {

// Where one command's files are, on the host and as the command sees them inside its environment.
struct CommandPaths {
  std::filesystem::path host_dir;            // a directory of this command's own under the reports directory
  std::filesystem::path inside_dir;          // the same directory as the command sees it
  std::filesystem::path support_inside_dir;  // testfleet's support files (plugins), as the command sees them
  // Whether the command sees this machine's files (native, host). When it does not (compose, whose engine
  // may be another machine's), support files and reports travel through the command's own streams.
  bool shared_files = true;
};

struct Command {
  std::vector<std::string> argv;
  util::EnvVars variables;  // on top of the run's environment
  // Its standard output is data (one test ID per line): diagnostics on stderr must not mix into it.
  bool output_is_data = false;
};

// One group to run: its number, how many there are, its tests' IDs in collection order.
struct GroupRequest {
  int index = 0;
  int count = 0;
  std::string run_id;
  std::vector<std::string> test_ids;
  CommandPaths paths;
};

// What a group's files say once it has ended.
struct GroupReport {
  // Tests the group reported, with the outcome and seconds it reported.
  std::map<std::string, reports::TestCaseRecord> finished;
  std::optional<std::string> running;      // the test it was running when it ended, when known
  std::vector<std::string> not_collected;  // planned, but the group's runner did not find them
};

class Runner {
 public:
  virtual ~Runner() = default;
  virtual std::string name() const = 0;

  // The command that lists the tests; it may write into `paths.host_dir` through its inside path.
  virtual Command collect_command(const CommandPaths& paths) const = 0;
  // The test IDs in collection order, from the command's result and files. Throws Error (with the
  // command's output) when collection failed.
  virtual std::vector<std::string> read_collection(const util::CommandResult& result,
                                                   const CommandPaths& paths) const = 0;

  // Files the runner's commands need (a plugin), written once per run into a directory that every
  // command sees as CommandPaths::support_inside_dir.
  virtual void install_support(const std::filesystem::path& host_dir) const = 0;

  // How a worker drives the runner: one long-lived process fed test by test through the worker channel
  // (pytest, with testfleet's plugin), or the test command once per batch with the batch's tests in it.
  virtual bool streams() const = 0;

  // Writes what a batch's command reads (its list of tests) into its host directory; nothing for a
  // streaming runner.
  virtual void write_group_files(const GroupRequest& group) const = 0;
  // A streaming runner: the worker's long-lived command (`group.test_ids` is empty; the tests come through
  // the channel). A batch runner: the command for the batch's tests.
  virtual Command group_command(const GroupRequest& group) const = 0;
  // The JUnit file the command writes, on the host.
  virtual std::filesystem::path group_junit(const GroupRequest& group) const = 0;

  // A batch runner: which of the batch's tests its files report, once it has ended. A streaming runner
  // reports through the channel instead.
  virtual GroupReport read_group(const GroupRequest& group) const {
    (void)group;
    return {};
  }

  // The JUnit (classname, name) a test would be reported under, for durations from JUnit files and for
  // synthesizing the testcase of a test its group never reported.
  virtual reports::JUnitKey junit_key(const std::string& id) const = 0;
  virtual std::string junit_suite_name() const = 0;

  // The user's merged JUnit path, when the test command named one (e.g. --junit-xml=X).
  virtual std::optional<std::filesystem::path> requested_junit() const = 0;
};

}  // namespace testfleet::runners
