#include "environments/native_backend.hpp"

#include <fmt/format.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>

#include "environments/native_postgres.hpp"
#include "environments/native_server.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/secrets.hpp"
#include "util/strings.hpp"

namespace testfleet::environments {
namespace {

std::string made_up_run_id() {
  auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  return fmt::format("{}-{}", seconds.count(), ::getpid());
}

std::string path_part(std::string_view text) {
  std::string out;
  for (char c : text) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    out.push_back(ok ? c : '_');
  }
  // Short: PostgreSQL's socket path below this directory must stay within 107 bytes.
  return out.substr(0, 16);
}

// What all environments of a run share; they hold it, so it lives until the last of them is gone.
struct NativeRun {
  explicit NativeRun(NativeOptions options_in) : options(std::move(options_in)) {}
  // The last owner may be an environment that outlived the backend: whoever goes last cleans up.
  ~NativeRun() {
    if (run_dir && run_dir->remove()) run_dir.reset();
    if (state && !run_dir && state->server_count() == 0) state->remove();
  }
  NativeRun(const NativeRun&) = delete;
  NativeRun& operator=(const NativeRun&) = delete;

  NativeOptions options;
  bool prepared = false;
  std::optional<util::TempDir> run_dir;
  std::unique_ptr<RunStateFile> state;
  ServerUser unprivileged;                                 // for services with `unprivileged`
  std::map<std::string, std::filesystem::path> programs;   // service name -> its command's program
  std::map<std::string, std::filesystem::path> templates;  // postgres service name -> template data dir
  // The templates' password: known to testfleet alone, replaced in every group's copy (native_postgres.hpp).
  std::string template_secret;
  SpawnThread spawner;
};

std::filesystem::path resolve_program(const ServiceSpec& spec, const NativeOptions& options) {
  const std::string& word = spec.command.front();
  const char* our_path = std::getenv("PATH");
  std::string path = !options.search_path.empty() ? options.search_path : our_path != nullptr ? our_path : "";
  if (spec.kind == ServiceKind::kPostgres && word.find('/') == std::string::npos) {
    std::optional<std::filesystem::path> bindir = find_postgres_bindir(options.postgres_roots, path);
    if (!bindir) {
      throw InfrastructureError(fmt::format(
          "{}: PostgreSQL server programs (postgres, initdb) not found in {}/*/bin, by pg_config --bindir or "
          "on "
          "PATH; install the Debian package {}",
          spec.name,
          options.postgres_roots.empty() ? "/usr/lib/postgresql" : options.postgres_roots.front().string(),
          spec.package.empty() ? "postgresql" : spec.package));
    }
    if (std::optional<std::filesystem::path> found = util::find_executable((*bindir / word).string(), ""))
      return *found;
  }
  if (std::optional<std::filesystem::path> found = util::find_executable(word, path)) return *found;
  std::string where = word.find('/') != std::string::npos ? "no such executable file" : "not found on PATH";
  std::string hint = spec.package.empty() ? "" : fmt::format("; install the Debian package {}", spec.package);
  throw InfrastructureError(fmt::format("{}: {} {}{}", spec.name, util::shell_quote(word), where, hint));
}

// Where the servers' data goes when the caller did not say. A PostgreSQL cluster is a thousand files; four
// groups copying theirs at once into a disk-backed /tmp spend about a second in the kernel on this kind of
// machine, against a tenth of that into memory. So: TESTFLEET_SERVER_DIR when set, else TMPDIR when set (the
// user chose where temporary files go), else /dev/shm when it is a writable tmpfs with room to spare, else
// /tmp.
std::filesystem::path default_server_parent() {
  if (const char* dir = std::getenv("TESTFLEET_SERVER_DIR"); dir != nullptr && *dir != '\0') return dir;
  if (const char* dir = std::getenv("TMPDIR"); dir != nullptr && *dir != '\0') return dir;
  constexpr unsigned long long kRoomNeeded = 512ULL << 20;
  struct statfs fs {};
  if (::statfs("/dev/shm", &fs) == 0 && fs.f_type == TMPFS_MAGIC && ::access("/dev/shm", W_OK | X_OK) == 0 &&
      static_cast<unsigned long long>(fs.f_bavail) * static_cast<unsigned long long>(fs.f_bsize) >=
          kRoomNeeded) {
    return "/dev/shm";
  }
  return util::default_temp_parent();
}

class NativeEnvironment : public Environment {
 public:
  NativeEnvironment(std::shared_ptr<NativeRun> run, GroupSlot slot)
      : run_(std::move(run)), slot_(std::move(slot)) {}
  ~NativeEnvironment() override { teardown(); }

  std::vector<std::string> secrets() const override {
    std::lock_guard<std::mutex> lock(secrets_mutex_);
    return secrets_;
  }

  std::string describe() const override {
    std::vector<std::string> parts;
    if (ready_.load()) {
      for (const std::unique_ptr<Server>& server : servers_) parts.push_back(server->describe());
    } else {
      for (const ServiceSpec& spec : run_->options.services) parts.push_back(spec.name);
    }
    return parts.empty() ? "no services" : util::join(parts, ", ");
  }

  void provision(const std::atomic<bool>& cancel) override {
    if (!run_->prepared) throw InfrastructureError("native backend: provision() before prepare()");
    try {
      start_all(cancel);
      for (const std::unique_ptr<Server>& server : servers_) server->wait_ready(cancel);
    } catch (...) {
      teardown();
      throw;
    }
    ready_ = true;
  }

  util::EnvVars variables() const override {
    util::EnvVars out;
    if (!ready_.load()) return out;
    for (const std::unique_ptr<Server>& server : servers_) {
      for (auto& [name, value] : server->variables()) out[name] = std::move(value);
    }
    return out;
  }

  std::vector<std::string> problems() noexcept override {
    std::vector<std::string> found;
    if (!ready_.load()) return found;
    for (const std::unique_ptr<Server>& server : servers_) {
      try {
        if (std::optional<std::string> ended = server->ended_early()) found.push_back(std::move(*ended));
      } catch (const std::exception& error) {
        found.push_back(
            fmt::format("{}: cannot tell whether it still runs: {}", server->describe(), error.what()));
      }
    }
    return found;
  }

  std::vector<std::string> teardown() noexcept override {
    ready_ = false;
    std::vector<std::string> failures;
    // Last started, first stopped: a service may depend on one started before it.
    for (auto it = servers_.rbegin(); it != servers_.rend(); ++it) {
      for (std::string& failure : (*it)->stop()) failures.push_back(std::move(failure));
    }
    servers_.clear();
    if (group_dir_) {
      std::string path = group_dir_->path().string();
      if (group_dir_->remove()) {
        group_dir_.reset();
      } else {
        failures.push_back(fmt::format("cannot remove {}", path));
      }
    }
    return failures;
  }

 private:
  void start_all(const std::atomic<bool>& cancel) {
    group_dir_.emplace(fmt::format("group-{}-", slot_.index), run_->run_dir->path());
    make_owned_dir(group_dir_->path(), ServerUser{}, 0711);
    for (const ServiceSpec& spec : run_->options.services) {
      if (cancel.load())
        throw InfrastructureError(fmt::format("group {}: provisioning cancelled", slot_.index));
      ServerSetup setup;
      setup.spec = &spec;
      setup.program = run_->programs.at(spec.name);
      setup.dir = group_dir_->path() / spec.name;
      setup.log_file = group_dir_->path() / (spec.name + ".log");
      setup.group = slot_.index;
      setup.run_id = slot_.run_id.empty() ? run_->options.run_id : slot_.run_id;
      setup.secret = util::random_secret();
      {
        std::lock_guard<std::mutex> lock(secrets_mutex_);
        secrets_.push_back(setup.secret);
      }
      if (spec.kind == ServiceKind::kPostgres) setup.inherited_secret = run_->template_secret;
      setup.user = spec.unprivileged ? run_->unprivileged : ServerUser{};
      setup.spawner = &run_->spawner;
      setup.state = run_->state.get();
      setup.port_attempts = run_->options.port_attempts;
      setup.stop_grace = run_->options.stop_grace;
      make_owned_dir(setup.dir, setup.user, 0700);
      if (spec.kind == ServiceKind::kPostgres)
        copy_data_dir(run_->templates.at(spec.name), setup.dir / "data", setup.user);
      servers_.push_back(std::make_unique<Server>(std::move(setup)));
      servers_.back()->start();
    }
  }

  std::shared_ptr<NativeRun> run_;
  GroupSlot slot_;
  std::optional<util::TempDir> group_dir_;
  std::vector<std::unique_ptr<Server>> servers_;
  // Set between a successful provision() and teardown(): only then may describe() and variables(), which a
  // progress display calls from another thread, read the servers.
  std::atomic<bool> ready_{false};
  // Every secret handed to a server of this environment, kept after teardown for masking.
  mutable std::mutex secrets_mutex_;
  std::vector<std::string> secrets_;
};

class NativeBackend : public Backend {
 public:
  explicit NativeBackend(NativeOptions options) : run_(std::make_shared<NativeRun>(std::move(options))) {
    if (run_->options.run_id.empty()) run_->options.run_id = made_up_run_id();
  }
  ~NativeBackend() override { finish(); }

  std::string name() const override { return "native"; }

  void prepare(const std::atomic<bool>& cancel) override {
    if (run_->prepared) return;
    NativeRun& run = *run_;
    try {
      // Every program first: a missing one should fail the run before anything is created.
      bool any_unprivileged = false;
      for (const ServiceSpec& spec : run.options.services) {
        run.programs[spec.name] = resolve_program(spec, run.options);
        any_unprivileged = any_unprivileged || spec.unprivileged;
      }
      if (any_unprivileged) run.unprivileged = unprivileged_user(run.options.passwd_file);

      std::filesystem::path parent =
          run.options.temp_parent.empty() ? default_server_parent() : run.options.temp_parent;
      run.run_dir.emplace(fmt::format("testfleet-native-{}-", path_part(run.options.run_id)), parent);
      run.state = std::make_unique<RunStateFile>(run.options.state_dir, run.options.run_id);
      run.state->add_dir(run.run_dir->path());
      make_owned_dir(run.run_dir->path(), ServerUser{}, 0711);
      if (any_unprivileged) check_reachable(run.run_dir->path(), run.unprivileged);

      run.template_secret = util::random_secret();
      for (const ServiceSpec& spec : run.options.services) {
        if (spec.kind != ServiceKind::kPostgres) continue;
        std::filesystem::path data_dir = run.run_dir->path() / ("template-" + spec.name);
        std::filesystem::path bindir = run.programs.at(spec.name).parent_path();
        make_postgres_template(bindir, data_dir, spec.unprivileged ? run.unprivileged : ServerUser{},
                               run.template_secret, cancel);
        run.templates[spec.name] = data_dir;
      }
    } catch (...) {
      finish();
      throw;
    }
    run.prepared = true;
  }

  std::unique_ptr<Environment> discovery_environment(const GroupSlot&) override {
    return std::make_unique<HostEnvironment>();
  }

  std::unique_ptr<Environment> create(const GroupSlot& slot) override {
    return std::make_unique<NativeEnvironment>(run_, slot);
  }

  std::vector<std::string> finish() noexcept override {
    std::vector<std::string> failures;
    NativeRun& run = *run_;
    run.prepared = false;
    std::size_t running = run.state ? run.state->server_count() : 0;
    if (running > 0) {
      // Removing the directories under live servers would break them; the last environment's
      // destructor (or `testfleet clean`) removes them.
      failures.push_back(fmt::format("{} server(s) still running in groups not torn down; state in {}",
                                     running, run.state->path().string()));
      return failures;
    }
    run.templates.clear();
    if (run.run_dir) {
      std::string path = run.run_dir->path().string();
      if (run.run_dir->remove()) {
        run.run_dir.reset();
      } else {
        failures.push_back(fmt::format("cannot remove {}", path));
      }
    }
    // The state file stays as long as something it names does, for `testfleet clean`.
    if (run.state && !run.run_dir && !run.state->remove()) {
      failures.push_back(fmt::format("cannot remove {}", run.state->path().string()));
    }
    return failures;
  }

 private:
  std::shared_ptr<NativeRun> run_;
};

}  // namespace

std::unique_ptr<Backend> make_native_backend(NativeOptions options) {
  for (ServiceSpec& spec : options.services) spec = with_listen_mode(std::move(spec), options.listen);
  check_services(options.services);
  for (const ServiceSpec& spec : options.services) {
    if (spec.command.empty()) throw UsageError(fmt::format("service '{}' has no command", spec.name));
  }
  return std::make_unique<NativeBackend>(std::move(options));
}

}  // namespace testfleet::environments
