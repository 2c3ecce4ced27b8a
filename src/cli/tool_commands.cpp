#include "cli/tool_commands.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <iostream>

#include "environments/compose_engine.hpp"
#include "environments/native_state.hpp"
#include "util/error.hpp"
#include "util/net.hpp"
#include "util/signals.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace testfleet::cli {

int wait_for(const std::vector<std::string>& endpoints, double timeout_seconds, const std::vector<std::string>& command,
             bool quiet) {
  if (endpoints.empty()) throw UsageError("give at least one HOST:PORT to wait for");
  std::vector<util::Endpoint> parsed;
  for (const std::string& text : endpoints) parsed.push_back(util::parse_endpoint(text));
  auto timeout = std::chrono::milliseconds(static_cast<long long>(timeout_seconds * 1000));
  std::vector<util::EndpointWait> waits = util::wait_for_endpoints(
      parsed, timeout, util::SignalWatcher::instance().stop_requested(), [quiet](const util::EndpointWait& w) {
        if (!quiet) {
          std::cerr << fmt::format("testfleet wait: {} is open after {:.1f}s\n", w.endpoint.text(),
                                   static_cast<double>(w.waited.count()) / 1000.0);
        }
      });
  bool all_ready = true;
  for (const util::EndpointWait& w : waits) {
    if (w.ready) continue;
    all_ready = false;
    std::cerr << fmt::format("testfleet wait: {} did not open within {}s: {}\n", w.endpoint.text(), timeout_seconds,
                             w.last_error.empty() ? "no answer" : w.last_error);
  }
  if (int sig = util::SignalWatcher::instance().received(); sig != 0) return 128 + sig;
  if (!all_ready) return static_cast<int>(ExitCode::kInfrastructure);
  if (command.empty()) return 0;
  // Like wait-for-it: become the command, so that signals and the exit code are its own.
  std::optional<std::filesystem::path> program = util::find_executable(command[0]);
  if (!program) throw UsageError(fmt::format("cannot run {}: not found on PATH", util::shell_quote(command[0])));
  std::vector<char*> argv;
  std::vector<std::string> copy = command;
  for (std::string& word : copy) argv.push_back(word.data());
  argv.push_back(nullptr);
  sigset_t empty;
  sigemptyset(&empty);
  ::pthread_sigmask(SIG_SETMASK, &empty, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::execv(program->c_str(), argv.data());
  throw InfrastructureError(fmt::format("cannot run {}: {}", program->string(), std::strerror(errno)));
}

int clean_leftovers(bool dry_run) {
  (void)dry_run;
  bool failed = false;
  std::size_t removed = 0;
  for (const environments::CleanedRun& run : environments::clean_native_leftovers()) {
    std::cout << fmt::format("run {} (native services, state {}):\n", run.run_id, run.state_file.string());
    for (const std::string& what : run.removed) {
      std::cout << "  removed: " << what << "\n";
      ++removed;
    }
    for (const std::string& what : run.failed) {
      std::cout << "  FAILED: " << what << "\n";
      failed = true;
    }
  }
  environments::CleanReport compose;
  try {
    compose = environments::clean_compose_leftovers(std::nullopt);
  } catch (const InfrastructureError& e) {
    // No engine, no containers of ours to find: say so, and clean the rest.
    std::string first_line = util::split_lines(e.what()).front();
    std::cout << "compose projects not checked: " << first_line << "\n";
  }
  if (!compose.removed.empty() || !compose.failed.empty()) std::cout << "compose projects:\n";
  for (const std::string& what : compose.removed) {
    std::cout << "  removed: " << what << "\n";
    ++removed;
  }
  for (const std::string& what : compose.failed) {
    std::cout << "  FAILED: " << what << "\n";
    failed = true;
  }
  if (removed == 0 && !failed) std::cout << "nothing to clean: no run left servers or directories behind\n";
  return failed ? static_cast<int>(ExitCode::kInfrastructure) : 0;
}

}  // namespace testfleet::cli
