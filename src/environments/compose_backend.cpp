#include "environments/compose_backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <future>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include "environments/compose_engine.hpp"
#include "environments/compose_file.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/net.hpp"
#include "util/strings.hpp"

namespace testfleet::environments {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kLogLines = 20;

std::string tail_of(const std::string& output, std::size_t lines) {
  std::string tail(util::trim(util::tail_lines(output, lines)));
  return tail.empty() ? "(no output)" : tail;
}

// What prepare() learnt and made, shared read-only by every environment of the run.
struct ComposeRun {
  ComposeOptions options;
  ComposeCommand compose;
  ComposeModel model;
  std::filesystem::path project_directory;
  std::filesystem::path runtime_file;
  std::vector<std::string> sidecars;
  std::map<std::string, std::vector<std::uint16_t>> waits;  // service -> ports

  std::vector<std::string> command(const std::string& project, const std::vector<std::string>& args) const {
    std::vector<std::string> argv = compose.argv;
    argv.insert(argv.end(), {"-p", project, "-f", runtime_file.string(), "--project-directory",
                             project_directory.string()});
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  util::SpawnSpec spec(const std::string& project, const std::vector<std::string>& args,
                       const std::string& docker_host) const {
    return command_spec(command(project, args), project_directory, docker_host);
  }
};

// " on unix:///run/docker.sock" for messages, nothing for the one default engine.
std::string on_host(const std::string& docker_host) {
  return docker_host.empty() ? std::string() : " on " + docker_host;
}

class ComposeEnvironment : public Environment {
 public:
  ComposeEnvironment(std::shared_ptr<const ComposeRun> run, GroupSlot slot, std::string project,
                     std::vector<std::string> sidecars, std::string docker_host)
      : run_(std::move(run)),
        slot_(std::move(slot)),
        project_(std::move(project)),
        sidecars_(std::move(sidecars)),
        host_(std::move(docker_host)),
        label_(fmt::format("compose project {}{}", project_, on_host(host_))) {}

  ~ComposeEnvironment() override { teardown(); }

  std::string describe() const override {
    if (sidecars_.empty()) return fmt::format("{} ({} alone)", label_, run_->options.service);
    return fmt::format("{}: {}", label_, util::join(sidecars_, ", "));
  }

  std::string provisioning_state() const override {
    std::lock_guard lock(state_mutex_);
    if (state_.phase == Phase::kIdle) return {};
    auto elapsed = std::chrono::duration_cast<seconds>(Clock::now() - state_.since).count();
    if (state_.phase == Phase::kStarting) {
      return fmt::format("starting {} (compose up), {}s", util::join(sidecars_, ", "), elapsed);
    }
    return fmt::format("waiting for {} ({}), {}s of {}s", state_.service, state_.awaited, elapsed,
                       run_->options.ready_timeout.count());
  }

  void provision(const std::atomic<bool>& cancel) override {
    // Whichever way provision() ends, it is no longer doing anything the status could show.
    struct Idle {
      ComposeEnvironment& environment;
      ~Idle() { environment.set_state(Phase::kIdle); }
    } idle{*this};
    std::error_code error;
    std::filesystem::create_directories(slot_.group_reports_dir, error);
    if (error) {
      throw InfrastructureError(
          fmt::format("cannot create {}: {}", slot_.group_reports_dir.string(), error.message()));
    }
    torn_down_ = false;
    if (sidecars_.empty()) return;

    std::vector<std::string> up = {"up", "-d", "--no-build"};
    up.insert(up.end(), sidecars_.begin(), sidecars_.end());
    set_state(Phase::kStarting);
    CancellableResult started =
        run_cancellable(run_->spec(project_, up, host_), run_->options.ready_timeout + seconds(120), &cancel);
    if (started.cancelled) throw InfrastructureError(fmt::format("{}: cancelled", label_));
    if (!started.result.status.success()) {
      throw InfrastructureError(fmt::format("{}: `up` of {} failed ({}{}):\n{}", label_,
                                            util::join(sidecars_, ", "), started.result.status.describe(),
                                            started.result.timed_out ? ", timed out" : "",
                                            tail_of(started.result.output, 30)));
    }
    const Clock::time_point deadline = Clock::now() + run_->options.ready_timeout;
    set_state(Phase::kWaiting);
    for (const std::string& sidecar : sidecars_) await_service(sidecar, deadline, cancel);
  }

  util::EnvVars variables() const override { return {{"TESTFLEET_COMPOSE_PROJECT", project_}}; }

  std::vector<std::string> wrap_command(const std::vector<std::string>& argv,
                                        const util::EnvVars& variables) const override {
    std::vector<std::string> args = {
        "run", "--rm",
        "-T",  "--no-deps",
        "-v",  fmt::format("{}:{}", reports_dir().string(), run_->options.reports_mount.string())};
    for (const auto& [key, value] : variables) args.insert(args.end(), {"-e", key + "=" + value});
    args.push_back(run_->options.service);
    args.insert(args.end(), argv.begin(), argv.end());
    return with_docker_host(run_->command(project_, args), host_);
  }

  bool variables_in_host_environment() const override { return false; }
  bool sees_host_files() const override { return false; }

  std::filesystem::path path_inside(const std::filesystem::path& host_path) const override {
    std::filesystem::path relative =
        std::filesystem::absolute(host_path).lexically_normal().lexically_relative(reports_dir());
    if (relative.empty() || *relative.begin() == "..") return host_path;
    if (relative == ".") return run_->options.reports_mount;
    return run_->options.reports_mount / relative;
  }

  std::vector<std::string> problems() noexcept override {
    std::vector<std::string> found;
    if (torn_down_) return found;  // nothing was provisioned
    try {
      if (!docker_engine_answers(seconds(10), host_)) {
        found.push_back(fmt::format("{}: its Docker engine stopped answering during the run ({})", label_,
                                    docker_host_description(host_)));
        return found;
      }
      for (const std::string& sidecar : sidecars_) {
        for (const std::string& id : service_container_ids(project_, sidecar, host_)) {
          ContainerState state = inspect_container(id, host_);
          std::string name = state.name.empty() ? id.substr(0, 12) : state.name;
          if (state.status == "running" && state.health != "unhealthy") continue;
          std::string what = state.status == "running"
                                 ? std::string("became unhealthy")
                                 : fmt::format("{} with code {}", state.status == "dead" ? "died" : "exited",
                                               state.exit_code);
          found.push_back(fmt::format("sidecar {} (container {}) {} during the run; its last log lines:\n{}",
                                      sidecar, name, what, container_log_tail(id, 10, host_)));
        }
      }
    } catch (const std::exception& error) {
      found.push_back(fmt::format("{}: cannot inspect its sidecars: {}", label_, error.what()));
    }
    return found;
  }

  std::vector<std::string> teardown() noexcept override {
    if (torn_down_) return {};
    std::vector<std::string> leftovers;
    try {
      CancellableResult down = run_cancellable(
          run_->spec(
              project_,
              {"down", "-v", "--remove-orphans", "-t", std::to_string(run_->options.stop_timeout.count())},
              host_),
          seconds(180), nullptr);
      // Whatever `down` missed (a `run` container it did not know, a failed `down`) goes by its label.
      CleanReport swept = remove_compose_projects(project_, true, host_);
      leftovers = swept.failed;
      if (!down.result.status.success() && !leftovers.empty()) {
        leftovers.push_back(fmt::format("{}: `down` failed ({}): {}", label_, down.result.status.describe(),
                                        tail_of(down.result.output, 5)));
      }
    } catch (const std::exception& error) {
      leftovers.push_back(fmt::format("{}: {}", label_, error.what()));
    }
    torn_down_ = leftovers.empty();
    return leftovers;
  }

 private:
  enum class Phase { kIdle, kStarting, kWaiting };
  // What provision() is doing, read by provisioning_state() from another thread.
  struct ProvisioningState {
    Phase phase = Phase::kIdle;
    Clock::time_point since;  // of the phase: the wait began with the deadline
    std::string service;      // the sidecar waited for
    std::string awaited;      // what of it: "healthcheck", "port 6379", ...
  };

  void set_state(Phase phase) {
    std::lock_guard lock(state_mutex_);
    state_ = ProvisioningState{phase, Clock::now(), {}, {}};
  }

  void set_awaited(const std::string& service, std::string awaited) {
    std::lock_guard lock(state_mutex_);
    state_.service = service;
    state_.awaited = std::move(awaited);
  }

  std::filesystem::path reports_dir() const {
    return std::filesystem::absolute(slot_.run_reports_dir).lexically_normal();
  }

  [[noreturn]] void fail_not_ready(const std::string& service, const ContainerState& state,
                                   const std::string& id, const std::string& problem) const {
    throw InfrastructureError(
        fmt::format("{}: sidecar {} (container {}) not ready after {} (--ready-timeout): {}\nits last log "
                    "lines:\n{}",
                    label_, service, state.name.empty() ? id.substr(0, 12) : state.name,
                    util::format_duration(static_cast<double>(run_->options.ready_timeout.count())), problem,
                    container_log_tail(id, kLogLines, host_)));
  }

  void check_cancel(const std::atomic<bool>& cancel) const {
    if (cancel.load()) throw InfrastructureError(fmt::format("{}: cancelled", label_));
  }

  // The container's address as seen from this host: on the project's network, or loopback for host mode.
  std::string address_of(const ContainerState& state) const {
    if (state.network_mode == "host") return "127.0.0.1";
    const std::string preferred = project_ + "_default";
    for (const auto& [network, address] : state.networks) {
      if (network == preferred && !address.empty()) return address;
    }
    for (const auto& [network, address] : state.networks) {
      if (!address.empty()) return address;
    }
    return {};
  }

  void await_service(const std::string& service, Clock::time_point deadline,
                     const std::atomic<bool>& cancel) {
    std::vector<std::string> ids;
    set_awaited(service, "no container yet");
    while (true) {
      ids = service_container_ids(project_, service, host_);
      if (!ids.empty()) break;
      check_cancel(cancel);
      if (Clock::now() >= deadline) {
        throw InfrastructureError(fmt::format("{}: `up` left no container for sidecar {}", label_, service));
      }
      std::this_thread::sleep_for(milliseconds(200));
    }
    for (const std::string& id : ids) await_container(service, id, deadline, cancel);
  }

  void await_container(const std::string& service, const std::string& id, Clock::time_point deadline,
                       const std::atomic<bool>& cancel) {
    const ComposeService* spec = run_->model.find(service);
    std::set<std::uint16_t> explicit_ports;
    if (auto it = run_->waits.find(service); it != run_->waits.end()) {
      explicit_ports.insert(it->second.begin(), it->second.end());
    }
    std::set<std::uint16_t> open;
    std::string problem = "not started";
    while (true) {
      ContainerState state = inspect_container(id, host_);
      if (state.status == "exited" || state.status == "dead") {
        problem = fmt::format("it {} with exit code {}", state.status, state.exit_code);
        fail_not_ready(service, state, id, problem);
      }
      // Docker has given up on it: waiting longer cannot help (compose's own service_healthy fails here too).
      if (state.status == "running" && state.health == "unhealthy") {
        fail_not_ready(service, state, id, "its healthcheck failed: Docker reports it unhealthy");
      }
      if (state.status == "running") {
        bool healthy = state.health.empty() || state.health == "healthy";
        if (!healthy) {
          problem = "its healthcheck says " + state.health;
          set_awaited(service, "healthcheck");
        }
        std::set<std::uint16_t> ports = explicit_ports;
        if (state.health.empty()) {
          const std::vector<std::uint16_t>& declared =
              spec != nullptr && !spec->tcp_ports.empty() ? spec->tcp_ports : state.exposed_tcp_ports;
          ports.insert(declared.begin(), declared.end());
        }
        if (healthy && ports_open(service, state, ports, open, deadline, &problem)) return;
      } else {
        problem = "its status is " + state.status;
        set_awaited(service, "container " + state.status);
      }
      check_cancel(cancel);
      if (Clock::now() >= deadline) fail_not_ready(service, state, id, problem);
      std::this_thread::sleep_for(std::min<Clock::duration>(milliseconds(250), deadline - Clock::now()));
    }
  }

  bool ports_open(const std::string& service, const ContainerState& state,
                  const std::set<std::uint16_t>& ports, std::set<std::uint16_t>& open,
                  Clock::time_point deadline, std::string* problem) {
    if (ports.empty()) return true;
    std::string address = address_of(state);
    if (address.empty()) {
      *problem = "it has no address on the project network";
      set_awaited(service, "an address on the project network");
      return false;
    }
    for (std::uint16_t port : ports) {
      if (open.count(port) != 0) continue;
      set_awaited(service, fmt::format("port {}", port));
      std::string error;
      Clock::time_point attempt = std::min(deadline, Clock::now() + seconds(2));
      if (!util::can_connect(util::Endpoint{address, port}, attempt, &error)) {
        *problem = fmt::format("port {} on {}: {}", port, address, error);
        return false;
      }
      open.insert(port);
    }
    return true;
  }

  std::shared_ptr<const ComposeRun> run_;
  GroupSlot slot_;
  std::string project_;
  std::vector<std::string> sidecars_;
  std::string host_;       // its engine's DOCKER_HOST; empty: the default one
  std::string label_;      // "compose project P[ on HOST]"
  bool torn_down_ = true;  // nothing to remove until provision() starts something
  mutable std::mutex state_mutex_;
  ProvisioningState state_;
};

class ComposeBackend : public Backend {
 public:
  explicit ComposeBackend(ComposeOptions options) : options_(std::move(options)) {
    if (options_.files.empty()) throw UsageError("--compose needs a compose file");
    if (options_.service.empty()) {
      throw UsageError("--compose needs --service: the compose service the tests run in");
    }
    for (const std::string& wait : options_.waits) waits_.push_back(parse_wait_target(wait));
    if (!options_.reports_mount.is_absolute()) {
      throw UsageError(
          fmt::format("the reports mount '{}' must be an absolute path", options_.reports_mount.string()));
    }
    for (const std::string& host : options_.docker_hosts) {
      check_docker_host(host);
      if (std::find(hosts_.begin(), hosts_.end(), host) != hosts_.end()) {
        throw UsageError(fmt::format("docker host {} is given twice", host));
      }
      hosts_.push_back(host);
    }
    if (hosts_.empty()) hosts_.emplace_back();
  }

  ~ComposeBackend() override { finish(); }

  std::string name() const override { return "compose"; }

  std::string describe() const override {
    if (!run_) return {};
    std::vector<std::string> engines;
    for (const std::string& host : hosts_) engines.push_back(docker_host_description(host));
    return fmt::format("{} {} (compose v{}), {}", util::shell_join(run_->compose.argv), run_->compose.version,
                       run_->compose.major_version, util::join(engines, ", "));
  }

  void prepare(const std::atomic<bool>& cancel) override {
    auto run = std::make_shared<ComposeRun>();
    run->options = options_;
    run->compose = detect_compose_command(options_.compose_command);
    capacities_ = engine_capacities();

    std::vector<std::string> file_args;
    std::vector<std::string> file_names;
    for (const std::filesystem::path& file : options_.files) {
      std::filesystem::path absolute = std::filesystem::absolute(file).lexically_normal();
      if (!std::filesystem::is_regular_file(absolute)) {
        throw UsageError(fmt::format("compose file {} does not exist", file.string()));
      }
      file_args.insert(file_args.end(), {"-f", absolute.string()});
      file_names.push_back(file.string());
    }
    run->project_directory =
        std::filesystem::absolute(options_.files.front()).lexically_normal().parent_path();
    const std::string origin = util::join(file_names, ", ");

    // `config` resolves what compose itself would run: interpolation, .env, extends, several -f files.
    std::vector<std::string> config = run->compose.argv;
    config.insert(config.end(), file_args.begin(), file_args.end());
    // v2 leaves the services of inactive profiles out of `config`; a sidecar asked for by name is started
    // whatever its profile, so the model must have them all (v1 lists them anyway).
    if (run->compose.major_version >= 2) config.insert(config.end(), {"--profile", "*"});
    config.insert(config.end(), {"--project-directory", run->project_directory.string(), "config"});
    CancellableResult resolved =
        run_cancellable(command_spec(config, run->project_directory, hosts_.front()), seconds(120), &cancel);
    if (resolved.cancelled) throw InfrastructureError("cancelled while reading the compose files");
    if (!resolved.result.status.success()) {
      // v2 refuses a file without services outright, where v1 reads it and we name the missing service.
      if (resolved.result.output.find("empty compose file") != std::string::npos) {
        throw UsageError(fmt::format("{} defines no services, so it has no service '{}' (the test service)",
                                     origin, options_.service));
      }
      throw UsageError(fmt::format("{} is not a valid compose project (`{}` failed, {}):\n{}", origin,
                                   util::shell_join(config), resolved.result.status.describe(),
                                   tail_of(resolved.result.output, 20)));
    }
    const std::string yaml = strip_compose_warnings(resolved.result.output);
    run->model = parse_compose_model(yaml, origin);

    run->sidecars = select_sidecars(run->model, options_.service, options_.sidecars);
    for (const WaitTarget& wait : waits_) {
      if (run->model.find(wait.service) == nullptr) {
        throw UsageError(fmt::format("--wait {}:{}: {} has no service '{}'; its services: {}", wait.service,
                                     wait.port, origin, wait.service,
                                     util::join(run->model.service_names(), ", ")));
      }
      if (wait.service == options_.service) {
        throw UsageError(fmt::format("--wait {}:{}: '{}' is the test service itself, not a sidecar",
                                     wait.service, wait.port, wait.service));
      }
      if (std::find(run->sidecars.begin(), run->sidecars.end(), wait.service) == run->sidecars.end()) {
        throw UsageError(fmt::format("--wait {}:{}: '{}' is not started for the tests; the sidecars are: {}",
                                     wait.service, wait.port, wait.service, util::join(run->sidecars, ", ")));
      }
      run->waits[wait.service].push_back(wait.port);
    }

    std::vector<std::string> roots = run->sidecars;
    roots.push_back(options_.service);
    const std::vector<std::string> needed = with_dependencies(run->model, roots);
    std::map<std::string, std::string> renamed;  // built services without an image name of their own
    std::vector<std::pair<std::string, std::string>> images;  // (service, image) of every needed service
    for (const std::string& name : needed) {
      const ComposeService& service = *run->model.find(name);
      std::string image = service.image;
      if (service.builds && image.empty()) {
        image = runtime_image_name(options_.files.front(), name);
        renamed[name] = image;
      }
      images.emplace_back(name, image);
    }

    state_dir_.emplace("testfleet-compose-");
    run->runtime_file = state_dir_->path() / "compose.yml";
    util::write_file_atomic(run->runtime_file, render_runtime_compose(yaml, renamed, origin));

    provide_images(*run, images, cancel);
    run_ = std::move(run);
  }

  std::unique_ptr<Environment> discovery_environment(const GroupSlot& slot) override {
    return std::make_unique<ComposeEnvironment>(prepared(slot), slot,
                                                compose_project_name(slot.run_id, "collect"),
                                                std::vector<std::string>{}, hosts_.front());
  }

  std::unique_ptr<Environment> create(const GroupSlot& slot) override {
    std::size_t host = 0;
    if (slot.index >= 1) {
      host = assign_groups_to_hosts(std::max(slot.count, slot.index), capacities_)
                 .at(static_cast<std::size_t>(slot.index - 1));
    }
    return std::make_unique<ComposeEnvironment>(
        prepared(slot), slot, compose_project_name(slot.run_id, fmt::format("g{}", slot.index)),
        run_->sidecars, hosts_[host]);
  }

  std::vector<std::filesystem::path> private_dirs() const override {
    if (!state_dir_) return {};
    return {state_dir_->path()};
  }

  std::vector<std::string> finish() noexcept override {
    std::vector<std::string> leftovers;
    std::lock_guard lock(mutex_);
    // A safety net for environments whose teardown was never reached.
    for (const std::string& run_id : run_ids_) {
      for (const std::string& host : hosts_) {
        try {
          CleanReport report = remove_compose_projects(compose_project_prefix(run_id), false, host);
          for (const std::string& what : report.failed) leftovers.push_back(what + on_host(host));
        } catch (const std::exception& error) {
          leftovers.push_back(error.what());
        }
      }
    }
    run_ids_.clear();
    if (state_dir_ && !state_dir_->remove()) {
      leftovers.push_back("directory " + state_dir_->path().string());
    } else {
      state_dir_.reset();
    }
    return leftovers;
  }

 private:
  std::shared_ptr<const ComposeRun> prepared(const GroupSlot& slot) {
    if (!run_) throw std::logic_error("ComposeBackend: prepare() must run before environments are created");
    std::lock_guard lock(mutex_);
    run_ids_.insert(slot.run_id);
    return run_;
  }

  // Every engine must answer before anything is built; their CPU counts decide their shares of the groups.
  std::vector<int> engine_capacities() const {
    if (hosts_.size() == 1) {
      require_docker_engine(seconds(20), hosts_.front());
      return {1};
    }
    std::vector<std::future<int>> answers;
    for (const std::string& host : hosts_) {
      answers.push_back(std::async(std::launch::async, [host] {
        require_docker_engine(seconds(20), host);
        return docker_engine_cpus(host);
      }));
    }
    std::vector<int> capacities;
    std::optional<InfrastructureError> failed;
    for (std::future<int>& answer : answers) {
      try {
        capacities.push_back(answer.get());
      } catch (const InfrastructureError& error) {
        if (!failed) failed = error;
      }
    }
    if (failed) throw *failed;
    return capacities;
  }

  // Builds (or pulls) the images on every engine, the engines in parallel. The first failure stops the
  // other engines' builds: the run cannot start anyway.
  void provide_images(const ComposeRun& run, const std::vector<std::pair<std::string, std::string>>& images,
                      const std::atomic<bool>& cancel) {
    if (hosts_.size() == 1) {
      provide_images_on(run, images, hosts_.front(), cancel);
      return;
    }
    std::atomic<bool> stop{false};
    std::vector<std::future<void>> builds;
    for (const std::string& host : hosts_) {
      builds.push_back(std::async(std::launch::async, [&, host] {
        try {
          provide_images_on(run, images, host, stop);
        } catch (...) {
          stop = true;
          throw;
        }
      }));
    }
    for (std::future<void>& build : builds) {
      while (build.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
        if (cancel.load()) stop = true;
      }
    }
    // The first real failure, not the "cancelled" of an engine that was stopped because of it.
    std::optional<std::string> failure;
    std::optional<std::string> cancelled;
    for (std::size_t h = 0; h < builds.size(); ++h) {
      try {
        builds[h].get();
      } catch (const Error& error) {
        std::string message = fmt::format("{}: {}", hosts_[h], error.what());
        bool was_stopped = util::starts_with(error.what(), "cancelled");
        if (was_stopped && !cancelled) cancelled = message;
        if (!was_stopped && !failure) {
          if (error.code() == ExitCode::kUsage) throw UsageError(message);
          failure = message;
        }
      }
    }
    if (failure) throw InfrastructureError(*failure);
    if (cancelled) throw InfrastructureError(*cancelled);
  }

  void provide_images_on(const ComposeRun& run,
                         const std::vector<std::pair<std::string, std::string>>& images,
                         const std::string& host, const std::atomic<bool>& cancel) const {
    for (const auto& [name, image] : images) {
      const ComposeService& service = *run.model.find(name);
      if (service.builds && !options_.no_build) {
        build(run, name, host, cancel);
      } else if (!image_exists(image, host)) {
        if (service.builds) {
          throw InfrastructureError(
              fmt::format("image {} of service {} does not exist{}: run once without "
                          "--no-build to build it",
                          image, name, on_host(host)));
        }
        pull(run, name, image, host, cancel);
      }
    }
  }

  void build(const ComposeRun& run, const std::string& service, const std::string& host,
             const std::atomic<bool>& cancel) const {
    // v1's classic builder keeps the containers of failed steps unless told otherwise.
    std::vector<std::string> args = {"build"};
    if (run.compose.major_version == 1) args.push_back("--force-rm");
    args.push_back(service);
    CancellableResult built =
        run_cancellable(run.spec("testfleet-build", args, host), options_.build_timeout, &cancel);
    if (built.cancelled)
      throw InfrastructureError(fmt::format("cancelled while building service {}", service));
    if (!built.result.status.success()) {
      throw InfrastructureError(fmt::format("building the image of service {} ({}) failed ({}{}):\n{}",
                                            service, run.model.origin, built.result.status.describe(),
                                            built.result.timed_out ? ", timed out" : "",
                                            tail_of(built.result.output, 30)));
    }
  }

  void pull(const ComposeRun& run, const std::string& service, const std::string& image,
            const std::string& host, const std::atomic<bool>& cancel) const {
    CancellableResult pulled = run_cancellable(run.spec("testfleet-build", {"pull", service}, host),
                                               options_.build_timeout, &cancel);
    if (pulled.cancelled) throw InfrastructureError(fmt::format("cancelled while pulling {}", image));
    if (!pulled.result.status.success() || !image_exists(image, host)) {
      throw InfrastructureError(
          fmt::format("image {} of service {} is not on the Docker engine ({}) and "
                      "pulling it failed:\n{}",
                      image, service, docker_host_description(host), tail_of(pulled.result.output, 10)));
    }
  }

  static bool image_exists(const std::string& image, const std::string& host) {
    return run_docker({"image", "inspect", "--format", "{{.Id}}", image}, seconds(60), host).status.success();
  }

  ComposeOptions options_;
  std::vector<WaitTarget> waits_;
  std::vector<std::string> hosts_;  // never empty; {""}: the default engine
  std::vector<int> capacities_;     // one per host, from prepare()
  std::shared_ptr<const ComposeRun> run_;
  std::optional<util::TempDir> state_dir_;
  std::mutex mutex_;  // environments may be created from several threads
  std::set<std::string> run_ids_;
};

}  // namespace

std::vector<std::size_t> assign_groups_to_hosts(int count, const std::vector<int>& capacities) {
  if (capacities.empty()) throw std::invalid_argument("assign_groups_to_hosts: no hosts");
  // Integer weights, so that equal capacities give exactly equal shares: a known capacity c weighs
  // c * known, an unknown one the sum of the known (their mean, scaled the same way).
  std::int64_t known = 0;
  std::int64_t known_sum = 0;
  for (int capacity : capacities) {
    if (capacity > 0) {
      ++known;
      known_sum += capacity;
    }
  }
  std::vector<std::int64_t> weights;
  for (int capacity : capacities) {
    weights.push_back(known == 0 ? 1 : capacity > 0 ? capacity * known : known_sum);
  }
  const std::int64_t total = std::accumulate(weights.begin(), weights.end(), std::int64_t{0});
  const std::int64_t groups = std::max(count, 0);
  std::vector<std::int64_t> shares;
  std::vector<std::int64_t> remainders;
  std::int64_t given = 0;
  for (std::int64_t weight : weights) {
    shares.push_back(groups * weight / total);
    remainders.push_back(groups * weight % total);
    given += shares.back();
  }
  std::vector<std::size_t> order(capacities.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return remainders[a] > remainders[b]; });
  for (std::size_t i = 0; given < groups; ++i, ++given) ++shares[order[i % order.size()]];

  std::vector<std::size_t> hosts;
  for (std::size_t h = 0; h < shares.size(); ++h)
    hosts.insert(hosts.end(), static_cast<std::size_t>(shares[h]), h);
  return hosts;
}

std::unique_ptr<Backend> make_compose_backend(ComposeOptions options) {
  return std::make_unique<ComposeBackend>(std::move(options));
}

}  // namespace testfleet::environments
