#include "util/signals.hpp"

#include <signal.h>

#include <mutex>
#include <thread>

namespace testfleet::util {
namespace {

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, sig);
  return set;
}

}  // namespace

SignalWatcher& SignalWatcher::instance() {
  static SignalWatcher watcher;
  return watcher;
}

SignalWatcher& SignalWatcher::start() {
  SignalWatcher& watcher = instance();
  static std::once_flag once;
  std::call_once(once, [&] {
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t set = stop_signals();
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread([&watcher] { watcher.watch(); }).detach();
  });
  return watcher;
}

void SignalWatcher::watch() {
  sigset_t set = stop_signals();
  while (true) {
    siginfo_t info;
    int sig = ::sigwaitinfo(&set, &info);
    if (sig <= 0) continue;
    int expected = 0;
    first_.compare_exchange_strong(expected, sig);
    count_.fetch_add(1);
    stop_.store(true);
  }
}

}  // namespace testfleet::util
