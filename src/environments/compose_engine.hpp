// The Docker engine and the compose program, driven through their command-line clients (`docker`,
// `docker compose` or `docker-compose`), never through the engine's API: the clients already honour
// DOCKER_HOST, contexts and TLS settings exactly as the user's own shell does, so a project that works
// with `docker compose up` by hand works here.
//
// Compose comes in two generations with the same commands: v2 (`docker compose`, a plugin of the
// docker client) and v1 (`docker-compose` 1.29, what Debian 12 ships). Both label what they create with
// com.docker.compose.project, which is how clean_compose_leftovers() finds the projects of an interrupted
// run without their compose files.
//
// Several engines: every function that talks to an engine takes the DOCKER_HOST it is meant for
// (`docker_host`, such as "unix:///run/docker.sock", "tcp://10.0.0.5:2376" or "ssh://ci@build-2"). Empty
// means the caller's own DOCKER_HOST, or the client's default when that is unset. A non-empty one is set in
// the child's environment (and DOCKER_CONTEXT removed, which would otherwise compete with it), so compose v1
// and v2, the docker client and its TLS settings (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) all see it the same
// way.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/subprocess.hpp"

namespace testfleet::environments {

struct ComposeCommand {
  std::vector<std::string> argv;  // {"docker", "compose"} or {"/usr/bin/docker-compose"}
  int major_version = 0;          // 1 or 2 (0 when its version could not be read)
  std::string version;            // as the program printed it
};

// The compose program to use: `requested` when not empty, else $TESTFLEET_COMPOSE (a command line, such
// as "docker-compose" or "docker compose"), else `docker compose` when the plugin answers, else
// `docker-compose`. Throws UsageError when the requested one does not run, InfrastructureError when none
// is installed.
ComposeCommand detect_compose_command(const std::vector<std::string>& requested);

// "DOCKER_HOST=unix:///run/x.sock" or "DOCKER_HOST unset (the default unix:///var/run/docker.sock)".
std::string docker_host_description(const std::string& docker_host = {});

// Throws UsageError naming `docker_host` unless it is an address the docker client takes:
// unix:///absolute/path, tcp://host[:port] or ssh://[user@]host[:port].
void check_docker_host(const std::string& docker_host);

// Throws InfrastructureError, naming DOCKER_HOST and how to start an engine, unless `docker version`
// reaches an engine within `timeout`. Returns the engine's version.
std::string require_docker_engine(std::chrono::milliseconds timeout, const std::string& docker_host = {});

// Whether an engine answers (for tests deciding to run or skip).
bool docker_engine_answers(std::chrono::milliseconds timeout, const std::string& docker_host = {});

// The engine's CPU count (`docker info`), 0 when it does not say.
int docker_engine_cpus(const std::string& docker_host = {});

// Like util::run_command, and it also stops the command (TERM, then KILL) as soon as `cancel` is set.
struct CancellableResult {
  util::CommandResult result;
  bool cancelled = false;
};
CancellableResult run_cancellable(util::SpawnSpec spec, std::chrono::milliseconds timeout,
                                  const std::atomic<bool>* cancel);

// A command run in `cwd` (empty: ours), with our environment (DOCKER_HOST set to `docker_host` unless that is
// empty) and stdin from /dev/null.
util::SpawnSpec command_spec(std::vector<std::string> argv, const std::filesystem::path& cwd = {},
                             const std::string& docker_host = {});

// `argv` as a command line that reaches `docker_host` whatever environment it is spawned with:
// `env -u DOCKER_CONTEXT DOCKER_HOST=... argv...`; `argv` itself when `docker_host` is empty.
std::vector<std::string> with_docker_host(std::vector<std::string> argv, const std::string& docker_host);

// `docker ARGS...` to its end; the output captured.
util::CommandResult run_docker(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                               const std::string& docker_host = {});

// One container as `docker inspect --format container_state_format()` describes it.
struct ContainerState {
  std::string name;
  std::string status;  // created, running, restarting, exited, dead, paused
  int exit_code = 0;
  std::string health;  // starting, healthy, unhealthy; empty without a healthcheck
  std::string network_mode;
  std::vector<std::pair<std::string, std::string>> networks;  // (network name, IPv4 address)
  std::vector<std::uint16_t> exposed_tcp_ports;               // from the image's EXPOSE
};

std::string container_state_format();
// Parses one line of that format; throws InfrastructureError naming the text when it does not fit.
ContainerState parse_container_state(std::string_view line);

// Containers (all states) of one service of a compose project, started by `up` (not by `run`).
std::vector<std::string> service_container_ids(const std::string& project, const std::string& service,
                                               const std::string& docker_host = {});
ContainerState inspect_container(const std::string& id, const std::string& docker_host = {});
// The last lines a container wrote, stdout and stderr, for error messages.
std::string container_log_tail(const std::string& id, int lines, const std::string& docker_host = {});

struct CleanReport {
  std::vector<std::string> removed;  // "container testfleet-r1-g3_db_1", "network testfleet-r1-g3_default"
  std::vector<std::string> failed;   // the same, with the engine's reason
};

// Removes the containers (with their anonymous volumes), networks and volumes of every compose project whose
// name starts with `project_prefix`, or equals it when `exact` is set. Throws InfrastructureError when no
// engine answers.
CleanReport remove_compose_projects(const std::string& project_prefix, bool exact,
                                    const std::string& docker_host = {});

// `testfleet clean`: what interrupted runs left, of all runs (no run id) or of one, on every engine of
// `docker_hosts` (empty: the one DOCKER_HOST names). With several hosts every entry ends with
// " on <host>", and an engine that does not answer is a failed entry; throws InfrastructureError when no
// engine answers at all, or when a host is not a docker address (UsageError).
CleanReport clean_compose_leftovers(const std::optional<std::string>& run_id,
                                    const std::vector<std::string>& docker_hosts = {});

}  // namespace testfleet::environments
