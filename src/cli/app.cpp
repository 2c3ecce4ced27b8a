#include "cli/app.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstring>
#include <iostream>

#include "cli/config.hpp"
#include "cli/help_command.hpp"
#include "cli/merge_command.hpp"
#include "cli/report_command.hpp"
#include "cli/run_command.hpp"
#include "cli/tool_commands.hpp"
#include "testfleet_revision.hpp"
#include "util/error.hpp"
#include "util/signals.hpp"

namespace testfleet::cli {
namespace {

constexpr const char* kExitCodes = R"(Exit codes:
  0    every test passed
  1    test failures or errors (a test that never reported counts as an error)
  2    usage or configuration error
  3    infrastructure error (an environment, server or engine failed)
  5    no tests were collected (as pytest; --allow-no-tests makes it 0)
  129, 130, 143  interrupted by SIGHUP, SIGINT, SIGTERM (partial results are still merged)
)";

// Which option names were given on the command line, so configuration fills only the others.
struct Given {
  CLI::App* app;
  bool operator()(const std::string& name) const { return app->count(name) > 0; }
};

void add_selection_options(CLI::App& sub, RunOptions& o, std::optional<std::string>& config_file) {
  sub.add_option("-n,--groups", o.groups, "Number of groups run in parallel (default: one per core)")
      ->check(CLI::PositiveNumber);
  sub.add_option("--algorithm", o.algorithm, "lpt (longest first into the least loaded group) or chunks")
      ->check(CLI::IsMember({"lpt", "chunks"}));
  sub.add_option("--durations", o.durations,
                 "pytest-split .test_durations file(s) (default: ./.test_durations when it exists)")
      ->allow_extra_args(false);
  sub.add_option("--durations-junit", o.durations_junit,
                 "JUnit XML file(s) of an earlier run to take durations from")
      ->allow_extra_args(false);
  sub.add_option("--runner", o.runner, "auto, pytest or generic");
  sub.add_option("--list-command", o.list_command,
                 "Generic runner: a command printing one test ID per line; the test command then takes "
                 "{tests} or {tests_file}, {junit}, {group}, {groups}, {run_id}");
  sub.add_option("--reports-dir", o.reports_dir,
                 "Where groups' logs and reports go (default: testfleet-reports)");
  sub.add_option("--with", o.services,
                 "Give every group its own server of this kind: postgres, redis, or one "
                 "from the configuration (repeatable)")
      ->allow_extra_args(false);
  sub.add_option("--listen", o.listen,
                 "Where the built-in postgres and redis listen: tcp (127.0.0.1, default) or socket (only a "
                 "Unix socket in the server's private directory; DATABASE_URL and REDIS_URL name it)")
      ->check(CLI::IsMember({"tcp", "socket"}));
  sub.add_option(
         "--compose", o.compose_files,
         "Run every group in its own docker compose project of this file (repeatable, like compose's -f)")
      ->allow_extra_args(false);
  sub.add_option("--service", o.compose_service, "The compose service the tests run in");
  sub.add_option(
         "--docker-host", o.docker_hosts,
         "Compose: a Docker engine to run groups on (repeatable: groups are spread over the engines by "
         "their CPUs; unix://, tcp://, ssh://; default: DOCKER_HOST)")
      ->allow_extra_args(false);
  sub.add_option("--sidecar", o.sidecars,
                 "A compose service to start for every group (repeatable; default: the service's depends_on)")
      ->allow_extra_args(false);
  sub.add_option(
      "--compose-command", o.compose_command,
      "How to run compose, e.g. 'docker compose' or docker-compose (default: $TESTFLEET_COMPOSE, then "
      "docker compose, then docker-compose)");
  sub.add_flag("--no-build", o.no_build, "Use the compose file's images as they are; build nothing");
  sub.add_option("--wait", o.waits, "Compose: also wait for this SERVICE:PORT of a sidecar (repeatable)")
      ->allow_extra_args(false);
  sub.add_option(
         "--ready-timeout", o.ready_timeout,
         "Compose: seconds a group's sidecars may take to become ready (healthchecks, else ports, and "
         "--wait; counted once `up` has started them) before the group fails (default 180)")
      ->check(CLI::Range(1, 10000000));
  sub.add_option("--config", config_file,
                 "Configuration file (default: testfleet.toml, else [tool.testfleet] "
                 "in pyproject.toml)");
  sub.add_option(
      "--shard", o.shard,
      "Run shard K/N (1-based) of a split every machine computes the same; default: detected from "
      "GitLab, CircleCI, Buildkite, Semaphore, Kubernetes Indexed Jobs or Bazel; 'off' never shards");
  sub.add_option("--shards", o.shards,
                 "The number of shards of a Kubernetes Indexed Job (or TESTFLEET_SHARDS)")
      ->check(CLI::PositiveNumber);
  sub.add_option("command", o.command, "The test command, after --")->expected(-1);
}

// Applies configuration to every option whose flag was not given.
void merge_config(RunOptions& o, const std::optional<std::string>& config_file, const Given& given) {
  std::optional<LoadedConfig> loaded =
      load_config(config_file ? std::optional<std::filesystem::path>(*config_file) : std::nullopt);
  if (!loaded) return;
  const RunOptions& c = loaded->options;
  auto from_config = [&](const char* key, const char* flag) {
    return loaded->keys.count(key) > 0 && !given(flag);
  };
  if (from_config("groups", "--groups")) o.groups = c.groups;
  if (from_config("algorithm", "--algorithm")) o.algorithm = c.algorithm;
  if (from_config("schedule", "--schedule")) o.schedule = c.schedule;
  if (from_config("max-worker-restarts", "--max-worker-restarts"))
    o.max_worker_restarts = c.max_worker_restarts;
  if (from_config("allow-no-tests", "--allow-no-tests")) o.allow_no_tests = c.allow_no_tests;
  if (from_config("durations", "--durations")) o.durations = c.durations;
  if (from_config("durations-junit", "--durations-junit")) o.durations_junit = c.durations_junit;
  if (from_config("runner", "--runner")) o.runner = c.runner;
  if (from_config("list-command", "--list-command")) o.list_command = c.list_command;
  if (from_config("reports-dir", "--reports-dir")) o.reports_dir = c.reports_dir;
  if (from_config("with", "--with")) o.services = c.services;
  if (from_config("listen", "--listen")) o.listen = c.listen;
  o.service_configs = c.service_configs;
  if (from_config("compose", "--compose")) o.compose_files = c.compose_files;
  if (from_config("sidecars", "--sidecar")) o.sidecars = c.sidecars;
  if (from_config("docker-hosts", "--docker-host")) o.docker_hosts = c.docker_hosts;
  if (from_config("compose-command", "--compose-command")) o.compose_command = c.compose_command;
  if (from_config("service", "--service")) o.compose_service = c.compose_service;
  if (from_config("no-build", "--no-build")) o.no_build = c.no_build;
  if (from_config("wait", "--wait")) o.waits = c.waits;
  if (from_config("ready-timeout", "--ready-timeout")) o.ready_timeout = c.ready_timeout;
  if (from_config("command", "command")) o.command = c.command;
  if (loaded->keys.count("store-durations") && !given("--store-durations"))
    o.store_durations = c.store_durations;
  if (loaded->keys.count("timeout") && !given("--timeout")) o.timeout = c.timeout;
  if (loaded->keys.count("kill-grace") && !given("--kill-grace")) o.kill_grace = c.kill_grace;
  if (loaded->keys.count("ci") && !given("--ci")) o.ci = c.ci;
  if (loaded->keys.count("progress") && !given("--progress")) o.progress = c.progress;
  o.config_file = loaded->file;
}

}  // namespace

int main(int argc, char** argv) {
  util::SignalWatcher::start();
  CLI::App app{
      "testfleet: split a slow test suite into groups balanced by past durations, run every group in\n"
      "its own isolated environment, supervise them, and merge their reports into one.\n"};
  // Parsed from a vector below, so CLI11 never learns argv[0]: the usage lines need the name.
  app.name("testfleet");
  app.set_version_flag("--version",
                       fmt::format("testfleet {} (revision {})", TESTFLEET_VERSION, TESTFLEET_REVISION));
  app.require_subcommand(1);
  app.footer(std::string("\n") + kExitCodes +
             "\nExamples:\n  testfleet run -n 4 -- pytest --junit-xml=unit.xml tests/\n"
             "  testfleet run -n 4 --with postgres --with redis -- pytest --junit-xml=unit.xml tests/\n"
             "  testfleet plan -n 4 --format json -- pytest tests/\n");

  RunOptions run_options;
  std::optional<std::string> run_config;
  std::optional<double> timeout;
  CLI::App* run = app.add_subcommand("run", "Collect, plan, provision, run every group, merge the reports");
  add_selection_options(*run, run_options, run_config);
  run->add_option("--schedule", run_options.schedule,
                  "dynamic (default): the plan is each worker's initial queue, and a worker whose queue runs "
                  "dry takes tests from the one with the most estimated time left; static: the plan exactly, "
                  "reproducible (--shard K/N always splits statically across machines)")
      ->check(CLI::IsMember({"dynamic", "static"}));
  run->add_option("--max-worker-restarts", run_options.max_worker_restarts,
                  "How many times in the whole run a worker's runner that died (SIGKILL, a segfault, "
                  "os._exit) is started again in the same environment (default 3); the test it was "
                  "running is an error naming the crash, its other tests run on")
      ->check(CLI::NonNegativeNumber);
  run->add_flag("--allow-no-tests", run_options.allow_no_tests,
                "Exit 0 when nothing is collected (default: exit 5, as pytest does)");
  run->add_option("--timeout", timeout,
                  "Seconds one test (a batch, for --list-command runners; a collection) may run before its "
                  "worker's runner is stopped; that test is reported as timed out, and the worker's other "
                  "tests run on the other workers")
      ->check(CLI::PositiveNumber);
  run->add_option("--kill-grace", run_options.kill_grace,
                  "Seconds a stopped worker gets to write its reports before it is killed (default 10)")
      ->check(CLI::NonNegativeNumber);
  run->add_flag("--store-durations", run_options.store_durations,
                "Write this run's durations into the .test_durations file (pytest-split format)");
  run->add_option("--store-durations-path", run_options.store_durations_path,
                  "Where --store-durations writes (default: the --durations file, else ./.test_durations)");
  run->add_flag("--dry-run", run_options.dry_run,
                "Print the initial assignment (dynamic scheduling may move tests), the workers' commands "
                "and environments; run nothing");
  run->add_option("--ci", run_options.ci, "CI integration: auto, none, github, gitlab")
      ->check(CLI::IsMember({"auto", "none", "github", "gitlab"}));
  run->add_option("--progress", run_options.progress,
                  "auto, smart (status area redrawn in place) or plain lines")
      ->check(CLI::IsMember({"auto", "smart", "plain"}));
  run->footer(
      std::string("\n") + kExitCodes +
      "\nEnvironment:\n"
      "  TESTFLEET_SERVER_DIR  where native servers keep their data (default: TMPDIR when set, else "
      "/dev/shm\n"
      "                        when it is a tmpfs with room, else /tmp)\n"
      "  TESTFLEET_COMPOSE     the compose command, e.g. 'docker-compose' (default: docker compose, then\n"
      "                        docker-compose)\n"
      "  DOCKER_HOST           the Docker engine of the compose backend (--docker-host for several)\n"
      "  NO_COLOR, CLICOLOR_FORCE  colour off, or on without a terminal\n");

  RunOptions plan_options;
  std::optional<std::string> plan_config;
  CLI::App* plan =
      app.add_subcommand("plan", "Collect and print the groups with their estimated times; run nothing");
  add_selection_options(*plan, plan_options, plan_config);
  plan->add_option("--format", plan_options.format, "text or json")->check(CLI::IsMember({"text", "json"}));

  RunOptions matrix_options;
  std::optional<std::string> matrix_config;
  int matrix_shards = 0;
  CLI::App* matrix = app.add_subcommand(
      "matrix", "Print a GitHub Actions matrix of N shards ({\"include\":[...]}) with estimated times");
  matrix->add_option("shards", matrix_shards, "Number of shards")->required()->check(CLI::PositiveNumber);
  add_selection_options(*matrix, matrix_options, matrix_config);
  matrix->footer(
      "\nIn a workflow: testfleet matrix 4 -- pytest tests/ > matrix.json, then each job runs "
      "testfleet run --shard ${{ matrix.shard }} ...");

  std::string merge_kind;
  std::string merge_out;
  std::vector<std::string> merge_inputs;
  CLI::App* merge = app.add_subcommand(
      "merge",
      "Merge report files into one (junit, cobertura, lcov, coverage), or CI shards' reports directories "
      "(runs)");
  std::string merge_durations;
  merge
      ->add_option(
          "kind", merge_kind,
          "junit, cobertura, lcov or coverage (files; coverage: coverage.py data files, combined as "
          "`coverage combine` does, without coverage.py), or runs (the reports directories of CI shards: one "
          "JUnit, coverage, .test_durations and summary.md into the directory OUT)")
      ->required()
      ->check(CLI::IsMember({"junit", "cobertura", "lcov", "coverage", "runs"}));
  merge->add_option("--durations", merge_durations, "runs: the .test_durations to update (default: none)");
  std::vector<std::string> merge_remaps;
  merge
      ->add_option("--remap", merge_remaps,
                   "coverage: FROM=TO, a path prefix of the inputs and what it becomes (as coverage.py's "
                   "[paths]); repeatable, the first that matches applies")
      ->allow_extra_args(false);
  merge->add_option("out", merge_out, "The merged file to write")->required();
  merge->add_option("inputs", merge_inputs, "Input files or globs (quoted, e.g. 'reports/*/junit.xml')")
      ->required()
      ->expected(-1);
  merge->footer(
      "\nExamples:\n  testfleet merge junit junit.xml 'reports/*/junit.xml'\n  testfleet merge coverage "
      ".coverage 'groups/*/.coverage' --remap /builds/ci=$PWD\n\nA malformed input is named with its line "
      "and column (or, for coverage data, why it is not coverage.py data) and skipped; the others are still "
      "merged and the exit code is 2. Coverage data of lines and of branches (--cov-branch) are never "
      "mixed: that is an error, exit 2.");

  std::vector<std::string> wait_endpoints;
  std::vector<std::string> wait_command;
  double wait_timeout = 60;
  bool wait_quiet = false;
  CLI::App* wait = app.add_subcommand(
      "wait",
      "Wait until every HOST:PORT accepts TCP connections, then run a command (replaces wait-for-it; "
      "works in any Linux container)");
  wait->add_option("endpoints", wait_endpoints, "HOST:PORT to wait for ([IPv6]:PORT too); then -- CMD")
      ->required();
  wait->add_option("-t,--timeout", wait_timeout, "Seconds to wait in all (default 60)")
      ->check(CLI::PositiveNumber);
  wait->add_flag("-q,--quiet", wait_quiet, "Say nothing unless it times out");
  wait->footer(
      "\nExamples:\n  testfleet wait db:5432 redis:6379 --timeout 30 -- pytest\n\nExit codes: 0 all open "
      "(or the command's own), 2 bad endpoint, 3 timed out.");

  std::string report_dir = "testfleet-reports";
  CLI::App* report =
      app.add_subcommand("report", "Make the HTML report (report.html) again from a reports directory");
  report->add_option("dir", report_dir, "The reports directory of a run (default: testfleet-reports)");
  report->footer(
      "\nExamples:\n  testfleet report\n  testfleet report ci-artifacts/testfleet-reports\n\nExit codes: 0 "
      "written (its path is printed), 2 not the reports directory of a run.");

  HelpRequest help_request;
  CLI::App* help = add_help_command(app, help_request);

  bool clean_dry_run = false;
  CLI::App* clean = app.add_subcommand(
      "clean",
      "Remove what interrupted or killed runs left: servers, temporary directories, compose projects");
  clean->add_flag("--dry-run", clean_dry_run, "Say what would be removed; remove nothing");
  bool clean_all = false;
  std::vector<std::string> clean_hosts;
  clean->add_flag(
      "--all", clean_all,
      "Also remove every compose project named testfleet-* that no run of this machine accounts for "
      "(careful: other machines' live runs on a shared engine too)");
  clean->add_option("--docker-host", clean_hosts, "Docker engine(s) for --all (default: DOCKER_HOST)")
      ->allow_extra_args(false);
  clean->footer(
      "\nExamples:\n  testfleet clean --dry-run\n  testfleet clean\n  testfleet clean --all --docker-host "
      "ssh://ci@docker-2\n\nExit codes: 0 nothing was left (or all of it is removed), 3 something could not "
      "be removed (each named).");

  // `wait A B -- CMD`: CLI11 gives everything after -- to the last positional, so split it off first.
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "wait") {
    auto dash = std::find(args.begin(), args.end(), "--");
    if (dash != args.end()) {
      wait_command.assign(dash + 1, args.end());
      args.erase(dash, args.end());
    }
  }

  try {
    std::reverse(args.begin(), args.end());
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  }

  try {
    if (run->parsed()) {
      merge_config(run_options, run_config, Given{run});
      if (timeout) run_options.timeout = timeout;
      return run_tests(run_options);
    }
    if (merge->parsed()) {
      if (merge_kind == "runs") return merge_runs(merge_out, merge_inputs, merge_durations);
      return merge_reports(merge_kind, merge_out, merge_inputs, merge_remaps);
    }
    if (report->parsed()) return rebuild_report(report_dir);
    if (help->parsed()) return print_help(app, help_request, std::cout);
    if (wait->parsed()) return wait_for(wait_endpoints, wait_timeout, wait_command, wait_quiet);
    if (clean->parsed()) return clean_leftovers(clean_dry_run, clean_all, clean_hosts);
    if (matrix->parsed()) {
      merge_config(matrix_options, matrix_config, Given{matrix});
      return print_matrix(matrix_options, matrix_shards);
    }
    if (plan->parsed()) {
      merge_config(plan_options, plan_config, Given{plan});
      return print_plan(plan_options);
    }
  } catch (const Error& e) {
    // A stop signal that cut a phase short is the reason, whatever the phase said.
    if (int sig = util::SignalWatcher::instance().received(); sig != 0) {
      const char* name = sigabbrev_np(sig);
      std::cerr << "testfleet: interrupted by SIG" << (name != nullptr ? name : "?") << ": " << e.what()
                << "\n";
      return 128 + sig;
    }
    std::cerr << "testfleet: error: " << e.what() << "\n";
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cerr << "testfleet: error: " << e.what() << "\n";
    return static_cast<int>(ExitCode::kInfrastructure);
  }
  return 0;
}

}  // namespace testfleet::cli
