// One server of one group, from start to stop: its ports, its process, its readiness and its log.
//
// Servers must die with testfleet even when it is SIGKILLed, so they are spawned with PR_SET_PDEATHSIG.
// That signal fires when the *thread* that forked the child exits, not the process, and groups are
// provisioned from short-lived threads: every server is therefore forked by one SpawnThread that lives
// as long as the backend.
//
// Every server has a secret of its own ({secret}), and only the group's variables carry it. A built-in
// server is not ready until it demands that secret: Redis reads it from {dir}/redis.conf (mode 0600), and
// readiness is an AUTH with it followed by PING; PostgreSQL starts with the run's template password, known
// to testfleet alone, and is given the group's once it answers (native_postgres.hpp). A password is sent only
// to a port known to be held by the server's own process group, never to whoever took the port in a race,
// and every message a Server makes (log tails included) has its secrets masked.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "environments/native_state.hpp"
#include "environments/service_spec.hpp"
#include "util/net.hpp"
#include "util/subprocess.hpp"

namespace testfleet::environments {

// Who a server runs as: ourselves (no uid), or the `postgres` system user, else `nobody`, for a service
// that must not run as root when we are root.
struct ServerUser {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::string name;  // for messages; empty for ourselves
};

// Read from `passwd_file` rather than through NSS, which a static binary cannot load. Ourselves when we are
// not root. Throws InfrastructureError when root and neither user exists.
ServerUser unprivileged_user(const std::filesystem::path& passwd_file = "/etc/passwd");

// Creates `dir` (mode `mode`) and hands it to `user`. Throws InfrastructureError naming the directory.
void make_owned_dir(const std::filesystem::path& dir, const ServerUser& user, unsigned mode);

// Forks every server from one long-lived thread (see the top of this file).
class SpawnThread {
 public:
  SpawnThread();
  ~SpawnThread();
  SpawnThread(const SpawnThread&) = delete;
  SpawnThread& operator=(const SpawnThread&) = delete;

  // Process::spawn on the spawning thread; its exceptions come back here.
  util::Process spawn(const util::SpawnSpec& spec);

 private:
  void loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<util::Process()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // last: it starts running in the constructor
};

// Where a server listens: a TCP port of 127.0.0.1, or a Unix socket.
struct ServerAddress {
  std::uint16_t port = 0;
  std::filesystem::path socket;  // when set, instead of the port
  // "127.0.0.1:41234", or the socket's path
  std::string text() const;
};

std::optional<util::StreamConnection> connect_to(const ServerAddress& address,
                                                 util::Clock::time_point deadline, std::string* error);

struct ProbeResult {
  bool ready = false;
  std::string detail;  // why not: "connection refused", "the database system is starting up"
  bool final = false;  // asking again cannot help: the server refuses the credentials
};

ProbeResult probe_tcp(const ServerAddress& address, util::Clock::time_point deadline);
// A startup message of the PostgreSQL wire protocol (v3.0, user postgres): an authentication request or any
// error but 57P03 "the database system is starting up" means the server accepts connections, as pg_isready
// decides.
ProbeResult probe_postgres(const ServerAddress& address, util::Clock::time_point deadline);
// Without a password, PING: +PONG (or -NOAUTH, a server that wants a password) is ready; -LOADING is not
// yet. With one, AUTH then PING: ready on +OK and +PONG; an AUTH refused is final.
ProbeResult probe_redis(const ServerAddress& address, util::Clock::time_point deadline,
                        std::string_view password = {});

// What a server needs from its group and its run.
struct ServerSetup {
  const ServiceSpec* spec = nullptr;
  std::filesystem::path program;   // the command's first word, resolved
  std::filesystem::path dir;       // {dir}: private, exists, owned by `user`
  std::filesystem::path log_file;  // the server's stdout and stderr
  int group = 0;
  std::string run_id;
  std::string secret;  // {secret}
  // PostgreSQL: the password its data directory came with (the template's), replaced by `secret` once the
  // server answers.
  std::string inherited_secret;
  ServerUser user;  // empty: ourselves
  SpawnThread* spawner = nullptr;
  RunStateFile* state = nullptr;  // may be null
  int port_attempts = 3;
  std::chrono::milliseconds stop_grace{5000};
};

class Server {
 public:
  explicit Server(ServerSetup setup);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Takes free ports, writes the spec's files and spawns the command. Throws InfrastructureError (program
  // not startable, a socket path too long) or UsageError (a bad placeholder).
  void start();
  // Returns once the readiness check passes and the server wants the group's secret (see the top of this
  // file). Starts again on new ports when the server lost a port race ("Address already in use"). Throws
  // InfrastructureError naming the service, its port, the reason and the tail of its log when it exits,
  // times out, refuses the secret, or `cancel` is set.
  void wait_ready(const std::atomic<bool>& cancel);
  // Stop signal, then TERM and KILL to its process group after the grace period, then whatever still works
  // in its directory. Safe to call twice. Returns what it could not stop.
  std::vector<std::string> stop() noexcept;

  // Why the server is no longer serving when it ended after it was ready: "redis 127.0.0.1:34461 ended
  // during the run (killed by SIGKILL); the end of its output: ...". Empty while it runs.
  std::optional<std::string> ended_early();

  const std::string& name() const { return setup_.spec->name; }
  // "postgres 127.0.0.1:41234", "postgres /dev/shm/.../postgres/.s.PGSQL.5432"
  std::string describe() const;
  const ServerAddress& address() const { return address_; }
  // The spec's variables with this server's ports filled in; empty before start().
  util::EnvVars variables() const;
  const std::vector<std::pair<std::string, std::uint16_t>>& ports() const { return placeholders_.ports; }
  pid_t pid() const { return process_.pid(); }
  bool running() const { return process_.running(); }
  // With the secrets masked.
  std::string log_tail(std::size_t lines = 20) const;

 private:
  std::string redacted(std::string text) const;
  // " on 127.0.0.1:41234", or nothing for a server that listens nowhere.
  std::string where() const;
  void spawn_on_new_ports();
  // What the server wrote since its latest start (the log is appended to across port-race restarts).
  std::string output_of_this_attempt() const;
  // The readiness check, refusing an answer from a port that another program took from us.
  ProbeResult probe(util::Clock::time_point deadline, util::Clock::time_point overall_deadline);
  ProbeResult probe_once(util::Clock::time_point deadline, util::Clock::time_point overall_deadline);

  ServerSetup setup_;
  Placeholders placeholders_;
  ServerAddress address_;
  util::Process process_;
  pid_t registered_pid_ = -1;
  int attempts_ = 0;
  std::uintmax_t log_offset_ = 0;
  util::Clock::time_point started_{};
};

}  // namespace testfleet::environments
