// What a native service is: a command line with placeholders, the ports it needs, how to tell that it is
// ready and which variables tell the tests where it is. The built-in `postgres` and `redis` are specs like
// any other, plus a kind that asks the backend for the extra steps they need (a PostgreSQL data directory
// copied from a template, an unprivileged user, a password of the group's own). A [services.NAME] table of
// testfleet.toml becomes a ServiceConfig, which service_from_config() checks and turns into a spec.
//
// Placeholders, in the command, the readiness command, the exported variables, the environment and files:
//   {port}        the service's first port        {port:NAME}  the port named NAME in `ports`
//   {dir}         the service's private directory  {host}       127.0.0.1
//   {group}       the group's index (1-based)      {run_id}     the run's id
//   {secret}      this service's own secret in this group: 64 random hexadecimal digits, new every run
// `{{` and `}}` are literal braces, and `${...}` is left alone for a shell the command may start.
//
// {secret} may appear in the variables, the environment and files, never in a command line: every user of
// the machine can read a process's arguments in /proc/PID/cmdline, while its environment and a file of mode
// 0600 are its own user's.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/subprocess.hpp"

namespace testfleet::environments {

enum class ServiceKind {
  kGeneric,
  kPostgres,  // {dir}/data starts as a copy of a template made once per run by initdb
  kRedis,
};

enum class ReadinessKind {
  kTcp,       // every port accepts a TCP connection
  kCommand,   // a command exits 0
  kPostgres,  // the first port answers a PostgreSQL startup message with anything but "starting up"
  kRedis,     // the first port answers PING with +PONG
};

// Where the built-in servers listen (--listen): a TCP port of 127.0.0.1, or only a Unix socket in the
// service's private directory (mode 0700), which no other user of the machine can even reach.
enum class ListenMode {
  kTcp,
  kSocket,
};

// "tcp" or "socket"; throws UsageError naming the value otherwise.
ListenMode parse_listen_mode(std::string_view text);

struct ServiceSpec {
  std::string name;
  ServiceKind kind = ServiceKind::kGeneric;
  std::vector<std::string> command;
  std::vector<std::string> ports = {"port"};  // names; each gets a free port on 127.0.0.1
  ReadinessKind readiness = ReadinessKind::kTcp;
  std::vector<std::string> ready_command;  // for kCommand
  std::chrono::milliseconds ready_timeout{60000};
  std::map<std::string, std::string> variables;  // exported to the group: NAME -> template
  util::EnvVars environment;                     // set for the server process: NAME -> template
  // Written into {dir} before each start, readable by the server's user alone (mode 0600): file name ->
  // template. Where a secret goes that the server reads from a file (Redis' requirepass).
  std::map<std::string, std::string> files;
  // The Unix socket the server listens on, a template ("{dir}/redis.sock"); readiness checks connect there
  // instead of to the first port. Empty: the first port.
  std::string socket;
  int stop_signal = SIGTERM;  // PostgreSQL: SIGQUIT, an immediate shutdown (nothing to keep)
  // Run as an unprivileged user when testfleet runs as root (PostgreSQL refuses to run as root).
  bool unprivileged = false;
  // The Debian package that provides the command, named when it is not found.
  std::string package;
};

// One PostgreSQL per group: template copy, fsync and friends off, superuser `postgres` whose password is
// {secret} (SCRAM-SHA-256, for every connection: pg_hba.conf trusts nobody); exports DATABASE_URL and
// PGHOST..PGDATABASE. TCP: 127.0.0.1:{port}, no socket. Socket: {dir}/.s.PGSQL.5432, no TCP at all.
ServiceSpec postgres_service(ListenMode listen = ListenMode::kTcp);
// One Redis per group without persistence, its settings and `requirepass {secret}` in {dir}/redis.conf;
// exports REDIS_URL with the password. TCP: 127.0.0.1:{port}. Socket: {dir}/redis.sock, TCP port 0.
ServiceSpec redis_service(ListenMode listen = ListenMode::kTcp);
// "postgres" or "redis"; nothing for another name.
std::optional<ServiceSpec> builtin_service(std::string_view name, ListenMode listen = ListenMode::kTcp);

// A service as `--listen` wants it. Generic services and TCP are unchanged. With kSocket, a built-in kind
// whose command (and files) are still the built-in's gets the socket form of command, files, ports and
// socket, and of its variables unless the configuration gave its own (which may name {dir}); a built-in
// kind with a command of the configuration's own listens where that command says. Throws UsageError,
// naming the service, when its variables need a port it no longer has.
ServiceSpec with_listen_mode(ServiceSpec spec, ListenMode listen);

// A [services.NAME] table as the CLI reads it. Unset fields keep the built-in's value (NAME = postgres or
// redis, or `builtin` set) or the generic default. A TOML string command goes through
// util::split_command_line, a TOML array is taken word for word.
struct ServiceConfig {
  std::string name;
  std::string origin;                  // where it was read, for errors: "testfleet.toml [services.web]"
  std::optional<std::string> builtin;  // "postgres" | "redis": start from that built-in under another name
  std::optional<std::vector<std::string>> command;
  std::optional<std::vector<std::string>> ports;
  std::optional<std::string> ready;  // "tcp" | "command" | "postgres" | "redis"
  std::optional<std::vector<std::string>> ready_command;
  std::optional<double> ready_timeout;                          // seconds
  std::optional<std::map<std::string, std::string>> variables;  // replaces the built-in's map
  std::map<std::string, std::string> environment;               // added to the built-in's
};

// Checks everything a run would otherwise trip over later (names, placeholders, readiness without a
// port); throws UsageError naming the origin and the field.
ServiceSpec service_from_config(const ServiceConfig& config);

// Throws UsageError when two services share a name or export the same variable, or a file name of `files`
// is not a plain name.
void check_services(const std::vector<ServiceSpec>& services);

// Values for the placeholders of one service in one group.
struct Placeholders {
  std::vector<std::pair<std::string, std::uint16_t>> ports;  // in the spec's order
  std::string dir;
  std::string host = "127.0.0.1";
  int group = 0;
  std::string run_id;
  std::string secret;
};

// Throws UsageError naming the placeholder when it is unknown ({prot}) or a brace is left open.
std::string expand_placeholders(std::string_view text, const Placeholders& values);
std::vector<std::string> expand_placeholders(const std::vector<std::string>& texts,
                                             const Placeholders& values);

std::string_view describe(ReadinessKind kind);

}  // namespace testfleet::environments
