#include "environments/compose_engine.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <map>
#include <thread>

#include "environments/compose_file.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace testfleet::environments {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kProjectLabel = "com.docker.compose.project";

std::string output_tail(const std::string& output, std::size_t lines = 20) {
  std::string tail = std::string(util::trim(util::tail_lines(output, lines)));
  return tail.empty() ? "(no output)" : tail;
}

std::optional<std::string> program_version(const std::vector<std::string>& argv) {
  std::vector<std::string> command = argv;
  command.push_back("version");
  command.push_back("--short");
  try {
    util::CommandResult result = util::run_command(command_spec(command), seconds(30));
    if (!result.status.success()) return std::nullopt;
    std::string version(util::trim(result.output));
    // v1 may print warnings before the version; the version is the last line.
    std::vector<std::string> lines = util::split_lines(version);
    return lines.empty() ? std::string() : std::string(util::trim(lines.back()));
  } catch (const InfrastructureError&) {
    return std::nullopt;  // not installed
  }
}

int major_of(std::string_view version) {
  if (!version.empty() && version.front() == 'v') version.remove_prefix(1);
  int major = 0;
  std::from_chars(version.data(), version.data() + version.size(), major);
  return major;
}

std::vector<std::string> label_filter(const std::string& project_prefix, bool exact) {
  if (exact) return {"--filter", fmt::format("label={}={}", kProjectLabel, project_prefix)};
  return {"--filter", fmt::format("label={}", kProjectLabel)};
}

bool project_matches(std::string_view project, const std::string& prefix, bool exact) {
  return exact ? project == prefix : util::starts_with(project, prefix);
}

struct Resource {
  std::string id;
  std::string project;
  std::string name;
};

// Lines of "ID\tPROJECT\tNAME" from a `docker ... ls --format`.
std::vector<Resource> list_resources(const std::vector<std::string>& command, const std::string& what,
                                     const std::string& docker_host) {
  util::CommandResult result = run_docker(command, seconds(60), docker_host);
  if (!result.status.success()) {
    throw InfrastructureError(fmt::format("cannot list {} on the Docker engine ({}): {}", what,
                                          docker_host_description(docker_host), output_tail(result.output)));
  }
  std::vector<Resource> resources;
  for (const std::string& line : util::split_lines(result.output)) {
    std::vector<std::string> fields = util::split(line, '\t');
    if (fields.size() < 3) continue;
    resources.push_back(Resource{fields[0], fields[1], fields[2]});
  }
  return resources;
}

// Removes in one call; when that fails, asks which are still there to say which failed.
void remove_all(const std::vector<Resource>& resources, const std::vector<std::string>& remove_command,
                const std::string& kind, const std::vector<std::string>& exists_command,
                const std::string& docker_host, CleanReport& report) {
  if (resources.empty()) return;
  std::vector<std::string> command = remove_command;
  for (const Resource& resource : resources) command.push_back(resource.id);
  util::CommandResult result = run_docker(command, seconds(120), docker_host);
  for (const Resource& resource : resources) {
    bool gone = result.status.success();
    if (!gone) {
      std::vector<std::string> probe = exists_command;
      probe.push_back(resource.id);
      gone = !run_docker(probe, seconds(30), docker_host).status.success();
    }
    if (gone) {
      report.removed.push_back(fmt::format("{} {}", kind, resource.name));
    } else {
      report.failed.push_back(fmt::format("{} {}: {}", kind, resource.name, output_tail(result.output, 3)));
    }
  }
}

}  // namespace

ComposeCommand detect_compose_command(const std::vector<std::string>& requested) {
  std::vector<std::string> chosen = requested;
  std::string source = "the compose command option";
  if (chosen.empty()) {
    if (const char* env = std::getenv("TESTFLEET_COMPOSE"); env != nullptr && *env != '\0') {
      chosen = util::split_command_line(env);
      source = "TESTFLEET_COMPOSE";
    }
  }
  if (!chosen.empty()) {
    std::optional<std::string> version = program_version(chosen);
    if (!version) {
      throw UsageError(fmt::format("{} names `{}`, which does not run (`{} version --short` failed)", source,
                                   util::shell_join(chosen), util::shell_join(chosen)));
    }
    return ComposeCommand{chosen, major_of(*version), *version};
  }
  for (const std::vector<std::string>& candidate :
       {std::vector<std::string>{"docker", "compose"}, std::vector<std::string>{"docker-compose"}}) {
    if (std::optional<std::string> version = program_version(candidate)) {
      return ComposeCommand{candidate, major_of(*version), *version};
    }
  }
  throw InfrastructureError(
      "neither `docker compose` (v2) nor `docker-compose` (v1) runs on this machine: install one "
      "(Debian: apt-get install docker-compose) or set TESTFLEET_COMPOSE to the compose command");
}

std::string docker_host_description(const std::string& docker_host) {
  if (!docker_host.empty()) return fmt::format("DOCKER_HOST={}", docker_host);
  const char* host = std::getenv("DOCKER_HOST");
  if (host == nullptr || *host == '\0') return "DOCKER_HOST unset (the default unix:///var/run/docker.sock)";
  return fmt::format("DOCKER_HOST={}", host);
}

void check_docker_host(const std::string& docker_host) {
  std::string_view rest;
  bool known = false;
  for (std::string_view scheme : {"unix://", "tcp://", "ssh://"}) {
    if (util::starts_with(docker_host, scheme)) {
      rest = std::string_view(docker_host).substr(scheme.size());
      known = true;
      if (scheme == "unix://" && !util::starts_with(rest, "/")) {
        throw UsageError(
            fmt::format("docker host '{}': a unix socket needs an absolute path, such as "
                        "unix:///var/run/docker.sock",
                        docker_host));
      }
    }
  }
  if (!known) {
    throw UsageError(
        fmt::format("docker host '{}' is not a Docker address: use unix:///path/to/docker.sock, "
                    "tcp://HOST:PORT or ssh://[USER@]HOST",
                    docker_host));
  }
  if (rest.empty() || rest.find_first_of(" \t\n") != std::string_view::npos) {
    throw UsageError(fmt::format("docker host '{}' names no host", docker_host));
  }
}

std::string require_docker_engine(std::chrono::milliseconds timeout, const std::string& docker_host) {
  util::CommandResult result;
  try {
    result = run_docker({"version", "--format", "{{.Server.Version}}"}, timeout, docker_host);
  } catch (const InfrastructureError& error) {
    throw InfrastructureError(
        fmt::format("{} (the docker client is needed for --compose; Debian: apt-get "
                    "install docker.io)",
                    error.what()));
  }
  if (result.status.success() && !util::trim(result.output).empty()) {
    return std::string(util::trim(result.output));
  }
  throw InfrastructureError(fmt::format(
      "no Docker engine answers ({}){}: {}\nStart one with `scripts/docker-engine.sh start` from testfleet's "
      "source tree and export the DOCKER_HOST it prints, or start the machine's Docker service",
      docker_host_description(docker_host),
      result.timed_out ? " within " + util::format_duration(static_cast<double>(timeout.count()) / 1000.0)
                       : "",
      output_tail(result.output, 5)));
}

bool docker_engine_answers(std::chrono::milliseconds timeout, const std::string& docker_host) {
  try {
    require_docker_engine(timeout, docker_host);
    return true;
  } catch (const InfrastructureError&) {
    return false;
  }
}

int docker_engine_cpus(const std::string& docker_host) {
  util::CommandResult result = run_docker({"info", "--format", "{{.NCPU}}"}, seconds(30), docker_host);
  if (!result.status.success()) return 0;
  std::string text(util::trim(result.output));
  int cpus = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), cpus);
  if (error != std::errc() || end != text.data() + text.size() || cpus < 0) return 0;
  return cpus;
}

CancellableResult run_cancellable(util::SpawnSpec spec, std::chrono::milliseconds timeout,
                                  const std::atomic<bool>* cancel) {
  spec.output = util::OutputMode::kPipe;
  util::Process process = util::Process::spawn(spec);
  CancellableResult outcome;
  int fd = process.output_fd();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool eof = false;
  char buffer[16384];
  auto drain = [&] {
    while (!eof) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n > 0) {
        outcome.result.output.append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0) {
        eof = true;
      } else {
        break;  // EAGAIN or EINTR
      }
    }
  };
  while (true) {
    drain();
    if (process.try_wait()) {
      drain();
      break;
    }
    if (cancel != nullptr && cancel->load()) {
      outcome.cancelled = true;
      process.terminate(milliseconds(2000));
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      outcome.result.timed_out = true;
      process.terminate(milliseconds(2000));
      break;
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    if (eof) {
      std::this_thread::sleep_for(milliseconds(20));
    } else {
      ::poll(&pfd, 1, 50);
    }
  }
  outcome.result.status = *process.status();
  return outcome;
}

util::CommandResult run_docker(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                               const std::string& docker_host) {
  std::vector<std::string> argv = {"docker"};
  argv.insert(argv.end(), args.begin(), args.end());
  return util::run_command(command_spec(std::move(argv), {}, docker_host), timeout);
}

util::SpawnSpec command_spec(std::vector<std::string> argv, const std::filesystem::path& cwd,
                             const std::string& docker_host) {
  util::SpawnSpec spec;
  spec.argv = std::move(argv);
  spec.cwd = cwd;
  if (!docker_host.empty()) {
    util::EnvVars env = util::current_environment();
    env["DOCKER_HOST"] = docker_host;
    env.erase("DOCKER_CONTEXT");
    spec.env = std::move(env);
  }
  return spec;
}

std::vector<std::string> with_docker_host(std::vector<std::string> argv, const std::string& docker_host) {
  if (docker_host.empty()) return argv;
  std::vector<std::string> wrapped = {"env", "-u", "DOCKER_CONTEXT", "DOCKER_HOST=" + docker_host};
  wrapped.insert(wrapped.end(), std::make_move_iterator(argv.begin()), std::make_move_iterator(argv.end()));
  return wrapped;
}

std::string container_state_format() {
  return "{{.Name}}\t{{.State.Status}}\t{{.State.ExitCode}}\t{{if "
         ".State.Health}}{{.State.Health.Status}}{{end}}"
         "\t{{.HostConfig.NetworkMode}}\t{{range $k, $v := "
         ".NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} "
         "{{end}}\t{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}";
}

ContainerState parse_container_state(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  std::vector<std::string> fields = util::split(line, '\t');
  if (fields.size() != 7) {
    throw InfrastructureError(fmt::format("unexpected `docker inspect` output: '{}'", line));
  }
  ContainerState state;
  state.name = fields[0];
  if (!state.name.empty() && state.name.front() == '/') state.name.erase(0, 1);
  state.status = fields[1];
  std::from_chars(fields[2].data(), fields[2].data() + fields[2].size(), state.exit_code);
  state.health = fields[3];
  state.network_mode = fields[4];
  for (const std::string& entry : util::split(fields[5], ' ')) {
    std::size_t eq = entry.rfind('=');
    if (entry.empty() || eq == std::string::npos) continue;
    state.networks.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
  }
  for (const std::string& entry : util::split(fields[6], ' ')) {
    if (!util::ends_with(entry, "/tcp")) continue;
    int port = 0;
    std::from_chars(entry.data(), entry.data() + entry.size() - 4, port);
    if (port > 0 && port <= 65535) state.exposed_tcp_ports.push_back(static_cast<std::uint16_t>(port));
  }
  return state;
}

std::vector<std::string> service_container_ids(const std::string& project, const std::string& service,
                                               const std::string& docker_host) {
  util::CommandResult result = run_docker(
      {"ps", "-a", "-q", "--no-trunc", "--filter", fmt::format("label={}={}", kProjectLabel, project),
       "--filter", "label=com.docker.compose.service=" + service, "--filter",
       "label=com.docker.compose.oneoff=False"},
      seconds(60), docker_host);
  if (!result.status.success()) {
    throw InfrastructureError(
        fmt::format("cannot list the containers of service {} in compose project {}: {}", service, project,
                    output_tail(result.output)));
  }
  std::vector<std::string> ids;
  for (const std::string& line : util::split_lines(result.output)) {
    std::string id(util::trim(line));
    if (!id.empty()) ids.push_back(id);
  }
  return ids;
}

ContainerState inspect_container(const std::string& id, const std::string& docker_host) {
  util::CommandResult result = run_docker(
      {"inspect", "--type", "container", "--format", container_state_format(), id}, seconds(60), docker_host);
  if (!result.status.success()) {
    throw InfrastructureError(fmt::format("cannot inspect container {}: {}", id, output_tail(result.output)));
  }
  return parse_container_state(result.output);
}

std::string container_log_tail(const std::string& id, int lines, const std::string& docker_host) {
  try {
    util::CommandResult result =
        run_docker({"logs", "--tail", std::to_string(lines), id}, seconds(30), docker_host);
    return output_tail(result.output, static_cast<std::size_t>(lines));
  } catch (const InfrastructureError& error) {
    return fmt::format("(no logs: {})", error.what());
  }
}

CleanReport remove_compose_projects(const std::string& project_prefix, bool exact,
                                    const std::string& docker_host) {
  const std::string label_format = fmt::format("{{{{.Label \"{}\"}}}}", kProjectLabel);
  std::vector<std::string> filter = label_filter(project_prefix, exact);
  auto matching = [&](std::vector<Resource> all) {
    std::erase_if(all, [&](const Resource& r) { return !project_matches(r.project, project_prefix, exact); });
    return all;
  };

  std::vector<std::string> ps = {"ps", "-a", "--no-trunc"};
  ps.insert(ps.end(), filter.begin(), filter.end());
  ps.insert(ps.end(), {"--format", "{{.ID}}\t" + label_format + "\t{{.Names}}"});
  std::vector<std::string> networks = {"network", "ls", "--no-trunc"};
  networks.insert(networks.end(), filter.begin(), filter.end());
  networks.insert(networks.end(), {"--format", "{{.ID}}\t" + label_format + "\t{{.Name}}"});
  std::vector<std::string> volumes = {"volume", "ls"};
  volumes.insert(volumes.end(), filter.begin(), filter.end());
  volumes.insert(volumes.end(), {"--format", "{{.Name}}\t" + label_format + "\t{{.Name}}"});

  CleanReport report;
  // Containers first: a network or a volume in use cannot go.
  remove_all(matching(list_resources(ps, "containers", docker_host)), {"rm", "-f", "-v"}, "container",
             {"inspect", "--type", "container", "--format", "{{.Id}}"}, docker_host, report);
  remove_all(matching(list_resources(networks, "networks", docker_host)), {"network", "rm"}, "network",
             {"network", "inspect", "--format", "{{.Id}}"}, docker_host, report);
  remove_all(matching(list_resources(volumes, "volumes", docker_host)), {"volume", "rm", "-f"}, "volume",
             {"volume", "inspect", "--format", "{{.Name}}"}, docker_host, report);
  return report;
}

CleanReport clean_compose_leftovers(const std::optional<std::string>& run_id,
                                    const std::vector<std::string>& docker_hosts) {
  if (docker_hosts.size() <= 1) {
    const std::string host = docker_hosts.empty() ? std::string() : docker_hosts.front();
    if (!host.empty()) check_docker_host(host);
    require_docker_engine(seconds(20), host);
    return remove_compose_projects(compose_project_prefix(run_id), false, host);
  }
  for (const std::string& host : docker_hosts) check_docker_host(host);
  CleanReport report;
  std::optional<InfrastructureError> first_error;
  std::size_t answered = 0;
  for (const std::string& host : docker_hosts) {
    CleanReport part;
    try {
      require_docker_engine(seconds(20), host);
      ++answered;
      part = remove_compose_projects(compose_project_prefix(run_id), false, host);
    } catch (const InfrastructureError& error) {
      if (!first_error) first_error = error;
      std::vector<std::string> lines = util::split_lines(error.what());
      part.failed.push_back(
          fmt::format("engine: {}", lines.empty() ? std::string("no answer") : lines.front()));
    }
    for (const std::string& what : part.removed)
      report.removed.push_back(fmt::format("{} on {}", what, host));
    for (const std::string& what : part.failed) report.failed.push_back(fmt::format("{} on {}", what, host));
  }
  if (answered == 0) throw *first_error;
  return report;
}

}  // namespace testfleet::environments
