#include "environments/native_server.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "environments/native_postgres.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/secrets.hpp"
#include "util/strings.hpp"

namespace testfleet::environments {
namespace {

using util::Clock;

// sockaddr_un's sun_path less its terminating NUL.
constexpr std::size_t kMaxSocketPath = 107;

const util::IpAddress& loopback() {
  static const util::IpAddress address = *util::IpAddress::parse("127.0.0.1");
  return address;
}

std::optional<ServerUser> lookup_user(const std::filesystem::path& passwd_file, std::string_view name) {
  std::ifstream in(passwd_file);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields = util::split(line, ':');
    if (fields.size() < 4 || fields[0] != name) continue;
    char* end = nullptr;
    unsigned long uid = std::strtoul(fields[2].c_str(), &end, 10);
    if (*end != '\0') continue;
    unsigned long gid = std::strtoul(fields[3].c_str(), &end, 10);
    if (*end != '\0') continue;
    return ServerUser{static_cast<uid_t>(uid), static_cast<gid_t>(gid), std::string(name)};
  }
  return std::nullopt;
}

std::uint32_t read32(std::string_view data, std::size_t offset) {
  return (static_cast<std::uint32_t>(static_cast<std::uint8_t>(data[offset])) << 24) |
         (static_cast<std::uint32_t>(static_cast<std::uint8_t>(data[offset + 1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<std::uint8_t>(data[offset + 2])) << 8) |
         static_cast<std::uint32_t>(static_cast<std::uint8_t>(data[offset + 3]));
}

void append32(std::string& out, std::uint32_t value) {
  out.push_back(static_cast<char>(value >> 24));
  out.push_back(static_cast<char>((value >> 16) & 0xFF));
  out.push_back(static_cast<char>((value >> 8) & 0xFF));
  out.push_back(static_cast<char>(value & 0xFF));
}

std::string postgres_startup_message() {
  std::string body;
  append32(body, 196608);  // protocol 3.0
  // The implicit terminating NUL of the literal is the empty name that ends the parameter list.
  static constexpr char kParameters[] = "user\0postgres\0database\0postgres\0application_name\0testfleet\0";
  body.append(kParameters, sizeof kParameters);
  std::string message;
  append32(message, static_cast<std::uint32_t>(body.size() + 4));
  return message + body;
}

// The fields of an ErrorResponse body: 'C' the SQLSTATE, 'M' the message.
std::string error_field(std::string_view body, char code) {
  std::size_t i = 0;
  while (i < body.size() && body[i] != '\0') {
    char type = body[i];
    std::size_t end = body.find('\0', i + 1);
    if (end == std::string_view::npos) break;
    if (type == code) return std::string(body.substr(i + 1, end - i - 1));
    i = end + 1;
  }
  return {};
}

// The sockets listening on a TCP port, as /proc/PID/fd names them ("socket:[123]").
std::set<std::string> listening_sockets(std::uint16_t port) {
  std::set<std::string> sockets;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >>
            inode)) {
        continue;
      }
      std::size_t colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;  // 0A: LISTEN
      if (std::strtoul(local.c_str() + colon + 1, nullptr, 16) == port)
        sockets.insert("socket:[" + inode + "]");
    }
  }
  return sockets;
}

enum class PortHolder { kOurServer, kAnotherProgram, kUnknown };

// Who listens on `port`: a process of the server's process group, or someone else. A port race is
// otherwise invisible: the readiness check would happily talk to the program that took our port.
bool holds_one_of(const std::filesystem::path& process, const std::set<std::string>& sockets, bool* looked) {
  std::error_code ec;
  for (const std::filesystem::directory_entry& fd : std::filesystem::directory_iterator(process / "fd", ec)) {
    *looked = true;
    std::error_code link_error;
    if (sockets.count(std::filesystem::read_symlink(fd.path(), link_error).string()) != 0) return true;
  }
  return false;
}

PortHolder port_holder(std::uint16_t port, pid_t group) {
  std::set<std::string> sockets = listening_sockets(port);
  if (sockets.empty()) return PortHolder::kUnknown;  // no /proc/net/tcp to read
  bool looked = false;
  // Most servers listen in the process we started, the group's leader; a wrapper's child needs the search.
  if (holds_one_of(fmt::format("/proc/{}", group), sockets, &looked)) return PortHolder::kOurServer;
  std::error_code ec;
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::size_t close = text.rfind(')');
    if (close == std::string::npos) continue;
    // After the command name: state, ppid, pgrp.
    std::istringstream fields(text.substr(close + 1));
    std::string state;
    long parent = 0;
    long process_group = 0;
    if (!(fields >> state >> parent >> process_group) || process_group != group) continue;
    if (holds_one_of(entry.path(), sockets, &looked)) return PortHolder::kOurServer;
  }
  return looked ? PortHolder::kAnotherProgram : PortHolder::kUnknown;
}

bool looks_like_port_race(std::string_view log) {
  return log.find("Address already in use") != std::string_view::npos ||
         log.find("address already in use") != std::string_view::npos;
}

}  // namespace

ServerUser unprivileged_user(const std::filesystem::path& passwd_file) {
  if (::geteuid() != 0) return ServerUser{};
  for (std::string_view name : {"postgres", "nobody"}) {
    if (std::optional<ServerUser> user = lookup_user(passwd_file, name); user && user->uid != 0u)
      return *user;
  }
  throw InfrastructureError(fmt::format(
      "running as root, but {} has neither a `postgres` nor a `nobody` user to run servers as (PostgreSQL "
      "refuses to run as root); install the Debian package postgresql or run testfleet as another user",
      passwd_file.string()));
}

void make_owned_dir(const std::filesystem::path& dir, const ServerUser& user, unsigned mode) {
  if (::mkdir(dir.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) {
    throw InfrastructureError(fmt::format("cannot create {}: {}", dir.string(), std::strerror(errno)));
  }
  // mkdir's mode passes through the umask; the server needs exactly this one.
  if (::chmod(dir.c_str(), static_cast<mode_t>(mode)) != 0) {
    throw InfrastructureError(fmt::format("cannot chmod {}: {}", dir.string(), std::strerror(errno)));
  }
  if (user.uid && ::chown(dir.c_str(), *user.uid, user.gid.value_or(static_cast<gid_t>(-1))) != 0) {
    throw InfrastructureError(
        fmt::format("cannot give {} to user {}: {}", dir.string(), user.name, std::strerror(errno)));
  }
}

SpawnThread::SpawnThread() : thread_([this] { loop(); }) {}

SpawnThread::~SpawnThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

util::Process SpawnThread::spawn(const util::SpawnSpec& spec) {
  std::packaged_task<util::Process()> job([&spec] { return util::Process::spawn(spec); });
  std::future<util::Process> result = job.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return result.get();
}

void SpawnThread::loop() {
  while (true) {
    std::packaged_task<util::Process()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

std::string ServerAddress::text() const {
  return socket.empty() ? fmt::format("127.0.0.1:{}", port) : socket.string();
}

std::optional<util::StreamConnection> connect_to(const ServerAddress& address, Clock::time_point deadline,
                                                 std::string* error) {
  if (!address.socket.empty()) return util::unix_connect(address.socket, deadline, error);
  return util::tcp_connect(loopback(), address.port, deadline, error);
}

ProbeResult probe_tcp(const ServerAddress& address, Clock::time_point deadline) {
  ProbeResult result;
  result.ready = connect_to(address, deadline, &result.detail).has_value();
  return result;
}

ProbeResult probe_postgres(const ServerAddress& address, Clock::time_point deadline) {
  ProbeResult result;
  std::optional<util::StreamConnection> connection = connect_to(address, deadline, &result.detail);
  if (!connection) return result;
  if (!connection->send_all(postgres_startup_message(), deadline, &result.detail)) return result;
  std::string answer;
  // One whole message: a type byte, then a length that counts itself.
  while (answer.size() < 5 || answer.size() < 1 + std::min<std::size_t>(read32(answer, 1), 8192)) {
    if (!connection->receive_some(answer, deadline, &result.detail)) return result;
  }
  char type = answer[0];
  if (type == 'R' || type == 'v') {
    if (type == 'R' && read32(answer, 5) == 0)
      connection->send_all(std::string_view("X\0\0\0\4", 5), deadline, nullptr);
    result.ready = true;
    return result;
  }
  if (type == 'E') {
    std::size_t length = std::min<std::size_t>(read32(answer, 1), answer.size() - 1);
    std::string_view body = std::string_view(answer).substr(5, length >= 4 ? length - 4 : 0);
    std::string code = error_field(body, 'C');
    result.detail = error_field(body, 'M');
    // 57P03 cannot_connect_now: starting up, shutting down, in recovery. Anything else comes from a server
    // that accepts connections and judged ours (a missing role, too many clients).
    result.ready = code != "57P03";
    return result;
  }
  result.detail = fmt::format("unexpected answer to a startup message (type '{}')", type);
  return result;
}

ProbeResult probe_redis(const ServerAddress& address, Clock::time_point deadline, std::string_view password) {
  ProbeResult result;
  std::optional<util::StreamConnection> connection = connect_to(address, deadline, &result.detail);
  if (!connection) return result;
  std::string request;
  if (!password.empty())
    request += fmt::format("*2\r\n$4\r\nAUTH\r\n${}\r\n{}\r\n", password.size(), password);
  request += "*1\r\n$4\r\nPING\r\n";
  if (!connection->send_all(request, deadline, &result.detail)) return result;
  std::size_t expected = password.empty() ? 1 : 2;
  std::string answer;
  std::vector<std::string> lines;
  while (lines.size() < expected && answer.size() < 8192) {
    if (!connection->receive_some(answer, deadline, &result.detail)) return result;
    lines.clear();
    for (std::size_t start = 0, end; (end = answer.find("\r\n", start)) != std::string::npos; start = end + 2)
      lines.push_back(answer.substr(start, end - start));
  }
  if (lines.size() < expected) {
    result.detail = "no answer to PING";
    return result;
  }
  const std::string& ping = lines[expected - 1];
  if (!password.empty()) {
    const std::string& auth = lines[0];
    if (util::starts_with(auth, "-LOADING") || util::starts_with(ping, "-LOADING")) {
      result.detail = fmt::format("PING answered {}", ping);
      return result;
    }
    if (auth != "+OK") {
      result.detail = fmt::format("AUTH answered {}", auth);
      result.final = true;
      return result;
    }
    result.ready = ping == "+PONG";
  } else {
    result.ready = ping == "+PONG" || util::starts_with(ping, "-NOAUTH");
  }
  if (!result.ready) result.detail = fmt::format("PING answered {}", ping);
  return result;
}

Server::Server(ServerSetup setup) : setup_(std::move(setup)) {
  placeholders_.dir = setup_.dir.string();
  placeholders_.group = setup_.group;
  placeholders_.run_id = setup_.run_id;
  placeholders_.secret = setup_.secret;
}

Server::~Server() {
  stop();
}

void Server::start() {
  attempts_ = 0;
  spawn_on_new_ports();
}

void Server::spawn_on_new_ports() {
  const ServiceSpec& spec = *setup_.spec;
  ++attempts_;
  placeholders_.ports.clear();
  for (const std::string& port_name : spec.ports)
    placeholders_.ports.emplace_back(port_name, util::find_free_port());

  address_ = ServerAddress{};
  if (!spec.socket.empty()) {
    address_.socket = expand_placeholders(spec.socket, placeholders_);
    if (address_.socket.native().size() > kMaxSocketPath) {
      throw InfrastructureError(fmt::format(
          "{}: its socket {} would be {} bytes, longer than the {} a Unix socket's path may be; put the "
          "servers in a shorter directory (TESTFLEET_SERVER_DIR=/tmp) or use --listen tcp",
          spec.name, address_.socket.string(), address_.socket.native().size(), kMaxSocketPath));
    }
  } else if (!placeholders_.ports.empty()) {
    address_.port = placeholders_.ports.front().second;
  }
  for (const auto& [file, content] : spec.files) {
    util::write_private_file(setup_.dir / file, expand_placeholders(content, placeholders_), setup_.user.uid,
                             setup_.user.gid);
  }

  util::SpawnSpec spawn;
  spawn.argv = expand_placeholders(spec.command, placeholders_);
  spawn.argv.front() = setup_.program.string();
  util::EnvVars env = util::current_environment();
  for (const auto& [name, value] : spec.environment) env[name] = expand_placeholders(value, placeholders_);
  spawn.env = std::move(env);
  spawn.cwd = setup_.dir;
  spawn.output = util::OutputMode::kFile;
  spawn.output_file = setup_.log_file;
  spawn.die_with_parent = true;
  // PostgreSQL's immediate shutdown removes its System V segment, which a SIGKILL leaves behind for good;
  // any other server is killed outright, whatever it would make of its stop signal.
  spawn.parent_death_signal = spec.kind == ServiceKind::kPostgres ? spec.stop_signal : SIGKILL;
  spawn.uid = setup_.user.uid;
  spawn.gid = setup_.user.gid;

  std::error_code ec;
  std::uintmax_t size = std::filesystem::file_size(setup_.log_file, ec);
  log_offset_ = ec ? 0 : size;
  started_ = Clock::now();
  process_ = setup_.spawner->spawn(spawn);
  if (setup_.state != nullptr) {
    setup_.state->add_server(process_.pid(), spec.name, setup_.group);
    registered_pid_ = process_.pid();
  }
}

ProbeResult Server::probe(Clock::time_point deadline, Clock::time_point overall_deadline) {
  ProbeResult result = probe_once(deadline, overall_deadline);
  if (!result.ready || setup_.spec->readiness == ReadinessKind::kCommand) return result;
  // A socket in the server's private directory is its own; a port may have gone to someone else.
  if (address_.socket.empty()) {
    for (const auto& [port_name, port] : placeholders_.ports) {
      if (port_holder(port, process_.pid()) == PortHolder::kAnotherProgram) {
        return ProbeResult{false, fmt::format("port {} answers, but another program holds it", port)};
      }
      if (setup_.spec->readiness != ReadinessKind::kTcp)
        break;  // the protocol checks use the first port only
    }
  }
  // Only now that the listener is known to be ours does the password travel.
  if (setup_.spec->kind == ServiceKind::kRedis) return probe_redis(address_, deadline, setup_.secret);
  return result;
}

ProbeResult Server::probe_once(Clock::time_point deadline, Clock::time_point overall_deadline) {
  const ServiceSpec& spec = *setup_.spec;
  switch (spec.readiness) {
    case ReadinessKind::kTcp:
      if (!address_.socket.empty()) return probe_tcp(address_, deadline);
      for (const auto& [port_name, port] : placeholders_.ports) {
        ProbeResult result = probe_tcp(ServerAddress{port, {}}, deadline);
        if (!result.ready) {
          if (placeholders_.ports.size() > 1)
            result.detail = fmt::format("port {}: {}", port_name, result.detail);
          return result;
        }
      }
      return ProbeResult{true, {}};
    case ReadinessKind::kPostgres:
      return probe_postgres(address_, deadline);
    case ReadinessKind::kRedis:
      return probe_redis(address_, deadline);
    case ReadinessKind::kCommand: {
      util::SpawnSpec check;
      check.argv = expand_placeholders(spec.ready_command, placeholders_);
      util::EnvVars env = util::current_environment();
      for (const auto& [name, value] : variables()) env[name] = value;
      check.env = std::move(env);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(overall_deadline - Clock::now());
      util::CommandResult result = util::run_command(check, std::max(left, std::chrono::milliseconds(1000)));
      if (result.status.success()) return ProbeResult{true, {}};
      std::string output = redacted(std::string(util::trim(util::tail_lines(result.output, 3))));
      return ProbeResult{false, fmt::format("{} {}{}{}", util::shell_join(check.argv),
                                            result.timed_out ? "timed out" : result.status.describe(),
                                            output.empty() ? "" : ": ", output)};
    }
  }
  return ProbeResult{};
}

void Server::wait_ready(const std::atomic<bool>& cancel) {
  const ServiceSpec& spec = *setup_.spec;
  constexpr std::chrono::milliseconds kAttempt{1000};
  constexpr std::chrono::milliseconds kPause{15};
  Clock::time_point deadline = started_ + spec.ready_timeout;
  std::string last_detail;
  while (true) {
    if (cancel.load()) {
      throw InfrastructureError(fmt::format("{}: cancelled while waiting for it to be ready", describe()));
    }
    if (std::optional<util::ExitStatus> status = process_.try_wait()) {
      if (!placeholders_.ports.empty() && looks_like_port_race(output_of_this_attempt()) &&
          attempts_ < setup_.port_attempts) {
        std::uint16_t lost = placeholders_.ports.front().second;
        if (setup_.state != nullptr) setup_.state->remove_server(registered_pid_);
        std::ofstream(setup_.log_file, std::ios::app)
            << fmt::format("testfleet: a port of {} was taken (first port {}); starting again on new ports\n",
                           spec.name, lost);
        spawn_on_new_ports();
        deadline = started_ + spec.ready_timeout;
        continue;
      }
      throw InfrastructureError(
          redacted(fmt::format("{} ended ({}) before it was ready{}; the end of its output:\n{}", spec.name,
                               status->describe(), where(), log_tail(20))));
    }
    Clock::time_point now = Clock::now();
    ProbeResult result = probe(std::min(deadline, now + kAttempt), deadline);
    // A ready answer from a port whose server just died came from someone else's server on that port.
    if (result.ready && !process_.try_wait()) break;
    if (result.final) {
      throw InfrastructureError(redacted(fmt::format(
          "{} refuses the group's password ({}){}; the end of its output:\n{}", describe(), result.detail,
          spec.kind == ServiceKind::kRedis
              ? fmt::format(": its command must read {}/redis.conf, which testfleet writes with requirepass "
                            "{{secret}}, e.g. command = [\"redis-server\", \"{{dir}}/redis.conf\"]",
                            setup_.dir.string())
              : "",
          log_tail(10))));
    }
    if (!result.ready) last_detail = result.detail;
    if (Clock::now() >= deadline) {
      throw InfrastructureError(redacted(fmt::format(
          "{} was not ready{} within {} (readiness check: {}; last answer: {}); the end of its output:\n{}",
          spec.name, where(),
          util::format_duration(std::chrono::duration<double>(spec.ready_timeout).count()),
          environments::describe(spec.readiness), last_detail.empty() ? "none" : last_detail, log_tail(20))));
    }
    std::this_thread::sleep_until(std::min(deadline, Clock::now() + kPause));
  }
  if (spec.kind == ServiceKind::kPostgres && !setup_.inherited_secret.empty()) {
    // The hand-over of native_postgres.hpp: within the readiness timeout, and never less than 10 s for its
    // two logins and one statement.
    try {
      replace_postgres_password(address_, setup_.inherited_secret, setup_.secret,
                                std::max(deadline, Clock::now() + std::chrono::seconds(10)));
    } catch (const Error& error) {
      throw InfrastructureError(
          redacted(fmt::format("{}: cannot give it the group's password: {}; the end of its output:\n{}",
                               describe(), error.what(), log_tail(10))));
    }
  }
}

std::vector<std::string> Server::stop() noexcept {
  std::vector<std::string> failures;
  try {
    if (process_.running()) {
      pid_t pid = process_.pid();
      process_.signal(setup_.spec->stop_signal);
      Clock::time_point deadline = Clock::now() + setup_.stop_grace;
      while (!process_.try_wait() && Clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (!process_.try_wait()) process_.terminate(std::chrono::milliseconds(0));
      // The group outlives its leader when the leader left children behind (a shell's background job).
      ::kill(-pid, SIGKILL);
    }
    if (!setup_.dir.empty()) kill_processes_under(setup_.dir);
    if (setup_.state != nullptr && registered_pid_ > 0) setup_.state->remove_server(registered_pid_);
    registered_pid_ = -1;
  } catch (const std::exception& error) {
    failures.push_back(fmt::format("{}: {}", describe(), error.what()));
  }
  return failures;
}

std::optional<std::string> Server::ended_early() {
  if (!process_.running() && !process_.status()) return std::nullopt;  // never started
  std::optional<util::ExitStatus> status = process_.try_wait();
  if (!status) return std::nullopt;
  return redacted(fmt::format("{} ended during the run ({}); the end of its output:\n{}", describe(),
                              status->describe(), log_tail(10)));
}

std::string Server::describe() const {
  if (!address_.socket.empty()) return fmt::format("{} {}", name(), address_.socket.string());
  std::vector<std::string> ports;
  for (const auto& entry : placeholders_.ports) ports.push_back(fmt::format("127.0.0.1:{}", entry.second));
  if (ports.empty()) return name();
  return fmt::format("{} {}", name(), util::join(ports, " "));
}

util::EnvVars Server::variables() const {
  util::EnvVars out;
  if (placeholders_.ports.empty() && !setup_.spec->ports.empty()) return out;
  for (const auto& [variable, value] : setup_.spec->variables) {
    out[variable] = expand_placeholders(value, placeholders_);
  }
  return out;
}

std::string Server::output_of_this_attempt() const {
  std::ifstream in(setup_.log_file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(log_offset_));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > 65536 ? text.substr(text.size() - 65536) : text;
}

std::string Server::log_tail(std::size_t lines) const {
  std::ifstream in(setup_.log_file, std::ios::binary);
  if (!in) return "(no output)";
  // Only the end matters, and a chatty server's log can be large.
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff start = std::max<std::streamoff>(0, size - 16384);
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string tail = util::tail_lines(text, lines);
  return tail.empty() ? "(no output)" : redacted(std::move(tail));
}

std::string Server::redacted(std::string text) const {
  return util::redact(std::move(text), {setup_.secret, setup_.inherited_secret});
}

std::string Server::where() const {
  if (!address_.socket.empty()) return " on " + address_.socket.string();
  if (placeholders_.ports.empty()) return {};
  return fmt::format(" on 127.0.0.1:{}", placeholders_.ports.front().second);
}

}  // namespace testfleet::environments
