// Running every group's command at once and watching them: each a child in its own process group, its
// output going straight to a log file (so no group can stall on a full pipe while another is read), polled
// for exit, timeout and progress. A stop signal is forwarded to every group, which gets a grace period to
// write its reports before it is killed; every child is reaped before run() returns.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ui/status_printer.hpp"
#include "util/subprocess.hpp"

namespace testfleet::execution {

struct GroupJob {
  int index = 0;
  std::vector<std::string> argv;
  util::EnvVars env;  // the whole environment of the child
  std::filesystem::path cwd;
  std::filesystem::path log_file;
  std::size_t planned_tests = 0;
  // The command is a container client (`docker compose run`): exit 128+N means signal N inside it.
  bool in_container = false;
  double estimate_seconds = 0;
  // Tests the group has finished so far, when its runner can tell while it runs.
  std::function<std::optional<std::size_t>()> finished_tests;
};

struct GroupOutcome {
  util::ExitStatus status;
  std::optional<std::string> start_error;  // it could not be started at all
  bool timed_out = false;
  bool stopped = false;  // ended by a stop signal forwarded to it
  double started = 0;    // seconds since the supervisor started
  double ended = 0;
};

struct SupervisorOptions {
  std::optional<std::chrono::milliseconds> timeout;  // per group
  std::chrono::milliseconds kill_grace{10000};       // after TERM/INT, before KILL
};

class Supervisor {
 public:
  Supervisor(ui::StatusPrinter& printer, SupervisorOptions options) : printer_(printer), options_(options) {}

  // Runs every job to its end. `stop` is the watcher's flag and `stop_signal` tells which signal to forward.
  // The status area stays drawn with every group's final state: what follows (merging) redraws or clears it.
  std::vector<GroupOutcome> run(const std::vector<GroupJob>& jobs, const std::atomic<bool>& stop,
                                const std::function<int()>& stop_signal);

  // The groups as the status area last showed them, and the seconds since run() started.
  const std::vector<ui::GroupView>& views() const { return views_; }
  double elapsed() const;

 private:
  void report_end(const GroupJob& job, const GroupOutcome& outcome);

  ui::StatusPrinter& printer_;
  SupervisorOptions options_;
  std::vector<ui::GroupView> views_;
  std::chrono::steady_clock::time_point started_{};
};

// Whether a group's process was killed by a signal: on the host, or inside its container, whence
// `docker compose run` returns the signal as the exit code 128+N.
bool ended_by_signal(const util::ExitStatus& status, bool in_container);
// How it ended, in words: "exit 1", "killed by SIGSEGV", "exit 139: SIGSEGV in its container".
std::string describe_exit(const util::ExitStatus& status, bool in_container);

// The ninja-style block printed after a failed group: `FAILED: group 3 [exit 1]`, the command, its output.
std::string failure_block(const GroupJob& job, const GroupOutcome& outcome, const ui::StatusPrinter& printer);

}  // namespace testfleet::execution
