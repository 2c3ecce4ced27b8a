#include "execution/fleet.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "execution/worker_channel.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/secrets.hpp"
#include "util/signals.hpp"
#include "util/strings.hpp"

namespace testfleet::execution {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxPrintedLines = 400;
constexpr auto kRedrawInterval = std::chrono::milliseconds(250);
constexpr int kPollMilliseconds = 50;
constexpr std::size_t kStreamLookahead = 2;

double epoch_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The log's text from `offset` on, its last lines only.
std::string log_since(const std::filesystem::path& log, std::uintmax_t offset) {
  std::string text;
  try {
    text = util::read_file(log);
  } catch (const std::exception& e) {
    return e.what();
  }
  if (offset < text.size()) text.erase(0, offset);
  std::string tail = util::tail_lines(text, kMaxPrintedLines);
  if (tail.size() < text.size()) {
    tail = fmt::format("[... earlier output cut; the whole log is {}]\n", log.string()) + tail;
  }
  return tail;
}

std::uintmax_t size_of(const std::filesystem::path& path) {
  std::error_code error;
  std::uintmax_t size = std::filesystem::file_size(path, error);
  return error ? 0 : size;
}

// How a Launch is spawned: its output (or, for a channel, its stderr) appended to its log.
util::SpawnSpec spawn_spec(const Launch& launch, util::OutputMode output) {
  util::SpawnSpec spec;
  spec.argv = launch.argv;
  spec.env = launch.env;
  spec.cwd = launch.cwd;
  spec.output = output;
  spec.output_file = launch.log;
  return spec;
}

// "a, b, c and 4 more"
std::string some_of(const std::vector<std::string>& names) {
  constexpr std::size_t kShown = 5;
  std::vector<std::string> shown(names.begin(),
                                 names.begin() + static_cast<std::ptrdiff_t>(std::min(names.size(), kShown)));
  std::string text = util::join(shown, ", ");
  if (names.size() > kShown) text += fmt::format(" and {} more", names.size() - kShown);
  return text;
}

}  // namespace

bool ended_well(const RunnerRecord& run) {
  if (!run.status || run.died || run.timed_out || run.stopped || run.start_error) return false;
  // pytest's 5, "no tests collected", is how a runner that was sent nothing ends (-k deselected everything).
  return run.status->success() || (run.status->signal == 0 && run.status->code == 5 && run.tests.empty());
}

std::vector<std::string> shown_argv(std::vector<std::string> argv) {
  for (std::string& word : argv) {
    if (word.size() > 400) word = fmt::format("{}...({} bytes)", word.substr(0, 40), word.size());
  }
  return argv;
}

bool ended_by_signal(const util::ExitStatus& status, bool in_container) {
  return status.signal != 0 || (in_container && status.code > 128 && status.code < 160);
}

std::string describe_exit(const util::ExitStatus& status, bool in_container) {
  if (status.signal == 0 && ended_by_signal(status, in_container)) {
    const char* name = sigabbrev_np(status.code - 128);
    return fmt::format("exit {}: SIG{} in its container", status.code, name != nullptr ? name : "?");
  }
  return status.describe();
}

// One worker: its environment (owned by the Fleet), the thread provisioning it, and its current runner.
struct Fleet::Worker {
  enum class State { kProvisioning, kReady, kStarting, kRunning, kDone, kLost };

  std::size_t slot = 0;
  int index = 0;
  environments::Environment* environment = nullptr;
  State state = State::kProvisioning;

  std::thread provisioner;
  std::atomic<bool> provisioned{false};
  std::optional<std::string> provision_error;  // written by the provisioner before `provisioned`

  util::Process process;
  Launch launch;
  ChannelReader reader;
  std::uintmax_t log_offset = 0;  // where the current runner's output starts in the log
  Clock::time_point runner_started;
  std::optional<std::size_t> running;  // the test its runner has started
  Clock::time_point running_since;
  bool collected = false;  // the current runner's collection is in and matches
  bool drain_sent = false;
  bool shutdown_sent = false;
  bool signalled = false;
  Clock::time_point signalled_at;
  std::vector<std::string> batch_ids;
  std::vector<std::size_t> batch_tests;

  std::ofstream progress;         // group-N/progress.jsonl, the events as they came
  std::string provisioning_said;  // the provisioning state last printed as a plain line
  Clock::time_point provisioning_said_at;
  WorkerRecord record;

  ~Worker() {
    if (provisioner.joinable()) provisioner.join();
  }
};

class Fleet::Loop {
 public:
  Loop(Fleet& fleet, const std::atomic<bool>& stop, const std::function<int()>& stop_signal)
      : fleet_(fleet), stop_(stop), stop_signal_(stop_signal), started_(Clock::now()) {}

  ~Loop() {
    // On every way out (an exception from the runner's plan included) nothing is left running.
    cancel_ = true;
    for (std::unique_ptr<Worker>& worker : workers_) {
      if (worker->process.running()) {
        worker->process.signal(SIGKILL);
        worker->process.wait();
      }
      if (worker->provisioner.joinable()) worker->provisioner.join();
    }
  }

  FleetResult run();

 private:
  double now() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }
  void print_block(const std::string& text) { fleet_.printer_.block(text); }
  // A worker's output may hold its servers' secrets (a test that printed DATABASE_URL): masked.
  void print_block(const Worker& worker, const std::string& text) {
    fleet_.printer_.block(util::redact(text, worker.environment->secrets()));
  }
  void print(const std::string& text) { fleet_.printer_.line(text); }
  std::string red(const std::string& text) const { return fleet_.printer_.red(text); }

  void start_provisioning();
  void check_provisioned(Worker& worker);
  void make_plan(std::vector<std::string> collected);
  void start_runner(Worker& worker);
  void start_batch(Worker& worker);
  void read_channel(Worker& worker);
  void handle(Worker& worker, WorkerEvent& event);
  void on_collected(Worker& worker, WorkerEvent& event);
  void check_ended(Worker& worker);
  void runner_ended(Worker& worker, const util::ExitStatus& status);
  void batch_ended(Worker& worker, const util::ExitStatus& status);
  void lose(Worker& worker, const std::string& why);
  // After a runner died: whether its environment failed too (a server or sidecar gone), which takes the
  // worker out of the run.
  bool lost_its_environment(Worker& worker);
  void feed(Worker& worker);
  void send(Worker& worker, const std::string& order);
  void check_timeout(Worker& worker);
  void handle_stop();
  void finish_test(Worker& worker, std::size_t t, const WorkerEvent* event, std::string cause);
  void redraw(bool force);
  void show_provisioning(Worker& worker);
  bool all_done() const;
  void give_up_unfinished();
  std::string failure_header(const Worker& worker, const std::string& how) const;

  Fleet& fleet_;
  const std::atomic<bool>& stop_;
  const std::function<int()>& stop_signal_;
  Clock::time_point started_;
  Clock::time_point last_redraw_{};
  std::atomic<bool> cancel_{false};
  bool stopping_ = false;
  bool suite_done_early_ = false;  // every test finished while environments were still provisioned
  int stop_sig_ = 0;
  Clock::time_point stopped_at_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unordered_map<std::string, std::size_t> index_of_;
  std::vector<std::string> reference_;  // the reference collection, sorted
  FleetResult result_;
};

void Fleet::Loop::start_provisioning() {
  for (std::size_t w = 0; w < fleet_.environments_.size(); ++w) {
    auto worker = std::make_unique<Worker>();
    worker->slot = w;
    worker->index = static_cast<int>(w) + 1;
    worker->environment = fleet_.environments_[w];
    worker->record.index = worker->index;
    worker->record.provision_started = epoch_now();
    std::filesystem::path dir = fleet_.options_.reports_dir / fmt::format("group-{}", worker->index);
    std::filesystem::create_directories(dir);
    worker->progress.open(dir / "progress.jsonl", std::ios::app);
    workers_.push_back(std::move(worker));
  }
  fleet_.views_.assign(workers_.size(), ui::GroupView{});
  for (std::unique_ptr<Worker>& worker : workers_) {
    fleet_.views_[worker->slot].index = worker->index;
    fleet_.views_[worker->slot].state = ui::GroupState::kProvisioning;
    Worker* raw = worker.get();
    raw->provisioner = std::thread([this, raw] {
      try {
        raw->environment->provision(cancel_);
      } catch (const std::exception& e) {
        raw->provision_error = e.what();
      }
      raw->provisioned = true;
    });
  }
}

void Fleet::Loop::check_provisioned(Worker& worker) {
  if (worker.state != Worker::State::kProvisioning || !worker.provisioned.load()) return;
  worker.provisioner.join();
  worker.record.provision_seconds = epoch_now() - worker.record.provision_started;
  if (suite_done_early_) {
    // The others ran the whole suite before this environment was ready: it was cancelled, not failed.
    print(fmt::format(
        "worker {}: not needed, the other workers ran the whole suite before its environment was "
        "ready{}",
        worker.index, worker.provisioning_said.empty() ? "" : " (" + worker.provisioning_said + ")"));
    worker.state = Worker::State::kDone;
    fleet_.views_[worker.slot].state = ui::GroupState::kPassed;
    fleet_.views_[worker.slot].detail = "not needed";
    return;
  }
  if (worker.provision_error) {
    std::string error = stopping_ ? std::string("interrupted while provisioning") : *worker.provision_error;
    worker.record.provision_error = error;
    if (!stopping_) {
      print_block(fmt::format("{} worker {}: its environment could not be provisioned:\n{}", red("FAILED:"),
                              worker.index, error));
    }
    lose(worker, "its environment could not be provisioned: " + util::split_lines(error).front());
    return;
  }
  print(fmt::format("worker {} ready in {:.2f}s: {}", worker.index, worker.record.provision_seconds,
                    worker.environment->describe()));
  worker.state = Worker::State::kReady;
  if (stopping_) {
    worker.state = Worker::State::kDone;
    return;
  }
  if (fleet_.runner_.streams()) start_runner(worker);
}

void Fleet::Loop::make_plan(std::vector<std::string> collected) {
  reference_ = collected;
  std::sort(reference_.begin(), reference_.end());
  Assignment assignment = fleet_.runner_.plan(std::move(collected));
  assignment.queues.resize(workers_.size());
  index_of_.reserve(assignment.ids.size());
  for (std::size_t t = 0; t < assignment.ids.size(); ++t) index_of_.emplace(assignment.ids[t], t);
  result_.tests.assign(assignment.ids.size(), TestRecord{});
  scheduler_ = std::make_unique<Scheduler>(assignment.estimates, assignment.queues, fleet_.options_.schedule,
                                           fleet_.runner_.streams() ? kStreamLookahead : 1);
  for (const std::unique_ptr<Worker>& worker : workers_) {
    if (worker->state == Worker::State::kLost) scheduler_->worker_lost(worker->slot);
  }
  result_.assignment = std::move(assignment);
}

void Fleet::Loop::start_runner(Worker& worker) {
  int number = static_cast<int>(worker.record.runs.size()) + 1;
  RunnerRecord run;
  run.number = number;
  run.started = epoch_now();
  worker.launch = fleet_.runner_.runner(worker.slot, number, *worker.environment);
  run.command = shown_argv(worker.launch.argv);
  worker.log_offset = size_of(worker.launch.log);
  worker.reader = ChannelReader();
  worker.running.reset();
  worker.collected = false;
  worker.drain_sent = worker.shutdown_sent = worker.signalled = false;
  util::SpawnSpec spec = spawn_spec(worker.launch, util::OutputMode::kPipeStdoutLogStderr);
  spec.input_pipe = true;
  try {
    worker.process = util::Process::spawn(spec);
  } catch (const std::exception& e) {
    run.start_error = e.what();
    run.ended = run.started;
    worker.record.runs.push_back(std::move(run));
    print_block(fmt::format("{} worker {} could not start its runner:\n{}\n{}", red("FAILED:"), worker.index,
                            util::shell_join(shown_argv(spec.argv)), e.what()));
    lose(worker, "its runner could not be started: " + std::string(e.what()));
    return;
  }
  ::fcntl(worker.process.output_fd(), F_SETFL, ::fcntl(worker.process.output_fd(), F_GETFL) | O_NONBLOCK);
  worker.runner_started = Clock::now();
  worker.record.runs.push_back(std::move(run));
  worker.state = Worker::State::kStarting;
  fleet_.views_[worker.slot].state = ui::GroupState::kRunning;
  fleet_.views_[worker.slot].detail = "collecting";
}

void Fleet::Loop::start_batch(Worker& worker) {
  double live = 0;
  double left = 0;
  for (const std::unique_ptr<Worker>& other : workers_) {
    if (!scheduler_->alive(other->slot)) continue;
    live += 1;
    left += scheduler_->estimated_left(other->slot);
  }
  // Guided self-scheduling: a quarter of a worker's share of what is left, so the batches shrink towards
  // the end and the tail stays short.
  double target = live > 0 ? left / (4 * live) : 0;
  Order order = scheduler_->next_batch(worker.slot, now(), target);
  if (order.run.empty()) {
    if (order.shutdown) {
      worker.state = Worker::State::kDone;
      fleet_.views_[worker.slot].state = ui::GroupState::kPassed;
      fleet_.views_[worker.slot].detail.clear();
    }
    return;
  }
  int number = static_cast<int>(worker.record.runs.size()) + 1;
  RunnerRecord run;
  run.number = number;
  run.batch = true;
  run.started = epoch_now();
  run.tests = order.run;
  worker.batch_tests = order.run;
  worker.batch_ids.clear();
  for (std::size_t t : order.run) worker.batch_ids.push_back(result_.assignment->ids[t]);
  worker.launch = fleet_.runner_.batch(worker.slot, number, worker.batch_ids, *worker.environment);
  run.command = shown_argv(worker.launch.argv);
  worker.log_offset = size_of(worker.launch.log);
  worker.signalled = false;
  util::SpawnSpec spec = spawn_spec(worker.launch, util::OutputMode::kFile);
  for (std::size_t t : order.run) {
    result_.tests[t].worker = worker.slot;
    result_.tests[t].run = number;
    result_.tests[t].started = run.started;
  }
  try {
    worker.process = util::Process::spawn(spec);
  } catch (const std::exception& e) {
    run.start_error = e.what();
    run.ended = run.started;
    worker.record.runs.push_back(std::move(run));
    for (std::size_t t : order.run) {
      finish_test(worker, t, nullptr,
                  fmt::format("not run: worker {} could not start its batch: {}", worker.index, e.what()));
    }
    print_block(fmt::format("{} worker {} could not start a batch:\n{}\n{}", red("FAILED:"), worker.index,
                            util::shell_join(shown_argv(spec.argv)), e.what()));
    lose(worker, "its batch could not be started: " + std::string(e.what()));
    return;
  }
  worker.runner_started = Clock::now();
  worker.record.runs.push_back(std::move(run));
  worker.state = Worker::State::kRunning;
  fleet_.views_[worker.slot].state = ui::GroupState::kRunning;
  fleet_.views_[worker.slot].detail = fmt::format("batch {}: {} tests", number, order.run.size());
}

void Fleet::Loop::read_channel(Worker& worker) {
  int fd = worker.process.output_fd();
  if (fd < 0) return;
  char buffer[65536];
  std::string other;
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    std::vector<WorkerEvent> events =
        worker.reader.feed(std::string_view(buffer, static_cast<std::size_t>(n)), &other);
    for (WorkerEvent& event : events) handle(worker, event);
  }
  if (!other.empty()) {
    // What the runner wrote to stdout before its plugin took it over belongs in its log.
    std::ofstream log(worker.launch.log, std::ios::app);
    log << other;
  }
}

void Fleet::Loop::finish_test(Worker& worker, std::size_t t, const WorkerEvent* event, std::string cause) {
  TestRecord& test = result_.tests[t];
  test.worker = worker.slot;
  test.run = static_cast<int>(worker.record.runs.size());
  test.ended = epoch_now();
  if (event != nullptr) {
    test.reported = true;
    test.outcome = event->outcome;
    test.message = event->message;
    test.teardown_error = event->teardown_error;
    test.seconds = event->seconds;
    test.cause.clear();
    if (event->time > 0) test.ended = event->time;
  } else {
    test.reported = false;
    test.cause = std::move(cause);
  }
  ++worker.record.tests_run;
  ++fleet_.views_[worker.slot].done;
}

void Fleet::Loop::handle(Worker& worker, WorkerEvent& event) {
  bool progress = event.kind != WorkerEvent::Kind::kCollected && event.kind != WorkerEvent::Kind::kFile;
  if (progress && worker.progress) worker.progress << event.json << '\n';
  switch (event.kind) {
    case WorkerEvent::Kind::kFile:
      if (!worker.launch.returned_files_dir.empty()) {
        try {
          util::write_file_atomic(worker.launch.returned_files_dir / event.file, event.data);
        } catch (const std::exception& e) {
          // Its results still came through the channel; the reports directory failing is the machine's.
          std::string problem = fmt::format("cannot write the {} its runner sent: {}", event.file, e.what());
          print_block(fmt::format("{} worker {}: {}", red("FAILED:"), worker.index, problem));
          worker.record.problems.push_back(problem);
        }
      }
      return;
    case WorkerEvent::Kind::kCollected:
      on_collected(worker, event);
      return;
    case WorkerEvent::Kind::kStart: {
      auto it = index_of_.find(event.id);
      if (it == index_of_.end()) return;
      worker.running = it->second;
      worker.running_since = Clock::now();
      result_.tests[it->second].worker = worker.slot;
      result_.tests[it->second].run = static_cast<int>(worker.record.runs.size());
      result_.tests[it->second].started = event.time > 0 ? event.time : epoch_now();
      fleet_.views_[worker.slot].detail = event.id;
      return;
    }
    case WorkerEvent::Kind::kTest:
    case WorkerEvent::Kind::kMissing: {
      auto it = index_of_.find(event.id);
      if (it == index_of_.end() || !scheduler_) return;
      std::size_t t = it->second;
      if (worker.running == t) worker.running.reset();
      if (!scheduler_->finished(worker.slot, t)) return;  // a late event of a test given up
      if (event.kind == WorkerEvent::Kind::kTest) {
        finish_test(worker, t, &event, "");
      } else {
        finish_test(worker, t, nullptr,
                    fmt::format("not run: worker {}'s runner did not collect this test", worker.index));
      }
      if (worker.progress) worker.progress.flush();
      return;
    }
    case WorkerEvent::Kind::kFinish:
      return;
  }
}

void Fleet::Loop::on_collected(Worker& worker, WorkerEvent& event) {
  double seconds = std::chrono::duration<double>(Clock::now() - worker.runner_started).count();
  if (event.collection_errors > 0) {
    // The suite does not collect: nothing can run anywhere. The runner ends by itself (pytest's
    // "Interrupted: N errors during collection"); its output says why.
    if (!result_.collection_failure) {
      worker.process.close_input();
      worker.shutdown_sent = true;
      Clock::time_point deadline = Clock::now() + fleet_.options_.kill_grace;
      while (!worker.process.try_wait() && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      result_.collection_failure =
          fmt::format("{} error{} during collection (worker {}, {}):\n{}", event.collection_errors,
                      event.collection_errors == 1 ? "" : "s", worker.index,
                      util::shell_join(worker.launch.argv), log_since(worker.launch.log, worker.log_offset));
    }
    cancel_ = true;
    stopping_ = true;
    stopped_at_ = Clock::now();
    return;
  }
  if (!scheduler_) {
    print(fmt::format("worker {} collected {} tests in {:.1f}s", worker.index, event.ids.size(), seconds));
    result_.collection_skips = std::move(event.skips);
    make_plan(std::move(event.ids));
  } else {
    std::vector<std::string> mine = std::move(event.ids);
    std::sort(mine.begin(), mine.end());
    if (mine != reference_) {
      std::vector<std::string> missing, extra;
      std::set_difference(reference_.begin(), reference_.end(), mine.begin(), mine.end(),
                          std::back_inserter(missing));
      std::set_difference(mine.begin(), mine.end(), reference_.begin(), reference_.end(),
                          std::back_inserter(extra));
      std::string what =
          fmt::format("worker {} collected other tests than the first collection", worker.index);
      if (!missing.empty()) what += fmt::format("; missing: {}", some_of(missing));
      if (!extra.empty()) what += fmt::format("; extra: {}", some_of(extra));
      if (missing.empty() && extra.empty()) what += "; the same IDs, some of them twice";
      worker.record.collection_error = what;
      print_block(fmt::format("{} {}", red("FAILED:"), what));
      worker.process.signal(SIGKILL);
      lose(worker, what);
      return;
    }
  }
  worker.collected = true;
  worker.state = Worker::State::kRunning;
  fleet_.views_[worker.slot].detail.clear();
}

void Fleet::Loop::send(Worker& worker, const std::string& order) {
  int fd = worker.process.input_fd();
  if (fd < 0) return;
  std::size_t written = 0;
  while (written < order.size()) {
    ssize_t n = ::write(fd, order.data() + written, order.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the runner is gone: its end is handled when it is reaped
    written += static_cast<std::size_t>(n);
  }
}

void Fleet::Loop::feed(Worker& worker) {
  if (!scheduler_ || stopping_) return;
  if (!fleet_.runner_.streams()) {
    if ((worker.state == Worker::State::kReady || worker.state == Worker::State::kRunning) &&
        !worker.process.running()) {
      start_batch(worker);
    }
    return;
  }
  if (worker.state != Worker::State::kRunning || !worker.collected || worker.shutdown_sent) return;
  if (!worker.process.running()) return;
  if (scheduler_->in_flight(worker.slot) >= kStreamLookahead) return;
  Order order = scheduler_->next(worker.slot, now());
  if (!order.run.empty()) {
    std::vector<std::string> ids;
    for (std::size_t t : order.run) {
      ids.push_back(result_.assignment->ids[t]);
      worker.record.runs.back().tests.push_back(t);
    }
    send(worker, run_order(ids));
    worker.drain_sent = false;
  }
  if (order.shutdown) {
    send(worker, shutdown_order());
    worker.process.close_input();
    worker.shutdown_sent = true;
  } else if (order.drain && !worker.drain_sent) {
    send(worker, drain_order());
    worker.drain_sent = true;
  }
}

void Fleet::Loop::check_timeout(Worker& worker) {
  const std::optional<std::chrono::milliseconds>& timeout = fleet_.options_.timeout;
  if (!worker.process.running()) return;
  RunnerRecord& run = worker.record.runs.back();
  // What the limit applies to: the test running now, a collection, or a whole batch. A runner waiting for
  // orders is not running anything.
  std::optional<Clock::duration> busy;
  if (run.batch || !worker.collected) {
    busy = Clock::now() - worker.runner_started;
  } else if (worker.running) {
    busy = Clock::now() - worker.running_since;
  }
  if (timeout && busy && !run.timed_out && !stopping_ && *busy > *timeout) {
    run.timed_out = true;
    print(fmt::format("worker {} timed out after {}: stopping it", worker.index,
                      util::format_duration(std::chrono::duration<double>(*busy).count())));
    // SIGINT, not SIGTERM: pytest turns it into KeyboardInterrupt and still writes its reports.
    worker.process.signal(SIGINT);
    worker.signalled = true;
    worker.signalled_at = Clock::now();
    fleet_.views_[worker.slot].detail = "timed out";
  }
  if (worker.signalled && Clock::now() - worker.signalled_at > fleet_.options_.kill_grace) {
    worker.process.signal(SIGKILL);
  }
}

void Fleet::Loop::handle_stop() {
  if (!stop_.load() || stop_sig_ != 0) return;
  stop_sig_ = stop_signal_();
  if (stop_sig_ == 0) stop_sig_ = SIGINT;
  stopping_ = true;
  cancel_ = true;
  stopped_at_ = Clock::now();
  print(fmt::format("testfleet: received {}, stopping every worker", util::signal_name(stop_sig_)));
  for (std::unique_ptr<Worker>& worker : workers_) {
    if (!worker->process.running()) continue;
    worker->record.runs.back().stopped = true;
    worker->process.signal(stop_sig_ == SIGHUP ? SIGTERM : stop_sig_);
  }
}

std::string Fleet::Loop::failure_header(const Worker& worker, const std::string& how) const {
  return fmt::format("{} worker {} [{}]\n{}\n", red("FAILED:"), worker.index, how,
                     util::shell_join(shown_argv(worker.launch.argv)));
}

void Fleet::Loop::lose(Worker& worker, const std::string& why) {
  worker.state = Worker::State::kLost;
  worker.record.lost = why;
  fleet_.views_[worker.slot].state = ui::GroupState::kFailed;
  fleet_.views_[worker.slot].detail = util::split_lines(why).front();
  if (scheduler_) {
    std::size_t moved = scheduler_->worker_lost(worker.slot);
    if (moved > 0 && !stopping_) {
      print(fmt::format("worker {} is out of the run ({}): its {} remaining tests go to the other workers",
                        worker.index, util::split_lines(why).front(), moved));
    }
  }
}

bool Fleet::Loop::lost_its_environment(Worker& worker) {
  worker.record.problems = worker.environment->problems();
  if (worker.record.problems.empty()) return false;
  for (const std::string& problem : worker.record.problems) {
    print_block(fmt::format("{} worker {}: {}", red("FAILED:"), worker.index, problem));
  }
  lose(worker, "its environment failed: " + util::split_lines(worker.record.problems.front()).front());
  return true;
}

void Fleet::Loop::runner_ended(Worker& worker, const util::ExitStatus& status) {
  read_channel(worker);
  // The leader is gone; anything it left in its process group goes with it.
  ::kill(-worker.process.pid(), SIGKILL);
  worker.process = util::Process();
  RunnerRecord& run = worker.record.runs.back();
  run.status = status;
  run.ended = epoch_now();
  bool in_container = worker.launch.in_container;
  std::string how = describe_exit(status, in_container);
  bool clean_end = worker.shutdown_sent && scheduler_ && scheduler_->in_flight(worker.slot) == 0 &&
                   !ended_by_signal(status, in_container) && !run.timed_out && !run.stopped;
  double seconds = std::chrono::duration<double>(Clock::now() - worker.runner_started).count();
  if (clean_end) {
    worker.state = Worker::State::kDone;
    bool passed = ended_well(run);
    fleet_.views_[worker.slot].state = passed ? ui::GroupState::kPassed : ui::GroupState::kFailed;
    fleet_.views_[worker.slot].detail = passed ? "" : how;
    if (passed) {
      print(fmt::format("worker {} {} in {} ({} tests)", worker.index, fleet_.printer_.green("passed"),
                        util::format_duration(seconds), worker.record.tests_run));
    } else {
      // Failed tests (exit 1) or a runner that failed by itself: its output follows, ninja-style.
      print_block(worker, failure_header(worker, how) + log_since(worker.launch.log, worker.log_offset));
    }
    return;
  }
  if (result_.collection_failure) {
    worker.state = Worker::State::kDone;
    return;
  }
  run.died = true;
  // The test it was running is the crash's victim; the rest of what it held goes back to the queue.
  std::optional<std::size_t> victim = worker.running;
  if (victim && scheduler_) {
    std::string cause;
    if (run.stopped) {
      cause = fmt::format("the run was interrupted ({}) while this test was running on worker {}",
                          util::signal_name(stop_sig_), worker.index);
    } else if (run.timed_out) {
      cause =
          fmt::format("timed out: worker {} was stopped after {} while running this test", worker.index,
                      util::format_duration(
                          std::chrono::duration<double>(worker.signalled_at - worker.running_since).count()));
    } else {
      cause = fmt::format("worker {} crashed ({}) while running this test", worker.index, how);
    }
    finish_test(worker, *victim, nullptr, cause);
  }
  if (scheduler_) scheduler_->runner_lost(worker.slot, victim);
  worker.running.reset();
  if (run.stopped || stopping_) {
    worker.state = Worker::State::kDone;
    fleet_.views_[worker.slot].state = ui::GroupState::kFailed;
    fleet_.views_[worker.slot].detail = "stopped";
    return;
  }
  std::string what = victim ? fmt::format("{} while running {}", how, result_.assignment->ids[*victim])
                            : (worker.collected ? how : how + " before it collected the tests");
  print_block(worker, failure_header(worker, run.timed_out ? "timed out, " + how : how) +
                          log_since(worker.launch.log, worker.log_offset));
  if (run.timed_out) {
    lose(worker, fmt::format("its runner timed out ({})", what));
    return;
  }
  if (!worker.collected && !ended_by_signal(status, in_container)) {
    // It failed by itself before it collected (a command not found, a bad option): starting it again would
    // fail the same way.
    std::string log = util::tail_lines(log_since(worker.launch.log, worker.log_offset), 30);
    lose(worker,
         fmt::format("its runner ended ({}) before it collected the tests; its output:\n{}", how, log));
    return;
  }
  // A server or sidecar that died takes the worker with it; a runner that died alone is restarted.
  if (lost_its_environment(worker)) return;
  if (result_.restarts >= fleet_.options_.max_restarts) {
    lose(worker,
         fmt::format("its runner died ({}) and the run's {} restarts (--max-worker-restarts) are used up",
                     what, fleet_.options_.max_restarts));
    return;
  }
  ++result_.restarts;
  print(fmt::format("worker {}: runner {} died ({}); starting runner {} in the same environment",
                    worker.index, run.number, what, run.number + 1));
  start_runner(worker);
}

void Fleet::Loop::batch_ended(Worker& worker, const util::ExitStatus& status) {
  ::kill(-worker.process.pid(), SIGKILL);
  worker.process = util::Process();
  RunnerRecord& run = worker.record.runs.back();
  run.status = status;
  run.ended = epoch_now();
  std::string how = describe_exit(status, worker.launch.in_container);
  std::map<std::string, BatchReport> reported =
      fleet_.runner_.batch_results(worker.slot, run.number, worker.batch_ids);
  bool crashed = ended_by_signal(status, worker.launch.in_container) || run.timed_out || run.stopped;
  for (std::size_t i = 0; i < worker.batch_tests.size(); ++i) {
    std::size_t t = worker.batch_tests[i];
    scheduler_->finished(worker.slot, t);
    auto it = reported.find(worker.batch_ids[i]);
    if (it != reported.end()) {
      WorkerEvent event;
      event.outcome = it->second.outcome;
      event.seconds = it->second.seconds;
      finish_test(worker, t, &event, "");
      if (worker.progress)
        worker.progress << test_event(worker.batch_ids[i], event.outcome, event.seconds) << '\n';
      continue;
    }
    std::string cause =
        run.stopped ? fmt::format("the run was interrupted ({}) while worker {}'s batch {} ran",
                                  util::signal_name(stop_sig_), worker.index, run.number)
        : run.timed_out
            ? fmt::format("timed out: worker {}'s batch {} was stopped before reporting this test",
                          worker.index, run.number)
        : crashed ? fmt::format("worker {}'s batch {} crashed ({}) before reporting this test", worker.index,
                                run.number, how)
                  : fmt::format("not reported: worker {}'s batch {} ended ({}) without reporting this test",
                                worker.index, run.number, how);
    finish_test(worker, t, nullptr, cause);
  }
  if (crashed || !(status.code == 0 || status.code == 1)) {
    run.died = crashed;
    print_block(worker, failure_header(worker, how) + log_since(worker.launch.log, worker.log_offset));
  }
  if (stopping_) {
    worker.state = Worker::State::kDone;
    return;
  }
  if (crashed && lost_its_environment(worker)) return;
  if (run.timed_out) {
    lose(worker, "its batch timed out");
    return;
  }
  worker.state = Worker::State::kRunning;
}

void Fleet::Loop::check_ended(Worker& worker) {
  if (worker.process.pid() <= 0) return;
  std::optional<util::ExitStatus> status = worker.process.try_wait();
  if (!status) return;
  if (fleet_.runner_.streams()) {
    runner_ended(worker, *status);
  } else {
    batch_ended(worker, *status);
  }
}

bool Fleet::Loop::all_done() const {
  for (const std::unique_ptr<Worker>& worker : workers_) {
    if (worker->process.pid() > 0 || worker->state == Worker::State::kProvisioning) return false;
    if (worker->state == Worker::State::kDone || worker->state == Worker::State::kLost) continue;
    // A batch worker between batches: done once nothing is left for anyone.
    if (stopping_ || result_.collection_failure || (scheduler_ && scheduler_->unfinished() == 0)) continue;
    return false;
  }
  return true;
}

// What an environment being provisioned awaits ("waiting for db (healthcheck), 12s of 180s"): in its status
// line, and on a plain terminal (CI) as a line when it changes (its running count aside) and every 30 s.
void Fleet::Loop::show_provisioning(Worker& worker) {
  if (worker.state != Worker::State::kProvisioning) return;
  std::string state = worker.environment->provisioning_state();
  fleet_.views_[worker.slot].detail = state;
  if (fleet_.printer_.smart() || state.empty()) return;
  std::string what = state.substr(0, state.rfind(", "));
  if (what != worker.provisioning_said ||
      Clock::now() - worker.provisioning_said_at > std::chrono::seconds(30)) {
    print(fmt::format("worker {}: {}", worker.index, state));
    worker.provisioning_said = what;
    worker.provisioning_said_at = Clock::now();
  }
}

void Fleet::Loop::redraw(bool force) {
  if (!force && Clock::now() - last_redraw_ < kRedrawInterval) return;
  last_redraw_ = Clock::now();
  for (const std::unique_ptr<Worker>& worker : workers_) {
    ui::GroupView& view = fleet_.views_[worker->slot];
    if (worker->record.runs.empty()) {
      view.elapsed = now();
      continue;
    }
    if (worker->process.running()) {
      view.elapsed = std::chrono::duration<double>(Clock::now() - started_).count() -
                     (worker->record.runs.front().started - result_.started);
    }
    if (scheduler_) {
      view.total = scheduler_->held(worker->slot);
      view.counts_known = true;
    }
  }
  fleet_.printer_.status(fleet_.views_, now());
}

void Fleet::Loop::give_up_unfinished() {
  if (!scheduler_) return;
  std::vector<std::string> lost;
  for (const std::unique_ptr<Worker>& worker : workers_) {
    if (worker->record.lost)
      lost.push_back(fmt::format("worker {}: {}", worker->index, *worker->record.lost));
  }
  for (std::size_t t = 0; t < result_.tests.size(); ++t) {
    TestRecord& test = result_.tests[t];
    if (test.reported || !test.cause.empty()) continue;
    if (stop_sig_ != 0) {
      test.cause = fmt::format("not run: the run was interrupted ({}) before this test ran",
                               util::signal_name(stop_sig_));
    } else if (!lost.empty()) {
      test.cause = fmt::format("not run: no worker was left to run it ({})", util::join(lost, "; "));
    } else {
      test.cause = "not run: no worker reported it";
    }
  }
}

FleetResult Fleet::Loop::run() {
  result_.started = epoch_now();
  start_provisioning();
  if (!fleet_.runner_.streams()) {
    // The listing runs here while the environments are provisioned on their threads.
    make_plan(fleet_.runner_.list());
    print(fmt::format("listed {} tests", result_.assignment->ids.size()));
  }
  while (true) {
    handle_stop();
    for (std::unique_ptr<Worker>& worker : workers_) {
      check_provisioned(*worker);
      show_provisioning(*worker);
    }

    std::vector<pollfd> fds;
    for (const std::unique_ptr<Worker>& worker : workers_) {
      if (worker->process.output_fd() >= 0) fds.push_back({worker->process.output_fd(), POLLIN, 0});
    }
    ::poll(fds.data(), fds.size(), kPollMilliseconds);

    for (std::unique_ptr<Worker>& worker : workers_) {
      if (worker->process.pid() <= 0) continue;
      if (fleet_.runner_.streams()) read_channel(*worker);
      check_ended(*worker);
      check_timeout(*worker);
    }
    if (stopping_) {
      for (std::unique_ptr<Worker>& worker : workers_) {
        if (worker->process.running() && Clock::now() - stopped_at_ > fleet_.options_.kill_grace) {
          worker->process.signal(SIGKILL);
        }
        // A collection failure: the runners still waiting for orders are told to go.
        if (result_.collection_failure && worker->process.running() && !worker->shutdown_sent) {
          worker->process.close_input();
          worker->shutdown_sent = true;
        }
      }
    }
    for (std::unique_ptr<Worker>& worker : workers_) feed(*worker);
    if (scheduler_ && scheduler_->unfinished() == 0 && !stopping_) {
      // Nothing is left: environments still being provisioned are not needed, runners still collecting
      // are told to go.
      for (std::unique_ptr<Worker>& worker : workers_) {
        if (worker->state == Worker::State::kProvisioning && !suite_done_early_) {
          suite_done_early_ = true;
          cancel_ = true;
        }
        if (worker->state == Worker::State::kStarting && !worker->shutdown_sent &&
            worker->process.running()) {
          worker->process.close_input();
          worker->shutdown_sent = true;
        }
      }
    }
    if (!scheduler_ && fleet_.runner_.streams() && !stopping_) {
      bool none_left = std::all_of(workers_.begin(), workers_.end(),
                                   [](const auto& w) { return w->state == Worker::State::kLost; });
      if (none_left) {
        std::vector<std::string> why;
        for (const std::unique_ptr<Worker>& worker : workers_)
          why.push_back(fmt::format("worker {}: {}", worker->index, worker->record.lost.value_or("?")));
        result_.collection_failure = "no worker could collect the tests:\n" + util::join(why, "\n");
      }
    }
    redraw(false);
    if (all_done()) break;
  }
  redraw(true);
  give_up_unfinished();
  if (scheduler_) result_.steals = scheduler_->steals();
  for (std::unique_ptr<Worker>& worker : workers_) result_.workers.push_back(worker->record);
  return std::move(result_);
}

Fleet::Fleet(std::vector<environments::Environment*> environments, FleetRunner& runner, FleetOptions options,
             ui::StatusPrinter& printer)
    : environments_(std::move(environments)),
      runner_(runner),
      options_(std::move(options)),
      printer_(printer) {}

Fleet::~Fleet() = default;

FleetResult Fleet::run(const std::atomic<bool>& stop, const std::function<int()>& stop_signal) {
  Loop loop(*this, stop, stop_signal);
  return loop.run();
}

}  // namespace testfleet::execution
