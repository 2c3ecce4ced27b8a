#include "cli/config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>

#include "util/error.hpp"
#include "util/strings.hpp"

namespace testfleet::cli {
namespace {

std::string where(const std::filesystem::path& file, const toml::node& node) {
  const toml::source_region& source = node.source();
  return fmt::format("{}:{}:{}", file.string(), source.begin.line, source.begin.column);
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "a list";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

[[noreturn]] void wrong_type(const std::filesystem::path& file, const std::string& key,
                             const toml::node& node, std::string_view expected) {
  throw UsageError(
      fmt::format("{}: '{}' must be {}, not {}", where(file, node), key, expected, type_name(node)));
}

std::string as_string(const std::filesystem::path& file, const std::string& key, const toml::node& node) {
  if (const auto* value = node.as_string()) return value->get();
  wrong_type(file, key, node, "a string");
}

bool as_bool(const std::filesystem::path& file, const std::string& key, const toml::node& node) {
  if (const auto* value = node.as_boolean()) return value->get();
  wrong_type(file, key, node, "true or false");
}

double as_number(const std::filesystem::path& file, const std::string& key, const toml::node& node) {
  if (const auto* value = node.as_integer()) return static_cast<double>(value->get());
  if (const auto* value = node.as_floating_point()) return value->get();
  wrong_type(file, key, node, "a number");
}

// A list of strings; a single string is taken as a list of one.
std::vector<std::string> as_strings(const std::filesystem::path& file, const std::string& key,
                                    const toml::node& node) {
  if (node.is_string()) return {as_string(file, key, node)};
  const auto* array = node.as_array();
  if (array == nullptr) wrong_type(file, key, node, "a list of strings");
  std::vector<std::string> out;
  for (const toml::node& item : *array) out.push_back(as_string(file, key, item));
  return out;
}

// A number of seconds: finite, positive (or zero when `zero_ok`).
double in_range(const std::filesystem::path& file, const std::string& key, const toml::node& node,
                bool zero_ok) {
  double value = as_number(file, key, node);
  if (!std::isfinite(value) || value < 0 || (!zero_ok && value == 0) || value > 1e7) {
    throw UsageError(fmt::format("{}: '{}' is {}: it must be a number of seconds {} 0", where(file, node),
                                 key, value, zero_ok ? "of at least" : "greater than"));
  }
  return value;
}

std::string one_of(const std::filesystem::path& file, const std::string& key, const toml::node& node,
                   const std::vector<std::string>& choices) {
  std::string value = as_string(file, key, node);
  if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
    throw UsageError(fmt::format("{}: '{}' is \"{}\": expected one of {}", where(file, node), key, value,
                                 util::join(choices, ", ")));
  }
  return value;
}

std::map<std::string, std::string> as_string_map(const std::filesystem::path& file, const std::string& key,
                                                 const toml::node& node) {
  const auto* table = node.as_table();
  if (table == nullptr) wrong_type(file, key, node, "a table of strings");
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : *table) {
    out[std::string(name.str())] = as_string(file, key + "." + std::string(name.str()), value);
  }
  return out;
}

// [services.NAME]: command, ports, ready, ready-command, ready-timeout, variables, environment, builtin.
environments::ServiceConfig service_config(const std::filesystem::path& file, const std::string& name,
                                           const toml::node& node) {
  const auto* table = node.as_table();
  if (table == nullptr) wrong_type(file, "services." + name, node, "a table");
  environments::ServiceConfig service;
  service.name = name;
  service.origin = fmt::format("{} [services.{}]", where(file, node), name);
  for (const auto& [raw_key, value] : *table) {
    std::string key(raw_key.str());
    std::string full = "services." + name + "." + key;
    if (key == "command") {
      service.command = value.is_string() ? util::split_command_line(as_string(file, full, value))
                                          : as_strings(file, full, value);
    } else if (key == "ports") {
      service.ports = as_strings(file, full, value);
    } else if (key == "ready") {
      service.ready = as_string(file, full, value);
    } else if (key == "ready-command") {
      service.ready_command = value.is_string() ? util::split_command_line(as_string(file, full, value))
                                                : as_strings(file, full, value);
    } else if (key == "ready-timeout") {
      service.ready_timeout = as_number(file, full, value);
    } else if (key == "variables") {
      service.variables = as_string_map(file, full, value);
    } else if (key == "environment") {
      service.environment = as_string_map(file, full, value);
    } else if (key == "builtin") {
      service.builtin = as_string(file, full, value);
    } else {
      throw UsageError(
          fmt::format("{}: unknown key '{}' (known: command, ports, ready, ready-command, "
                      "ready-timeout, variables, environment, builtin)",
                      where(file, value), full));
    }
  }
  return service;
}

void apply(const std::filesystem::path& file, const toml::table& table, LoadedConfig& config) {
  RunOptions& o = config.options;
  for (const auto& [raw_key, node] : table) {
    std::string key(raw_key.str());
    config.keys.insert(key);
    if (key == "groups") {
      double n = as_number(file, key, node);
      if (n < 1 || n != static_cast<int>(n)) {
        throw UsageError(fmt::format("{}: 'groups' must be a whole number of at least 1", where(file, node)));
      }
      o.groups = static_cast<int>(n);
    } else if (key == "algorithm") {
      o.algorithm = one_of(file, key, node, {"lpt", "chunks"});
    } else if (key == "schedule") {
      o.schedule = one_of(file, key, node, {"dynamic", "static"});
    } else if (key == "max-worker-restarts") {
      double n = in_range(file, key, node, true);
      if (n != static_cast<int>(n)) {
        throw UsageError(fmt::format("{}: 'max-worker-restarts' must be a whole number", where(file, node)));
      }
      o.max_worker_restarts = static_cast<int>(n);
    } else if (key == "allow-no-tests") {
      o.allow_no_tests = as_bool(file, key, node);
    } else if (key == "durations") {
      for (const std::string& p : as_strings(file, key, node)) o.durations.emplace_back(p);
    } else if (key == "durations-junit") {
      for (const std::string& p : as_strings(file, key, node)) o.durations_junit.emplace_back(p);
    } else if (key == "store-durations") {
      o.store_durations = as_bool(file, key, node);
    } else if (key == "reports-dir") {
      o.reports_dir = as_string(file, key, node);
    } else if (key == "timeout") {
      o.timeout = in_range(file, key, node, false);
    } else if (key == "kill-grace") {
      o.kill_grace = in_range(file, key, node, true);
    } else if (key == "runner") {
      o.runner = one_of(file, key, node, {"auto", "pytest", "generic"});
    } else if (key == "list-command") {
      o.list_command = as_string(file, key, node);
    } else if (key == "with") {
      o.services = as_strings(file, key, node);
    } else if (key == "listen") {
      o.listen = one_of(file, key, node, {"tcp", "socket"});
    } else if (key == "services") {
      const auto* services = node.as_table();
      if (services == nullptr) wrong_type(file, key, node, "a table of [services.NAME] tables");
      for (const auto& [name, service] : *services) {
        o.service_configs.push_back(service_config(file, std::string(name.str()), service));
      }
    } else if (key == "compose") {
      for (const std::string& p : as_strings(file, key, node)) o.compose_files.emplace_back(p);
    } else if (key == "docker-hosts") {
      o.docker_hosts = as_strings(file, key, node);
    } else if (key == "sidecars") {
      o.sidecars = as_strings(file, key, node);
    } else if (key == "compose-command") {
      o.compose_command = as_string(file, key, node);
    } else if (key == "service") {
      o.compose_service = as_string(file, key, node);
    } else if (key == "no-build") {
      o.no_build = as_bool(file, key, node);
    } else if (key == "wait") {
      o.waits = as_strings(file, key, node);
    } else if (key == "ready-timeout") {
      double seconds = as_number(file, key, node);
      if (!std::isfinite(seconds) || seconds < 1 || seconds > 1e7 || seconds != std::floor(seconds)) {
        throw UsageError(
            fmt::format("{}: 'ready-timeout' is {}: it must be a whole number of seconds, at least 1",
                        where(file, node), seconds));
      }
      o.ready_timeout = static_cast<int>(seconds);
    } else if (key == "ci") {
      o.ci = one_of(file, key, node, {"auto", "none", "github", "gitlab"});
    } else if (key == "progress") {
      o.progress = one_of(file, key, node, {"auto", "smart", "plain"});
    } else if (key == "command") {
      // A list is argv as it is; a string is split with shell quoting rules (no expansion).
      o.command = node.is_string() ? util::split_command_line(as_string(file, key, node))
                                   : as_strings(file, key, node);
    } else {
      throw UsageError(fmt::format(
          "{}: unknown key '{}' (known: groups, algorithm, schedule, max-worker-restarts, allow-no-tests, "
          "durations, durations-junit, store-durations, "
          "reports-dir, timeout, kill-grace, runner, list-command, with, listen, services, compose, service, "
          "sidecars, docker-hosts, "
          "compose-command, no-build, wait, ready-timeout, ci, "
          "progress, command)",
          where(file, node), key));
    }
  }
}

}  // namespace

std::optional<LoadedConfig> load_config(const std::optional<std::filesystem::path>& explicit_file) {
  std::filesystem::path file;
  bool pyproject = false;
  if (explicit_file) {
    file = *explicit_file;
    if (!std::filesystem::exists(file))
      throw UsageError(fmt::format("{}: no such configuration file", file.string()));
    pyproject = file.filename() == "pyproject.toml";
  } else if (std::filesystem::exists("testfleet.toml")) {
    file = "testfleet.toml";
  } else if (std::filesystem::exists("pyproject.toml")) {
    file = "pyproject.toml";
    pyproject = true;
  } else {
    return std::nullopt;
  }
  toml::table document;
  try {
    document = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw UsageError(fmt::format("{}:{}:{}: {}", file.string(), e.source().begin.line,
                                 e.source().begin.column, e.description()));
  }
  const toml::table* table = &document;
  if (pyproject) {
    table = document["tool"]["testfleet"].as_table();
    if (table == nullptr) {
      if (explicit_file) throw UsageError(fmt::format("{}: no [tool.testfleet] table", file.string()));
      return std::nullopt;
    }
  } else if (const toml::table* nested = document["testfleet"].as_table()) {
    table = nested;
  }
  LoadedConfig config;
  config.file = file;
  config.options.config_file = file;
  apply(file, *table, config);
  return config;
}

}  // namespace testfleet::cli
