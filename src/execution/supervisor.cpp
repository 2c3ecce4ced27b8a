#include "execution/supervisor.hpp"

#include <fmt/format.h>
#include <signal.h>

#include <thread>

#include "util/files.hpp"
#include "util/strings.hpp"

namespace testfleet::execution {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxPrintedLines = 400;
constexpr auto kPollInterval = std::chrono::milliseconds(50);
constexpr auto kRedrawInterval = std::chrono::milliseconds(250);

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string describe_end(const GroupJob& job, const GroupOutcome& outcome) {
  if (outcome.start_error) return "could not start";
  std::string how = describe_exit(outcome.status, job.in_container);
  if (outcome.timed_out) return "timed out, " + how;
  if (outcome.stopped) return "stopped, " + how;
  return how;
}

}  // namespace

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

std::string failure_block(const GroupJob& job, const GroupOutcome& outcome,
                          const ui::StatusPrinter& printer) {
  std::string text = fmt::format("{} group {} [{}]\n{}\n", printer.red("FAILED:"), job.index,
                                 describe_end(job, outcome), util::shell_join(job.argv));
  if (outcome.start_error) return text + *outcome.start_error + "\n";
  std::string log;
  try {
    log = util::read_file(job.log_file);
  } catch (const std::exception& e) {
    return text + e.what() + "\n";
  }
  std::string tail = util::tail_lines(log, kMaxPrintedLines);
  if (tail.size() < log.size()) {
    text += fmt::format("[... earlier output cut; the whole log is {}]\n", job.log_file.string());
  }
  return text + tail;
}

void Supervisor::report_end(const GroupJob& job, const GroupOutcome& outcome) {
  bool passed = outcome.status.success() && !outcome.start_error && !outcome.timed_out;
  if (passed) {
    printer_.line(fmt::format("group {} {} in {} ({} tests)", job.index, printer_.green("passed"),
                              util::format_duration(outcome.ended - outcome.started), job.planned_tests));
  } else {
    printer_.block(failure_block(job, outcome, printer_));
  }
}

std::vector<GroupOutcome> Supervisor::run(const std::vector<GroupJob>& jobs, const std::atomic<bool>& stop,
                                          const std::function<int()>& stop_signal) {
  Clock::time_point start = Clock::now();
  started_ = start;
  std::vector<GroupOutcome> outcomes(jobs.size());
  std::vector<util::Process> processes(jobs.size());
  views_.assign(jobs.size(), ui::GroupView{});
  std::vector<ui::GroupView>& views = views_;

  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const GroupJob& job = jobs[i];
    views[i].index = job.index;
    views[i].total = job.planned_tests;
    views[i].estimate = job.estimate_seconds;
    util::SpawnSpec spec;
    spec.argv = job.argv;
    spec.env = job.env;
    spec.cwd = job.cwd;
    spec.output = util::OutputMode::kFile;
    spec.output_file = job.log_file;
    outcomes[i].started = seconds_since(start);
    try {
      processes[i] = util::Process::spawn(spec);
      views[i].state = ui::GroupState::kRunning;
      printer_.line(
          fmt::format("group {} started: {} tests{}", job.index, job.planned_tests,
                      job.estimate_seconds > 0 ? ", ~" + util::format_duration(job.estimate_seconds) : ""));
    } catch (const std::exception& e) {
      outcomes[i].start_error = e.what();
      outcomes[i].ended = outcomes[i].started;
      views[i].state = ui::GroupState::kFailed;
      report_end(job, outcomes[i]);
    }
  }

  bool forwarded = false;
  Clock::time_point forwarded_at;
  Clock::time_point last_redraw;
  while (true) {
    bool any_running = false;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      util::Process& process = processes[i];
      if (!process.running()) continue;
      if (std::optional<util::ExitStatus> status = process.try_wait()) {
        // The leader is gone; anything it left in its process group goes with it.
        ::kill(-process.pid(), SIGKILL);
        outcomes[i].status = *status;
        outcomes[i].ended = seconds_since(start);
        outcomes[i].stopped = forwarded;
        bool passed = status->success() && !outcomes[i].timed_out;
        views[i].state = passed ? ui::GroupState::kPassed : ui::GroupState::kFailed;
        views[i].elapsed = outcomes[i].ended - outcomes[i].started;
        if (jobs[i].finished_tests) views[i].done = jobs[i].finished_tests().value_or(views[i].done);
        report_end(jobs[i], outcomes[i]);
        continue;
      }
      any_running = true;
      double elapsed = seconds_since(start) - outcomes[i].started;
      views[i].elapsed = elapsed;
      if (options_.timeout && !outcomes[i].timed_out &&
          elapsed * 1000 > static_cast<double>(options_.timeout->count())) {
        outcomes[i].timed_out = true;
        printer_.line(fmt::format("group {} timed out after {}: stopping it", jobs[i].index,
                                  util::format_duration(elapsed)));
        // SIGINT, not SIGTERM: pytest turns it into KeyboardInterrupt and still writes its reports.
        process.signal(SIGINT);
        views[i].detail = "timed out";
      }
      if (outcomes[i].timed_out &&
          elapsed * 1000 > static_cast<double>(options_.timeout->count() + options_.kill_grace.count())) {
        process.signal(SIGKILL);
      }
    }
    if (!any_running) break;

    if (stop.load() && !forwarded) {
      forwarded = true;
      forwarded_at = Clock::now();
      int sig = stop_signal();
      printer_.line(fmt::format("testfleet: received SIG{}, stopping every group",
                                sigabbrev_np(sig) != nullptr ? sigabbrev_np(sig) : "?"));
      for (util::Process& process : processes) process.signal(sig == SIGHUP ? SIGTERM : sig);
    }
    if (forwarded && Clock::now() - forwarded_at > options_.kill_grace) {
      for (util::Process& process : processes) process.signal(SIGKILL);
    }

    if (Clock::now() - last_redraw >= kRedrawInterval) {
      last_redraw = Clock::now();
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        if (views[i].state == ui::GroupState::kRunning && jobs[i].finished_tests) {
          if (std::optional<std::size_t> done = jobs[i].finished_tests()) {
            views[i].done = *done;
            views[i].counts_known = true;
          }
        }
      }
      printer_.status(views, seconds_since(start));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  printer_.status(views, seconds_since(start));
  return outcomes;
}

double Supervisor::elapsed() const {
  return started_ == Clock::time_point{} ? 0.0 : seconds_since(started_);
}

}  // namespace testfleet::execution
