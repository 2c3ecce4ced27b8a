#include "cli/pipeline.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "environments/compose_backend.hpp"
#include "environments/native_backend.hpp"
#include "reports/durations.hpp"
#include "runners/generic_runner.hpp"
#include "runners/pytest_runner.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace testfleet::cli {
namespace {

std::string new_run_id() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&t, &utc);
  std::random_device random;
  return fmt::format("{:04}{:02}{:02}{:02}{:02}{:02}-{:06x}", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                     utc.tm_hour, utc.tm_min, utc.tm_sec, random() & 0xffffffu);
}

}  // namespace

RunContext make_context(const RunOptions& options) {
  RunContext context;
  context.run_id = new_run_id();
  context.cwd = std::filesystem::current_path();
  context.reports_dir = std::filesystem::absolute(options.reports_dir).lexically_normal();
  context.support_dir = context.reports_dir / ".testfleet";
  return context;
}

std::optional<util::TempDir> place_support_dir(RunContext& context, const environments::Backend& backend) {
  if (backend.name() == "compose") return std::nullopt;
  util::TempDir dir("testfleet-support-" + context.run_id + "-");
  ::chmod(dir.path().c_str(), 0755);
  context.support_dir = dir.path();
  return dir;
}

std::unique_ptr<runners::Runner> make_runner(const RunOptions& options, const RunContext& context) {
  if (options.command.empty()) {
    throw UsageError("no test command: give it after --, e.g. testfleet run -n 4 -- pytest tests/");
  }
  std::string kind = options.runner;
  if (kind == "auto")
    kind = !options.list_command.empty()                 ? "generic"
           : runners::is_pytest_command(options.command) ? "pytest"
                                                         : "";
  if (kind == "pytest") return std::make_unique<runners::PytestRunner>(options.command, context.cwd);
  if (kind == "generic") {
    if (options.list_command.empty()) {
      throw UsageError("the generic runner needs --list-command, a command that prints one test ID per line");
    }
    return std::make_unique<runners::GenericRunner>(util::split_command_line(options.list_command),
                                                    options.command, std::nullopt);
  }
  if (kind.empty()) {
    throw UsageError(
        fmt::format("'{}' is not pytest: for any other runner give --list-command (a command that "
                    "lists one test ID per line) and placeholders in the test command "
                    "({{tests}} or {{tests_file}}, and {{junit}})",
                    util::shell_join(options.command)));
  }
  throw UsageError(fmt::format("unknown runner '{}' (expected auto, pytest or generic)", kind));
}

util::EnvVars with_variables(util::EnvVars host, const util::EnvVars& variables) {
  for (const auto& [key, value] : variables) {
    auto existing = host.find(key);
    bool extend = existing != host.end() && !existing->second.empty() &&
                  (key == "PYTHONPATH" || key == "PYTEST_PLUGINS");
    host[key] = extend ? value + (key == "PYTHONPATH" ? ":" : ",") + existing->second : value;
  }
  return host;
}

std::vector<std::string> discover(const runners::Runner& runner, environments::Backend& backend,
                                  const RunContext& context, ui::StatusPrinter& printer) {
  environments::GroupSlot slot;
  slot.index = 0;
  slot.run_id = context.run_id;
  slot.run_reports_dir = context.reports_dir;
  slot.group_reports_dir = context.reports_dir / "collect";
  std::filesystem::create_directories(slot.group_reports_dir);
  std::unique_ptr<environments::Environment> environment = backend.discovery_environment(slot);

  runners::CommandPaths paths{slot.group_reports_dir, environment->path_inside(slot.group_reports_dir),
                              environment->path_inside(context.support_dir), environment->sees_host_files()};
  runners::Command command = runner.collect_command(paths);
  util::SpawnSpec spec;
  spec.cwd = context.cwd;
  if (environment->variables_in_host_environment()) {
    spec.env = with_variables(util::current_environment(), command.variables);
    spec.argv = command.argv;
  } else {
    spec.argv = environment->wrap_command(command.argv, command.variables);
  }
  printer.line(fmt::format("collecting tests: {}", util::shell_join(command.argv)));
  auto start = std::chrono::steady_clock::now();
  util::CommandResult result;
  try {
    result = util::run_command(spec, std::nullopt, command.output_is_data);
  } catch (const InfrastructureError& e) {
    // The user's command does not exist: that is theirs to fix.
    throw UsageError(e.what());
  }
  std::vector<std::string> ids = runner.read_collection(result, paths);
  printer.line(fmt::format("collected {} tests in {:.1f}s", ids.size(),
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
  std::vector<std::string> leftovers = environment->teardown();
  for (const std::string& what : leftovers) printer.line("warning: " + what);
  return ids;
}

std::vector<planning::Test> with_durations(std::vector<std::string> ids, const RunOptions& options,
                                           const runners::Runner& runner) {
  reports::DurationStore store;
  std::vector<std::filesystem::path> files = options.durations;
  if (files.empty() && std::filesystem::exists(".test_durations")) files.emplace_back(".test_durations");
  for (const std::filesystem::path& file : files) store.load_test_durations(file);
  for (const std::filesystem::path& file : options.durations_junit) store.load_junit(file);

  std::vector<planning::Test> tests;
  tests.reserve(ids.size());
  double known_sum = 0;
  std::size_t known = 0;
  // Without a durations source every test is estimated: no key to build, nothing to look up.
  bool any_source = !files.empty() || !options.durations_junit.empty();
  for (std::string& id : ids) {
    std::optional<double> seconds;
    if (any_source) {
      seconds = store.lookup(id);
      // The JUnit key (two strings a test) only for a test its ID did not find.
      if (!seconds && store.has_junit_keys()) {
        reports::JUnitKey key = runner.junit_key(id);
        seconds = store.lookup(id, &key);
      }
    }
    tests.push_back({std::move(id), seconds.value_or(0), !seconds.has_value()});
    if (seconds) {
      known_sum += *seconds;
      ++known;
    }
  }
  // As pytest-split: an unknown test is as long as the average known one; with none known, 1 s each.
  double estimate = known > 0 ? known_sum / static_cast<double>(known) : 1.0;
  for (planning::Test& t : tests) {
    if (t.estimated) t.seconds = estimate;
  }
  return tests;
}

std::vector<planning::Test> select_shard(std::vector<planning::Test> tests, const RunOptions& options,
                                         ui::StatusPrinter& printer, std::optional<ShardSpec>* shard) {
  *shard = resolve_shard(options.shard, options.shards, util::current_environment());
  if (!*shard) return tests;
  std::size_t all = tests.size();
  tests = planning::shard_tests(tests, (*shard)->index, (*shard)->count);
  printer.line(fmt::format("shard {}/{} (from {}): {} of {} tests", (*shard)->index, (*shard)->count,
                           (*shard)->source, tests.size(), all));
  return tests;
}

std::string format_plan(const planning::Plan& plan, const std::string& format) {
  if (format == "json") {
    nlohmann::json document;
    document["algorithm"] = std::string(planning::to_string(plan.algorithm));
    document["requested_groups"] = plan.requested_groups;
    document["tests"] = plan.tests.size();
    document["estimated_tests"] = plan.estimated_count();
    document["total_seconds"] = plan.total_seconds();
    document["makespan_seconds"] = plan.makespan_seconds();
    document["lower_bound_seconds"] = plan.lower_bound_seconds();
    document["groups"] = nlohmann::json::array();
    for (const planning::Group& g : plan.groups) {
      nlohmann::json group;
      group["group"] = g.index;
      group["seconds"] = g.seconds;
      group["tests"] = nlohmann::json::array();
      for (std::size_t t : g.tests) {
        const planning::Test& test = plan.tests[t];
        group["tests"].push_back({{"id", test.id}, {"seconds", test.seconds}, {"estimated", test.estimated}});
      }
      document["groups"].push_back(group);
    }
    return document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  if (format != "text") throw UsageError(fmt::format("unknown format '{}' (expected text or json)", format));
  std::string out = fmt::format(
      "{} tests in {} groups ({}), {} of tests in all; makespan ~{} (lower bound {})\n", plan.tests.size(),
      plan.groups.size(), planning::to_string(plan.algorithm), util::format_duration(plan.total_seconds()),
      util::format_duration(plan.makespan_seconds()), util::format_duration(plan.lower_bound_seconds()));
  if (static_cast<std::size_t>(plan.requested_groups) > plan.groups.size()) {
    out += fmt::format("only {} tests for {} groups: running {} groups, none empty\n", plan.tests.size(),
                       plan.requested_groups, plan.groups.size());
  }
  std::size_t estimated = plan.estimated_count();
  if (estimated > 0) {
    out += fmt::format("{} of {} tests have no recorded duration: their times are estimates (marked *)\n",
                       estimated, plan.tests.size());
  }
  // A million tests print a million lines: appended in place into one buffer sized up front, and a
  // duration formatted again only when it differs from the line before (estimates are all equal).
  std::size_t size = out.size() + plan.groups.size() * 48;
  for (const planning::Test& test : plan.tests) size += test.id.size() + 14;
  out.reserve(size);
  double shown_seconds = -1;
  std::string shown;
  for (const planning::Group& g : plan.groups) {
    out +=
        fmt::format("group {}: {} tests, ~{}\n", g.index, g.tests.size(), util::format_duration(g.seconds));
    for (std::size_t t : g.tests) {
      const planning::Test& test = plan.tests[t];
      if (test.seconds != shown_seconds) {
        shown_seconds = test.seconds;
        shown = fmt::format("{:>8}", util::format_duration(test.seconds));
      }
      out += "  ";
      out += shown;
      out += ' ';
      out += test.id;
      if (test.estimated) out += " *";
      out += '\n';
    }
  }
  return out;
}

}  // namespace testfleet::cli

namespace testfleet::cli {

std::unique_ptr<environments::Backend> make_backend(const RunOptions& options, const RunContext& context) {
  if (!options.compose_files.empty()) {
    if (!options.services.empty()) {
      throw UsageError(
          "--with and --compose do not go together: the compose file's services are the environment");
    }
    if (options.compose_service.empty()) {
      throw UsageError("--compose needs --service, the compose service the tests run in");
    }
    environments::ComposeOptions compose;
    compose.files = options.compose_files;
    compose.service = options.compose_service;
    compose.sidecars = options.sidecars;
    compose.waits = options.waits;
    if (options.ready_timeout > 0) compose.ready_timeout = std::chrono::seconds(options.ready_timeout);
    compose.no_build = options.no_build;
    compose.docker_hosts = options.docker_hosts;
    if (!options.compose_command.empty())
      compose.compose_command = util::split_command_line(options.compose_command);
    return environments::make_compose_backend(std::move(compose));
  }
  if (!options.compose_service.empty() || !options.sidecars.empty() || !options.waits.empty() ||
      !options.docker_hosts.empty()) {
    throw UsageError("--service, --sidecar, --wait and --docker-host go with --compose");
  }
  if (options.services.empty()) return std::make_unique<environments::HostBackend>();
  environments::NativeOptions native;
  native.run_id = context.run_id;
  native.listen = environments::parse_listen_mode(options.listen);
  for (const std::string& name : options.services) {
    auto configured = std::find_if(options.service_configs.begin(), options.service_configs.end(),
                                   [&](const environments::ServiceConfig& c) { return c.name == name; });
    if (configured != options.service_configs.end()) {
      native.services.push_back(environments::service_from_config(*configured));
    } else if (std::optional<environments::ServiceSpec> builtin = environments::builtin_service(name)) {
      native.services.push_back(*builtin);
    } else {
      throw UsageError(
          fmt::format("unknown service '{}': the built-ins are postgres and redis; others are "
                      "defined in a [services.{}] table of testfleet.toml",
                      name, name));
    }
  }
  return environments::make_native_backend(std::move(native));
}

}  // namespace testfleet::cli
