#include "util/signals.hpp"

#include <signal.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

namespace testfleet::util {
namespace {

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// The stop signals our caller had set to be ignored (bit `sig`), found once by start().
std::atomic<unsigned> caller_ignored{0};

// The stop signals the watcher takes: all but those the caller ignores.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kStopSignals) {
    if (!ignored_by_caller(sig)) sigaddset(&set, sig);
  }
  return set;
}

}  // namespace

bool ignored_by_caller(int sig) {
  return sig > 0 && sig < 32 && (caller_ignored.load() & (1U << sig)) != 0;
}

SignalWatcher& SignalWatcher::instance() {
  static SignalWatcher watcher;
  return watcher;
}

SignalWatcher& SignalWatcher::start() {
  SignalWatcher& watcher = instance();
  static std::once_flag once;
  std::call_once(once, [&] {
    ::signal(SIGPIPE, SIG_IGN);
    // `nohup` ignores SIGHUP, a shell ignores SIGINT and SIGQUIT for a background job of a script: such a
    // signal stays ignored here and in our children, as every well-behaved program keeps it.
    unsigned ignored = 0;
    for (int sig : kStopSignals) {
      struct sigaction old {};
      if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) ignored |= 1U << sig;
    }
    caller_ignored.store(ignored);
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

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : std::to_string(sig);
}

}  // namespace testfleet::util
