// Signals arrive in one place. SIGINT, SIGTERM, SIGHUP and SIGQUIT are blocked in every thread (the mask is
// set before any thread starts, and threads inherit it) and taken by one watcher thread with sigwaitinfo,
// which records them; loops everywhere poll `received()`. No handler runs at an arbitrary point, so there is
// no race between a flag being set and a loop reading it. SIGPIPE is ignored: a closed pipe is an error
// return, not a death. A stop signal the caller ignored (nohup's SIGHUP, the SIGINT of a script's background
// job) is left ignored, here and in our children. Children get every other signal back at its default
// (util::Process).
#pragma once

#include <atomic>
#include <string>

namespace testfleet::util {

// "SIGINT", or the number when the signal has no name.
std::string signal_name(int sig);

// Whether `sig` was ignored when SignalWatcher::start() ran (and so stays ignored, in children too).
bool ignored_by_caller(int sig);

class SignalWatcher {
 public:
  // Call once, from main, before any other thread starts.
  static SignalWatcher& start();
  static SignalWatcher& instance();

  // The first stop signal received, 0 when none.
  int received() const { return first_.load(); }
  // How many stop signals arrived (a second Ctrl-C hurries the shutdown).
  int count() const { return count_.load(); }
  // Set once a stop signal arrived; long waits take it as their cancel flag.
  const std::atomic<bool>& stop_requested() const { return stop_; }

 private:
  SignalWatcher() = default;
  void watch();

  std::atomic<int> first_{0};
  std::atomic<int> count_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace testfleet::util
