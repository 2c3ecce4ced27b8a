// What a group runs in. An Environment owns everything one group needs besides its test command
// (servers, a compose project), and a Backend owns what all groups of a run share (a PostgreSQL template,
// built images). Execution knows environments only through this interface.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "util/subprocess.hpp"

namespace testfleet::environments {

// Which group an environment serves, and where its reports go on the host.
struct GroupSlot {
  int index = 0;  // 1-based
  int count = 0;
  std::string run_id;
  std::filesystem::path run_reports_dir;    // the run's reports directory on the host
  std::filesystem::path group_reports_dir;  // run_reports_dir / "group-<index>"
};

class Environment {
 public:
  virtual ~Environment() = default;

  // One line for progress and --dry-run: "postgres 127.0.0.1:41234, redis 127.0.0.1:41235".
  virtual std::string describe() const = 0;

  // Starts what the group needs and returns when it is ready. Throws InfrastructureError naming what
  // failed (which server, which port, its log tail). Returns early, throwing, once `cancel` is set.
  virtual void provision(const std::atomic<bool>& cancel) = 0;

  // What provision() is doing now, for the status line: "waiting for db (healthcheck), 12s of 180s"; empty
  // when it is not running or has nothing to say. Safe to call from another thread while provision() runs.
  virtual std::string provisioning_state() const { return {}; }

  // Variables the group's command gets on top of the run's (DATABASE_URL, REDIS_URL, ...).
  virtual util::EnvVars variables() const = 0;

  // The credentials this environment made for its servers, one per server, which its variables() carry: to
  // be masked (util::redact) in any text shown or kept that the group or its servers may have written (the
  // group's output, a JUnit failure message). Kept after teardown(); safe to call from any thread.
  virtual std::vector<std::string> secrets() const { return {}; }

  // The argv to spawn on the host for a command meant to run inside this environment, given the
  // variables it must see there. Native: unchanged (the variables go to the child's environment);
  // compose: `docker compose -p P run --rm -e K=V ... SERVICE argv...`.
  virtual std::vector<std::string> wrap_command(const std::vector<std::string>& argv,
                                                const util::EnvVars& variables) const {
    (void)variables;
    return argv;
  }

  // Whether the variables must also be set on the spawned host process (native) or travel inside the
  // wrapped command (compose).
  virtual bool variables_in_host_environment() const { return true; }

  // Whether a command in the environment sees this machine's files. Compose says no even on a local engine
  // with the reports directory bind-mounted: its engine may be another machine's, so what the runner needs
  // and what it reports travel through the command's own streams, the one path every engine carries.
  virtual bool sees_host_files() const { return true; }

  // A path under the run's reports directory as the command inside the environment sees it.
  virtual std::filesystem::path path_inside(const std::filesystem::path& host_path) const {
    return host_path;
  }

  // What failed in the environment while its group ran, one line each (a server or sidecar that ended, an
  // engine that stopped answering); empty when all is well. Called after the group ended, before
  // teardown(); never throws.
  virtual std::vector<std::string> problems() noexcept { return {}; }

  // Stops and removes everything it started; safe to call twice and on a half-provisioned environment;
  // never throws. Returns what it could not remove (empty when all is gone).
  virtual std::vector<std::string> teardown() noexcept = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // After prepare(), one line on what the run uses ("docker compose 2.26.1 (v2) on DOCKER_HOST=..."); may be
  // empty.
  virtual std::string describe() const { return {}; }

  // Once per run before the groups fan out (initdb a template, build images). Throws InfrastructureError.
  virtual void prepare(const std::atomic<bool>& cancel) = 0;

  // The environment test collection runs in (no sidecars needed; compose: a `run --no-deps`).
  virtual std::unique_ptr<Environment> discovery_environment(const GroupSlot& slot) = 0;

  virtual std::unique_ptr<Environment> create(const GroupSlot& slot) = 0;

  // Directories of this run's own on the host that must go if testfleet is SIGKILLed before finish()
  // (`testfleet clean` removes them); known once prepare() returned.
  virtual std::vector<std::filesystem::path> private_dirs() const { return {}; }

  // Removes what prepare() made; never throws. Returns what it could not remove.
  virtual std::vector<std::string> finish() noexcept = 0;
};

// No services: the command runs as it is on this machine.
class HostEnvironment : public Environment {
 public:
  std::string describe() const override { return "host"; }
  void provision(const std::atomic<bool>&) override {}
  util::EnvVars variables() const override { return {}; }
  std::vector<std::string> teardown() noexcept override { return {}; }
};

class HostBackend : public Backend {
 public:
  std::string name() const override { return "host"; }
  void prepare(const std::atomic<bool>&) override {}
  std::unique_ptr<Environment> discovery_environment(const GroupSlot&) override {
    return std::make_unique<HostEnvironment>();
  }
  std::unique_ptr<Environment> create(const GroupSlot&) override {
    return std::make_unique<HostEnvironment>();
  }
  std::vector<std::string> finish() noexcept override { return {}; }
};

}  // namespace testfleet::environments
