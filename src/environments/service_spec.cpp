#include "environments/service_spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "util/error.hpp"
#include "util/strings.hpp"

namespace testfleet::environments {
namespace {

bool is_identifier_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool is_name(std::string_view text, bool allow_dash) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
    return is_identifier_char(c) || (allow_dash && c == '-');
  });
}

bool is_variable_name(std::string_view text) {
  return is_name(text, false) && !(text.front() >= '0' && text.front() <= '9');
}

std::string port_value(const Placeholders& values, std::string_view name) {
  for (const auto& [port_name, port] : values.ports) {
    if (port_name == name) return std::to_string(port);
  }
  std::vector<std::string> names;
  for (const auto& entry : values.ports) names.push_back(entry.first);
  throw UsageError(fmt::format("unknown port '{}' in {{port:{}}} (this service's ports: {})", name, name,
                               names.empty() ? "none" : util::join(names, ", ")));
}

// What {secret} becomes in a sample expansion: a command line that contains it has the secret in it.
constexpr std::string_view kSampleSecret = "<the secret>";

// Placeholders filled with stand-ins, to find typos while reading the configuration.
Placeholders sample_placeholders(const std::vector<std::string>& ports) {
  Placeholders values;
  std::uint16_t port = 10000;
  for (const std::string& name : ports) values.ports.emplace_back(name, port++);
  values.dir = "/tmp/dir";
  values.group = 1;
  values.run_id = "run";
  values.secret = std::string(kSampleSecret);
  return values;
}

bool mentions_secret(const std::vector<std::string>& argv) {
  return std::any_of(argv.begin(), argv.end(),
                     [](const std::string& word) { return word.find(kSampleSecret) != std::string::npos; });
}

ReadinessKind parse_readiness(const std::string& text, const std::string& origin) {
  if (text == "tcp") return ReadinessKind::kTcp;
  if (text == "command") return ReadinessKind::kCommand;
  if (text == "postgres") return ReadinessKind::kPostgres;
  if (text == "redis") return ReadinessKind::kRedis;
  throw UsageError(fmt::format(
      "{}: ready = \"{}\" is not one of \"tcp\", \"command\", \"postgres\", \"redis\"", origin, text));
}

}  // namespace

ListenMode parse_listen_mode(std::string_view text) {
  if (text == "tcp") return ListenMode::kTcp;
  if (text == "socket") return ListenMode::kSocket;
  throw UsageError(fmt::format("--listen {}: expected tcp or socket", text));
}

ServiceSpec postgres_service(ListenMode listen) {
  bool tcp = listen == ListenMode::kTcp;
  ServiceSpec spec;
  spec.name = "postgres";
  spec.kind = ServiceKind::kPostgres;
  // Durability settings off: the data dies with the group, and fsync is most of a test's database time.
  // Dynamic shared memory in files of the data directory, not in /dev/shm: a server that is SIGKILLed leaves
  // nothing there. TCP without a socket: a Unix socket path may not exceed 107 bytes, which a deep TMPDIR
  // easily does. A socket without TCP: the socket's name needs a port number, and nothing else shares the
  // directory, so 5432 it is.
  spec.command = {"postgres",
                  "-D",
                  "{dir}/data",
                  "-p",
                  tcp ? "{port}" : "5432",
                  "-c",
                  tcp ? "unix_socket_directories=" : "unix_socket_directories={dir}",
                  "-c",
                  tcp ? "listen_addresses=127.0.0.1" : "listen_addresses=",
                  "-c",
                  "unix_socket_permissions=0700",
                  "-c",
                  "fsync=off",
                  "-c",
                  "synchronous_commit=off",
                  "-c",
                  "full_page_writes=off",
                  "-c",
                  "dynamic_shared_memory_type=mmap"};
  spec.readiness = ReadinessKind::kPostgres;
  if (tcp) {
    spec.variables = {
        {"DATABASE_URL", "postgres://postgres:{secret}@127.0.0.1:{port}/postgres"},
        {"PGHOST", "127.0.0.1"},
        {"PGPORT", "{port}"},
    };
  } else {
    spec.ports = {};
    spec.socket = "{dir}/.s.PGSQL.5432";
    // libpq's form for a socket directory (psycopg2 hands it to libpq as it is).
    spec.variables = {
        {"DATABASE_URL", "postgres://postgres:{secret}@/postgres?host={dir}"},
        {"PGHOST", "{dir}"},
        {"PGPORT", "5432"},
    };
  }
  spec.variables["PGUSER"] = "postgres";
  spec.variables["PGPASSWORD"] = "{secret}";
  spec.variables["PGDATABASE"] = "postgres";
  spec.stop_signal = SIGQUIT;
  spec.unprivileged = true;
  spec.package = "postgresql";
  return spec;
}

ServiceSpec redis_service(ListenMode listen) {
  bool tcp = listen == ListenMode::kTcp;
  ServiceSpec spec;
  spec.name = "redis";
  spec.kind = ServiceKind::kRedis;
  // The settings go in a file, not on the command line, for the password's sake (see the top of the header).
  spec.command = {"redis-server", "{dir}/redis.conf"};
  std::string listening =
      tcp ? "port {port}\nbind 127.0.0.1\n" : "port 0\nunixsocket \"{dir}/redis.sock\"\nunixsocketperm 700\n";
  spec.files = {
      {"redis.conf",
       "# One group's Redis, written by testfleet; readable by the server's user alone, removed with "
       "the group.\n" +
           listening +
           "requirepass {secret}\n"
           "save \"\"\n"
           "appendonly no\n"
           "dir \"{dir}\"\n"
           "daemonize no\n"}};
  spec.readiness = ReadinessKind::kRedis;
  if (tcp) {
    spec.variables = {{"REDIS_URL", "redis://:{secret}@127.0.0.1:{port}/0"}};
  } else {
    spec.ports = {};
    spec.socket = "{dir}/redis.sock";
    spec.variables = {{"REDIS_URL", "unix://:{secret}@{dir}/redis.sock?db=0"}};
  }
  spec.package = "redis-server";
  return spec;
}

std::optional<ServiceSpec> builtin_service(std::string_view name, ListenMode listen) {
  if (name == "postgres") return postgres_service(listen);
  if (name == "redis") return redis_service(listen);
  return std::nullopt;
}

ServiceSpec with_listen_mode(ServiceSpec spec, ListenMode listen) {
  if (listen == ListenMode::kTcp || spec.kind == ServiceKind::kGeneric) return spec;
  std::string_view kind = spec.kind == ServiceKind::kPostgres ? "postgres" : "redis";
  ServiceSpec tcp = *builtin_service(kind, ListenMode::kTcp);
  ServiceSpec socket = *builtin_service(kind, ListenMode::kSocket);
  if (spec.command != tcp.command || spec.files != tcp.files) return spec;
  bool own_variables = spec.variables != tcp.variables;
  spec.command = socket.command;
  spec.files = socket.files;
  spec.ports = socket.ports;
  spec.socket = socket.socket;
  if (!own_variables) spec.variables = socket.variables;
  Placeholders sample = sample_placeholders(spec.ports);
  for (const auto& [name, value] : spec.variables) {
    try {
      expand_placeholders(value, sample);
    } catch (const UsageError& error) {
      throw UsageError(
          fmt::format("service '{}' with --listen socket has no TCP port: variables: {} (its socket is {})",
                      spec.name, error.what(), spec.socket));
    }
  }
  return spec;
}

std::string_view describe(ReadinessKind kind) {
  switch (kind) {
    case ReadinessKind::kTcp:
      return "tcp";
    case ReadinessKind::kCommand:
      return "command";
    case ReadinessKind::kPostgres:
      return "postgres";
    case ReadinessKind::kRedis:
      return "redis";
  }
  return "tcp";
}

std::string expand_placeholders(std::string_view text, const Placeholders& values) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      out.push_back('{');
      i += 2;
      continue;
    }
    if (c == '}' && i + 1 < text.size() && text[i + 1] == '}') {
      out.push_back('}');
      i += 2;
      continue;
    }
    bool shell_expansion = i > 0 && text[i - 1] == '$';
    if (c != '{' || shell_expansion) {
      out.push_back(c);
      ++i;
      continue;
    }
    std::size_t close = text.find('}', i);
    std::string_view inner =
        close == std::string_view::npos ? text.substr(i + 1) : text.substr(i + 1, close - i - 1);
    // Only {word} and {port:word} are placeholders; a brace followed by anything else is the command's own
    // (a shell's `{ ...; }`, JSON).
    std::size_t colon = inner.find(':');
    std::string_view head = inner.substr(0, colon);
    bool placeholder = close != std::string_view::npos && is_name(head, false) &&
                       (colon == std::string_view::npos || is_name(inner.substr(colon + 1), true));
    if (!placeholder) {
      if (close == std::string_view::npos && is_name(inner, false)) {
        throw UsageError(fmt::format("unclosed placeholder '{{{}' in '{}'", inner, text));
      }
      out.push_back(c);
      ++i;
      continue;
    }
    if (colon != std::string_view::npos) {
      if (head != "port") {
        throw UsageError(
            fmt::format("unknown placeholder {{{}}} in '{}' (did you mean {{port:NAME}}?)", inner, text));
      }
      out += port_value(values, inner.substr(colon + 1));
    } else if (head == "port") {
      if (values.ports.empty()) {
        throw UsageError(fmt::format("{{port}} in '{}', but the service has no ports", text));
      }
      out += std::to_string(values.ports.front().second);
    } else if (head == "dir") {
      out += values.dir;
    } else if (head == "host") {
      out += values.host;
    } else if (head == "group") {
      out += std::to_string(values.group);
    } else if (head == "run_id") {
      out += values.run_id;
    } else if (head == "secret") {
      out += values.secret;
    } else {
      throw UsageError(fmt::format(
          "unknown placeholder {{{}}} in '{}' (known: {{port}}, {{port:NAME}}, {{dir}}, {{host}}, {{group}}, "
          "{{run_id}}, {{secret}}; write {{{{ for a literal brace)",
          inner, text));
    }
    i = close + 1;
  }
  return out;
}

std::vector<std::string> expand_placeholders(const std::vector<std::string>& texts,
                                             const Placeholders& values) {
  std::vector<std::string> out;
  out.reserve(texts.size());
  for (const std::string& text : texts) out.push_back(expand_placeholders(text, values));
  return out;
}

ServiceSpec service_from_config(const ServiceConfig& config) {
  std::string origin = config.origin.empty() ? fmt::format("[services.{}]", config.name) : config.origin;
  auto fail = [&](const std::string& why) -> void { throw UsageError(fmt::format("{}: {}", origin, why)); };

  if (!is_name(config.name, true))
    fail(fmt::format("service name '{}' must be letters, digits, '_' or '-'", config.name));
  std::optional<ServiceSpec> base;
  if (config.builtin) {
    base = builtin_service(*config.builtin);
    if (!base) fail(fmt::format("builtin = \"{}\" is not one of \"postgres\", \"redis\"", *config.builtin));
  } else {
    base = builtin_service(config.name);
  }
  ServiceSpec spec = base.value_or(ServiceSpec{});
  spec.name = config.name;

  if (config.command) {
    if (config.command->empty() || config.command->front().empty()) fail("command is empty");
    spec.command = *config.command;
  } else if (!base) {
    fail("a service needs a command, e.g. command = \"python3 -m http.server {port}\"");
  }
  if (config.ports) {
    std::set<std::string> seen;
    for (const std::string& port : *config.ports) {
      if (!is_name(port, true)) fail(fmt::format("port name '{}' must be letters, digits, '_' or '-'", port));
      if (!seen.insert(port).second) fail(fmt::format("port name '{}' appears twice", port));
    }
    spec.ports = *config.ports;
  }
  if (config.ready_command) {
    if (config.ready_command->empty()) fail("ready_command is empty");
    spec.ready_command = *config.ready_command;
    spec.readiness = ReadinessKind::kCommand;
  }
  if (config.ready) spec.readiness = parse_readiness(*config.ready, origin);
  if (spec.readiness == ReadinessKind::kCommand && spec.ready_command.empty()) {
    fail("ready = \"command\" needs ready_command");
  }
  if (spec.readiness != ReadinessKind::kCommand && spec.ports.empty()) {
    fail(fmt::format("ready = \"{}\" needs a port; give ports or a ready_command", describe(spec.readiness)));
  }
  if (config.ready_timeout) {
    if (!(*config.ready_timeout > 0) || !std::isfinite(*config.ready_timeout)) {
      fail(fmt::format("ready_timeout = {} must be a positive number of seconds", *config.ready_timeout));
    }
    spec.ready_timeout =
        std::chrono::milliseconds(static_cast<long long>(std::ceil(*config.ready_timeout * 1000)));
  }
  if (config.variables) spec.variables = *config.variables;
  for (const auto& [name, value] : config.environment) spec.environment[name] = value;

  for (const auto& [name, value] : spec.variables) {
    if (!is_variable_name(name)) fail(fmt::format("variables: '{}' is not a valid variable name", name));
  }
  for (const auto& [name, value] : spec.environment) {
    if (!is_variable_name(name)) fail(fmt::format("environment: '{}' is not a valid variable name", name));
  }

  // Expanding every template once with stand-in values finds unknown placeholders before any server starts.
  Placeholders sample = sample_placeholders(spec.ports);
  bool secret_on_command_line = false;
  try {
    secret_on_command_line = mentions_secret(expand_placeholders(spec.command, sample)) ||
                             mentions_secret(expand_placeholders(spec.ready_command, sample));
    for (const auto& [name, value] : spec.variables) expand_placeholders(value, sample);
    for (const auto& [name, value] : spec.environment) expand_placeholders(value, sample);
  } catch (const UsageError& error) {
    fail(error.what());
  }
  if (secret_on_command_line) {
    fail(
        "{secret} in a command line, which every user of the machine can read (/proc/PID/cmdline); give it "
        "to the server through its environment instead, e.g. environment = { PASSWORD = \"{secret}\" }, "
        "and to a ready-command through the exported variables");
  }
  return spec;
}

void check_services(const std::vector<ServiceSpec>& services) {
  std::map<std::string, std::string> exported_by;
  std::set<std::string> names;
  for (const ServiceSpec& spec : services) {
    if (!names.insert(spec.name).second)
      throw UsageError(fmt::format("service '{}' is given twice", spec.name));
    for (const auto& [file, content] : spec.files) {
      if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos)
        throw UsageError(fmt::format("service '{}': file '{}' must be a plain file name", spec.name, file));
    }
    for (const auto& [variable, value] : spec.variables) {
      auto [it, inserted] = exported_by.emplace(variable, spec.name);
      if (!inserted) {
        throw UsageError(
            fmt::format("services '{}' and '{}' both export {}; rename one in [services.{}] variables",
                        it->second, spec.name, variable, spec.name));
      }
    }
  }
}

}  // namespace testfleet::environments
