// What a native service is: a command line with placeholders, the ports it needs, how to tell that it is
// ready and which variables tell the tests where it is. The built-in `postgres` and `redis` are specs like
// any other, plus a kind that asks the backend for the extra steps they need (a PostgreSQL data directory
// copied from a template, an unprivileged user). A [services.NAME] table of testfleet.toml becomes a
// ServiceConfig, which service_from_config() checks and turns into a spec.
//
// Placeholders, in the command, the readiness command, the exported variables and the environment:
//   {port}        the service's first port        {port:NAME}  the port named NAME in `ports`
//   {dir}         the service's private directory  {host}       127.0.0.1
//   {group}       the group's index (1-based)      {run_id}     the run's id
// `{{` and `}}` are literal braces, and `${...}` is left alone for a shell the command may start.
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
  int stop_signal = SIGTERM;  // PostgreSQL: SIGQUIT, an immediate shutdown (nothing to keep)
  // Run as an unprivileged user when testfleet runs as root (PostgreSQL refuses to run as root).
  bool unprivileged = false;
  // The Debian package that provides the command, named when it is not found.
  std::string package;
};

// One PostgreSQL per group: template copy, fsync and friends off, socket in {dir}, user and password
// `postgres`, trust authentication; exports DATABASE_URL and PGHOST..PGDATABASE.
ServiceSpec postgres_service();
// One Redis per group without persistence; exports REDIS_URL.
ServiceSpec redis_service();
// "postgres" or "redis"; nothing for another name.
std::optional<ServiceSpec> builtin_service(std::string_view name);

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

// Throws UsageError when two services share a name or export the same variable.
void check_services(const std::vector<ServiceSpec>& services);

// Values for the placeholders of one service in one group.
struct Placeholders {
  std::vector<std::pair<std::string, std::uint16_t>> ports;  // in the spec's order
  std::string dir;
  std::string host = "127.0.0.1";
  int group = 0;
  std::string run_id;
};

// Throws UsageError naming the placeholder when it is unknown ({prot}) or a brace is left open.
std::string expand_placeholders(std::string_view text, const Placeholders& values);
std::vector<std::string> expand_placeholders(const std::vector<std::string>& texts,
                                             const Placeholders& values);

std::string_view describe(ReadinessKind kind);

}  // namespace testfleet::environments
