#include "cli/tool_commands.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <iostream>

#include "cli/run_owner.hpp"
#include "environments/compose_engine.hpp"
#include "environments/native_state.hpp"
#include "util/error.hpp"
#include "util/net.hpp"
#include "util/signals.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace testfleet::cli {

int wait_for(const std::vector<std::string>& endpoints, double timeout_seconds,
             const std::vector<std::string>& command, bool quiet) {
  if (endpoints.empty()) throw UsageError("give at least one HOST:PORT to wait for");
  std::vector<util::Endpoint> parsed;
  for (const std::string& text : endpoints) parsed.push_back(util::parse_endpoint(text));
  auto timeout = std::chrono::milliseconds(static_cast<long long>(timeout_seconds * 1000));
  std::vector<util::EndpointWait> waits = util::wait_for_endpoints(
      parsed, timeout, util::SignalWatcher::instance().stop_requested(),
      [quiet](const util::EndpointWait& w) {
        if (!quiet) {
          std::cerr << fmt::format("testfleet wait: {} is open after {:.1f}s\n", w.endpoint.text(),
                                   static_cast<double>(w.waited.count()) / 1000.0);
        }
      });
  bool all_ready = true;
  for (const util::EndpointWait& w : waits) {
    if (w.ready) continue;
    all_ready = false;
    std::cerr << fmt::format("testfleet wait: {} did not open within {}s: {}\n", w.endpoint.text(),
                             timeout_seconds, w.last_error.empty() ? "no answer" : w.last_error);
  }
  if (int sig = util::SignalWatcher::instance().received(); sig != 0) return 128 + sig;
  if (!all_ready) return static_cast<int>(ExitCode::kInfrastructure);
  if (command.empty()) return 0;
  // Like wait-for-it: become the command, so that signals and the exit code are its own.
  std::optional<std::filesystem::path> program = util::find_executable(command[0]);
  if (!program)
    throw UsageError(fmt::format("cannot run {}: not found on PATH", util::shell_quote(command[0])));
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

int clean_leftovers(bool dry_run, bool all_projects, const std::vector<std::string>& docker_hosts) {
  bool failed = false;
  std::size_t removed = 0;
  auto say = [&](const std::string& what) {
    std::cout << "  " << what << "\n";
    ++removed;
  };
  // Runs whose testfleet is gone: their test processes and compose projects. Live runs are never touched.
  for (const AbandonedRun& run : abandoned_runs()) {
    std::cout << fmt::format("run {} ({} backend; its testfleet is gone):\n", run.run_id, run.backend);
    for (const std::string& what : kill_run_processes(run.run_id, dry_run)) say(what);
    for (const std::string& dir : run.dirs) {
      if (!std::filesystem::exists(dir)) continue;
      std::error_code ec;
      if (!dry_run) std::filesystem::remove_all(dir, ec);
      say(fmt::format("{} {}", dry_run ? "would remove" : "removed", dir));
    }
    if (run.backend == "compose") {
      if (dry_run) {
        say(fmt::format("would remove the compose projects testfleet-{}-*", run.run_id));
      } else {
        try {
          environments::CleanReport report =
              environments::clean_compose_leftovers(run.run_id, run.docker_hosts);
          for (const std::string& what : report.removed) say("removed " + what);
          for (const std::string& what : report.failed) {
            std::cout << "  FAILED: " << what << "\n";
            failed = true;
          }
        } catch (const Error& e) {
          std::cout << "  FAILED: " << util::split_lines(e.what()).front() << "\n";
          failed = true;
          continue;  // keep its owner file: a later clean, with the engine back, finishes the job
        }
      }
    }
    if (!dry_run) std::filesystem::remove(run.owner_file);
  }
  // The native state files say what their runs left; cleaning them is all or nothing, so a dry run only
  // names them.
  if (dry_run) {
    // What `clean` itself looks at: the fallback directory under /tmp as well as the default one.
    for (const std::filesystem::path& file : environments::native_state_files()) {
      say("would clean the native run recorded in " + file.string() + " if its testfleet is gone");
    }
  }
  for (const environments::CleanedRun& run :
       dry_run ? std::vector<environments::CleanedRun>{} : environments::clean_native_leftovers()) {
    std::cout << fmt::format("run {} (native services, state {}):\n", run.run_id, run.state_file.string());
    for (const std::string& what : run.removed) say("removed " + what);
    for (const std::string& what : run.failed) {
      std::cout << "  FAILED: " << what << "\n";
      failed = true;
    }
  }
  // Projects no owner file on this machine accounts for (a run from another machine, or from before the
  // state directory was cleared): only on request, since their runs may well be alive.
  if (all_projects) {
    try {
      environments::CleanReport compose =
          dry_run ? environments::CleanReport{}
                  : environments::clean_compose_leftovers(std::nullopt, docker_hosts);
      if (dry_run) std::cout << "--all --dry-run: would remove every compose project named testfleet-*\n";
      for (const std::string& what : compose.removed) say("removed " + what);
      for (const std::string& what : compose.failed) {
        std::cout << "  FAILED: " << what << "\n";
        failed = true;
      }
    } catch (const InfrastructureError& e) {
      std::cout << "compose projects not checked: " << util::split_lines(e.what()).front() << "\n";
    }
  }
  if (removed == 0 && !failed) std::cout << "nothing to clean: no abandoned run left anything behind\n";
  return failed ? static_cast<int>(ExitCode::kInfrastructure) : 0;
}

}  // namespace testfleet::cli
