// The run as a fleet of workers. A worker is one isolated environment (its native servers, its compose
// project) and the runner processes started in it, one at a time: a long-lived runner fed test by test
// through the worker channel (pytest), or one process per batch (any other runner). The fleet provisions
// every environment at once and starts each worker the moment its own is ready; workers collect in
// parallel, and the first complete collection is the reference that the plan is made from (every later
// collection must equal it). The Scheduler decides what each worker is sent; this loop does the rest:
// spawning, reading events, restarting a runner that died, retiring a worker whose environment failed,
// timeouts, stop signals and the status area.
//
// Nothing is lost: a test a runner was running when it died is reported as the crash's victim, the tests
// it held go back to the queue, and a test that no worker could run gets the reason as its result.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "environments/environment.hpp"
#include "execution/scheduler.hpp"
#include "execution/worker_channel.hpp"
#include "ui/status_printer.hpp"
#include "util/subprocess.hpp"

namespace testfleet::execution {

// One runner process to start in a worker's environment.
struct Launch {
  std::vector<std::string> argv;  // as spawned on this machine (wrapped for a container)
  util::EnvVars env;              // its whole environment
  std::filesystem::path cwd;
  std::filesystem::path log;  // its stderr (stream) or its output (batch), appended
  bool in_container = false;  // exit 128+N means signal N inside it
  // Where files the runner sends back through the channel (its JUnit, from a container) are written.
  std::filesystem::path returned_files_dir;
};

// The plan as the fleet runs it: tests by index, each worker's initial queue.
struct Assignment {
  std::vector<std::string> ids;
  std::vector<double> estimates;
  std::vector<std::vector<std::size_t>> queues;  // per worker, in the order to run
};

// What a batch reported, by test ID.
struct BatchReport {
  std::string outcome;  // passed, failed, error, skipped
  double seconds = 0;
};

// What the fleet needs from the test runner; cli implements it over runners::Runner.
class FleetRunner {
 public:
  virtual ~FleetRunner() = default;
  // A long-lived runner fed through the channel, or one process per batch.
  virtual bool streams() const = 0;
  // Batch runners only: the test IDs, listed once (while the environments are being provisioned).
  virtual std::vector<std::string> list() = 0;
  // The reference collection is in: the plan. Throws to abort the run.
  virtual Assignment plan(std::vector<std::string> collected) = 0;
  // Worker w's runner number n (1-based), in its provisioned environment.
  virtual Launch runner(std::size_t w, int n, const environments::Environment& environment) = 0;
  // Worker w's batch number n.
  virtual Launch batch(std::size_t w, int n, const std::vector<std::string>& ids,
                       const environments::Environment& environment) = 0;
  // After batch n of worker w ended: what it reported.
  virtual std::map<std::string, BatchReport> batch_results(std::size_t w, int n,
                                                           const std::vector<std::string>& ids) = 0;
};

struct FleetOptions {
  Schedule schedule = Schedule::kDynamic;
  int max_restarts = 3;                              // runner restarts for the whole run
  std::optional<std::chrono::milliseconds> timeout;  // per worker, from its first runner's start
  std::chrono::milliseconds kill_grace{10000};       // after INT/TERM, before KILL
  std::filesystem::path reports_dir;                 // group-N/progress.jsonl is written under it
};

// What became of one test.
struct TestRecord {
  std::optional<std::size_t> worker;  // where it ran last (0-based)
  int run = 0;                        // which runner (or batch) of that worker
  bool reported = false;              // its runner reported it (the result is the runner's)
  std::string outcome;                // as reported
  std::string message;
  std::string teardown_error;  // after a failed call: pytest's JUnit has a second testcase for it
  double seconds = 0;
  double started = 0;  // seconds since the epoch; 0 when unknown
  double ended = 0;
  std::string cause;  // not reported: why, for the error the merged report holds instead
};

// One runner process of a worker.
struct RunnerRecord {
  int number = 0;                    // 1-based within the worker
  std::vector<std::string> command;  // as spawned, long words (a plugin's source) shortened: shown_argv()
  bool batch = false;
  std::vector<std::size_t> tests;  // sent to it
  std::optional<util::ExitStatus> status;
  std::optional<std::string> start_error;
  bool died = false;  // ended before it was told to, or by a signal
  bool timed_out = false;
  bool stopped = false;  // a stop signal was forwarded to it
  double started = 0;    // seconds since the epoch
  double ended = 0;
};

struct WorkerRecord {
  int index = 0;  // 1-based, as group-N
  double provision_started = 0;
  double provision_seconds = 0;
  std::optional<std::string> provision_error;
  std::optional<std::string> collection_error;  // collected other tests than the reference
  std::vector<RunnerRecord> runs;
  std::optional<std::string> lost;    // why it left the run before the end
  std::vector<std::string> problems;  // its environment's, found when a runner died
  std::size_t tests_run = 0;
};

struct FleetResult {
  std::optional<Assignment> assignment;  // none when no worker ever collected
  std::vector<TestRecord> tests;         // per Assignment::ids
  std::vector<WorkerRecord> workers;
  std::vector<Steal> steals;
  std::vector<CollectionSkip> collection_skips;  // the reference collection's, reported once
  int restarts = 0;
  // The runner could not collect (collection errors, or every runner died before collecting): its output.
  std::optional<std::string> collection_failure;
  double started = 0;  // seconds since the epoch
};

class Fleet {
 public:
  // One worker per environment; the environments stay the caller's (it tears them down after the merge).
  Fleet(std::vector<environments::Environment*> environments, FleetRunner& runner, FleetOptions options,
        ui::StatusPrinter& printer);
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // Runs the whole suite to its end. `stop` is the signal watcher's flag, `stop_signal` which signal came.
  FleetResult run(const std::atomic<bool>& stop, const std::function<int()>& stop_signal);

  // The status area as last drawn, and seconds since run() started (the merge phase redraws it).
  const std::vector<ui::GroupView>& views() const { return views_; }

 private:
  struct Worker;
  class Loop;

  std::vector<environments::Environment*> environments_;
  FleetRunner& runner_;
  FleetOptions options_;
  ui::StatusPrinter& printer_;
  std::vector<ui::GroupView> views_;
};

// Whether a runner ended as it should: told to, with success (or pytest's "no tests collected" when it was
// sent none).
bool ended_well(const RunnerRecord& run);

// A command as it is shown (FAILED blocks, run.json): a word of more than 400 bytes (the plugin's source,
// which travels as a variable into a container) as its start and its size.
std::vector<std::string> shown_argv(std::vector<std::string> argv);

// Whether a runner was killed by a signal: on the host, or inside its container, whence
// `docker compose run` returns the signal as the exit code 128+N.
bool ended_by_signal(const util::ExitStatus& status, bool in_container);
// How it ended, in words: "exit 1", "killed by SIGSEGV", "exit 139: SIGSEGV in its container".
std::string describe_exit(const util::ExitStatus& status, bool in_container);

}  // namespace testfleet::execution
