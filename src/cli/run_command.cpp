#include "cli/run_command.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "ci/ci_output.hpp"
#include "cli/coverage_reports.hpp"
#include "cli/fleet_commands.hpp"
#include "cli/pipeline.hpp"
#include "cli/report_command.hpp"
#include "cli/run_owner.hpp"
#include "execution/all_environments.hpp"
#include "execution/fleet.hpp"
#include "reports/durations.hpp"
#include "reports/junit.hpp"
#include "runners/pytest_runner.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/secrets.hpp"
#include "util/signals.hpp"
#include "util/strings.hpp"

namespace testfleet::cli {
namespace {

using Clock = std::chrono::steady_clock;

ui::StatusPrinter::Mode progress_mode(const RunOptions& options) {
  if (options.progress == "smart") return ui::StatusPrinter::Mode::kSmart;
  if (options.progress == "plain") return ui::StatusPrinter::Mode::kPlain;
  if (options.progress != "auto") {
    throw UsageError(
        fmt::format("unknown progress mode '{}' (expected auto, smart or plain)", options.progress));
  }
  const char* ci = std::getenv("CI");
  if (ci != nullptr && *ci != '\0' && std::string_view(ci) != "false") return ui::StatusPrinter::Mode::kPlain;
  return ui::StatusPrinter::Mode::kAuto;
}

int group_count(const RunOptions& options) {
  if (options.groups > 0) return options.groups;
  long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  return cores > 0 ? static_cast<int>(cores) : 1;
}

// The reports directory holds this run only: earlier groups' files would be read as this run's.
void prepare_reports_dir(const RunContext& context) {
  std::filesystem::create_directories(context.reports_dir);
  for (const auto& entry : std::filesystem::directory_iterator(context.reports_dir)) {
    std::string name = entry.path().filename().string();
    if (name.starts_with("group-") || name == "collect" || name == ".testfleet") {
      std::filesystem::remove_all(entry.path());
    }
  }
}

ExitCode exit_code_for_signal(int sig) {
  if (sig == SIGTERM) return ExitCode::kTerminated;
  if (sig == SIGHUP) return ExitCode::kHangup;
  return ExitCode::kInterrupted;
}

// Everything the run must undo whatever happens: environments torn down, shared resources removed.
class Cleanup {
 public:
  Cleanup(environments::Backend& backend, ui::StatusPrinter& printer)
      : backend_(backend), printer_(printer) {}
  ~Cleanup() { release(); }
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;

  std::vector<std::unique_ptr<environments::Environment>> environments;

  std::vector<double> teardown_seconds;

  // Returns what could not be removed (each also printed as a warning).
  std::vector<std::string> teardown_environments() {
    std::vector<std::string> left = execution::teardown_all(environments, &teardown_seconds);
    for (const std::string& what : left) printer_.line("warning: " + what);
    environments.clear();
    return left;
  }
  void release() {
    if (released_) return;
    released_ = true;
    teardown_environments();
    for (const std::string& what : backend_.finish()) printer_.line("warning: " + what);
  }

 private:
  environments::Backend& backend_;
  ui::StatusPrinter& printer_;
  bool released_ = false;
};

// A testcase of testfleet's own making for test `id`, named as its runner would name it.
reports::TestCaseRecord testcase_for(const runners::Runner& runner, const std::string& id,
                                     reports::Outcome outcome, std::string message) {
  reports::JUnitKey key = runner.junit_key(id);
  reports::TestCaseRecord record;
  record.suite = runner.junit_suite_name();
  record.classname = key.classname;
  record.name = key.name;
  record.outcome = outcome;
  record.message = std::move(message);
  return record;
}

reports::Outcome outcome_from(std::string_view text) {
  if (text == "failed") return reports::Outcome::kFailed;
  if (text == "error") return reports::Outcome::kError;
  if (text == "skipped") return reports::Outcome::kSkipped;
  return reports::Outcome::kPassed;
}

struct MergeSummary {
  reports::Totals totals;
  std::size_t synthesized = 0;
  std::vector<reports::InputProblem> problems;
  std::vector<std::pair<std::string, std::string>> duplicates;
  std::filesystem::path output;
  std::map<std::string, double> durations;  // this run's, by test ID
  std::vector<reports::TestCaseRecord> testcases;
};

// One JUnit with every planned test: each runner's own JUnit where it wrote one; the channel's results of a
// runner that died before writing it; and for a test no runner reported, an error saying why.
MergeSummary merge_results(const runners::Runner& runner, const FleetCommands& commands,
                           const execution::FleetResult& result, const RunContext& context,
                           double wall_seconds) {
  reports::JUnitMerger merger;
  MergeSummary summary;
  // (worker, runner number) -> whether that runner's JUnit was merged
  std::map<std::pair<std::size_t, int>, bool> merged;
  for (std::size_t w = 0; w < result.workers.size(); ++w) {
    for (const execution::RunnerRecord& run : result.workers[w].runs) {
      if (run.start_error) continue;
      std::filesystem::path junit = runner.group_junit(commands.request(w, run.number));
      merged[{w, run.number}] = std::filesystem::exists(junit) && merger.add_file(junit);
    }
  }
  const std::vector<std::string> no_ids;
  const std::vector<std::string>& ids = result.assignment ? result.assignment->ids : no_ids;
  for (std::size_t t = 0; t < ids.size(); ++t) {
    const execution::TestRecord& test = result.tests[t];
    const std::string& id = ids[t];
    if (test.reported) {
      summary.durations[id] = test.seconds;
      auto it = merged.find({*test.worker, test.run});
      if (it != merged.end() && it->second) continue;
      // Reported through the channel only: its runner never wrote its JUnit.
      reports::TestCaseRecord record = testcase_for(runner, id, outcome_from(test.outcome), test.message);
      record.time = test.seconds;
      merger.add_testcase(runner.junit_suite_name(), record);
      if (!test.teardown_error.empty()) {
        record.outcome = reports::Outcome::kError;
        record.message = test.teardown_error;
        record.time = 0;
        merger.add_testcase(runner.junit_suite_name(), record);
      }
      continue;
    }
    reports::TestCaseRecord record = testcase_for(runner, id, reports::Outcome::kError, test.cause);
    record.text = fmt::format("{}\ntest: {}", record.message, id);
    if (test.worker) {
      record.text += fmt::format("\nworker log: {}", commands.log(*test.worker).string());
      for (const std::string& problem : result.workers[*test.worker].problems)
        record.text += "\n\n" + problem;
    }
    merger.add_testcase(runner.junit_suite_name(), record);
    ++summary.synthesized;
  }
  for (const execution::CollectionSkip& skip : result.collection_skips) {
    reports::TestCaseRecord record = testcase_for(runner, skip.id, reports::Outcome::kSkipped, skip.message);
    record.text = skip.text;
    merger.add_testcase(runner.junit_suite_name(), record);
  }
  summary.output = runner.requested_junit().value_or(context.reports_dir / "junit.xml");
  if (summary.output.has_parent_path()) std::filesystem::create_directories(summary.output.parent_path());
  merger.write(summary.output, wall_seconds);
  summary.totals = merger.totals();
  summary.problems = merger.problems();
  summary.duplicates = merger.duplicates();
  summary.testcases = merger.testcases();
  return summary;
}

// What a worker's runners wrote (their output, progress, JUnit) may hold its servers' secrets: a test that
// printed DATABASE_URL, or failed on an assertion about it. Masked in place before anything reads them (the
// merge copies JUnit text as it is; the CI folds, the HTML report and `testfleet report` read the files),
// and in what the channel reported.
void mask_secrets(execution::FleetResult& result, const FleetCommands& commands,
                  const runners::Runner& runner,
                  const std::vector<std::unique_ptr<environments::Environment>>& environments) {
  for (std::size_t w = 0; w < result.workers.size() && w < environments.size(); ++w) {
    std::vector<std::string> secrets = environments[w]->secrets();
    if (secrets.empty()) continue;
    std::vector<std::filesystem::path> files = {commands.log(w),
                                                commands.log(w).parent_path() / "progress.jsonl"};
    for (const execution::RunnerRecord& run : result.workers[w].runs)
      files.push_back(runner.group_junit(commands.request(w, run.number)));
    for (const std::filesystem::path& file : files) {
      if (!std::filesystem::exists(file)) continue;
      std::string text = util::read_file(file);
      std::string masked = util::redact(text, secrets);
      if (masked != text) util::write_file_atomic(file, masked);
    }
    for (execution::TestRecord& test : result.tests) {
      if (test.worker != w) continue;
      test.message = util::redact(std::move(test.message), secrets);
      test.teardown_error = util::redact(std::move(test.teardown_error), secrets);
      test.cause = util::redact(std::move(test.cause), secrets);
    }
  }
}

// Every worker that ran shows "merging" (with how it ended) until the summary: teardown, the merge and the
// coverage reports can take a while after the last worker ended.
void show_merging(ui::StatusPrinter& printer, std::vector<ui::GroupView> views, double elapsed) {
  std::size_t merging = 0;
  for (ui::GroupView& view : views) {
    if (view.state != ui::GroupState::kPassed && view.state != ui::GroupState::kFailed) continue;
    std::string outcome(view.state == ui::GroupState::kPassed ? "passed" : "failed");
    view.detail = view.detail.empty() ? outcome : outcome + ", " + view.detail;
    view.state = ui::GroupState::kMerging;
    ++merging;
  }
  if (merging == 0) return;
  if (printer.smart()) {
    printer.status(views, elapsed);
  } else {
    printer.line(fmt::format("merging the reports of {} workers", merging));
  }
}

double epoch_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// When each phase began, in seconds since the epoch, for the report's timeline.
struct PhaseTimes {
  double run_started = 0;
  double prepare_seconds = 0;
  double provision_started = 0;
  double execute_started = 0;
  double teardown_started = 0;
  double teardown_ended = 0;
  std::vector<double> group_teardown_seconds;
};

std::string status_of(const execution::RunnerRecord& run, bool in_container) {
  if (run.start_error) return "could not start";
  if (!run.status) return "not ended";
  std::string how = execution::describe_exit(*run.status, in_container);
  if (run.timed_out) return "timed out, " + how;
  if (run.stopped) return "stopped, " + how;
  return how;
}

// run.json: what ran where, for `testfleet report`, the HTML report and whoever reads the artifact.
void write_run_record(const RunContext& context, const planning::Plan& plan,
                      const execution::FleetResult& result, const PhaseTimes& times,
                      const MergeSummary& summary, const std::optional<ShardSpec>& shard,
                      const RunOptions& options, std::size_t collected, double wall_seconds, int exit_code,
                      bool in_container) {
  nlohmann::json record;
  record["collected_tests"] = collected;
  record["planned_tests"] = plan.tests.size();
  record["estimated_tests"] = plan.estimated_count();
  if (shard) record["shard"] = {{"index", shard->index}, {"count", shard->count}, {"source", shard->source}};
  record["run_id"] = context.run_id;
  record["cwd"] = context.cwd.string();
  record["times"] = {{"run_started", times.run_started},
                     {"prepare_seconds", times.prepare_seconds},
                     {"provision_started", times.provision_started},
                     {"execute_started", times.execute_started},
                     {"teardown_started", times.teardown_started},
                     {"teardown_ended", times.teardown_ended}};
  record["algorithm"] = std::string(planning::to_string(plan.algorithm));
  record["schedule"] = options.schedule;
  record["restarts"] = result.restarts;
  record["exit_code"] = exit_code;
  record["wall_seconds"] = wall_seconds;
  record["lower_bound_seconds"] = plan.lower_bound_seconds();
  record["merged_junit"] = summary.output.string();
  record["totals"] = {{"tests", summary.totals.tests},
                      {"failures", summary.totals.failures},
                      {"errors", summary.totals.errors},
                      {"skipped", summary.totals.skipped},
                      {"not_reported", summary.synthesized}};
  // The workers, under the name the report has always read: one entry each, its runners within.
  record["groups"] = nlohmann::json::array();
  for (std::size_t w = 0; w < result.workers.size(); ++w) {
    const execution::WorkerRecord& worker = result.workers[w];
    nlohmann::json group;
    group["group"] = worker.index;
    group["tests"] = worker.tests_run;
    group["estimate_seconds"] = w < plan.groups.size() ? plan.groups[w].seconds : 0.0;
    group["log"] = (context.reports_dir / fmt::format("group-{}", worker.index) / "output.log").string();
    group["provision_seconds"] = worker.provision_seconds;
    if (w < times.group_teardown_seconds.size()) group["teardown_seconds"] = times.group_teardown_seconds[w];
    if (worker.provision_error) group["provision_error"] = *worker.provision_error;
    if (worker.lost) group["lost"] = *worker.lost;
    if (worker.collection_error) group["collection_error"] = *worker.collection_error;
    if (!worker.problems.empty()) group["problems"] = worker.problems;
    nlohmann::json runs = nlohmann::json::array();
    for (const execution::RunnerRecord& run : worker.runs) {
      nlohmann::json entry = {{"number", run.number},
                              {"batch", run.batch},
                              {"started", run.started},
                              {"ended", run.ended},
                              {"status", status_of(run, in_container)},
                              {"died", run.died},
                              {"timed_out", run.timed_out},
                              {"tests", run.tests.size()},
                              {"command", run.command}};
      runs.push_back(std::move(entry));
    }
    if (!worker.runs.empty()) {
      const execution::RunnerRecord& first = worker.runs.front();
      const execution::RunnerRecord& last = worker.runs.back();
      group["command"] = first.command;
      group["started"] = first.started;
      group["ended"] = last.ended;
      group["status"] = status_of(last, in_container);
      group["timed_out"] = std::any_of(worker.runs.begin(), worker.runs.end(),
                                       [](const execution::RunnerRecord& r) { return r.timed_out; });
    } else {
      group["status"] = worker.provision_error ? "environment failed" : "not started";
    }
    group["runs"] = std::move(runs);
    record["groups"].push_back(std::move(group));
  }
  record["steals"] = nlohmann::json::array();
  for (const execution::Steal& steal : result.steals) {
    nlohmann::json entry = {{"to", steal.to + 1},
                            {"tests", steal.tests},
                            {"seconds", steal.seconds},
                            {"at", times.execute_started + steal.at}};
    entry["from"] = steal.from == execution::Steal::kPool ? nlohmann::json("lost workers")
                                                          : nlohmann::json(steal.from + 1);
    record["steals"].push_back(std::move(entry));
  }
  // Where every test ran: its worker (1-based) and that worker's runner or batch number.
  nlohmann::json placement = nlohmann::json::array();
  if (result.assignment) {
    for (std::size_t t = 0; t < result.tests.size(); ++t) {
      const execution::TestRecord& test = result.tests[t];
      nlohmann::json entry = {{"id", result.assignment->ids[t]}};
      if (test.worker) {
        entry["worker"] = *test.worker + 1;
        entry["run"] = test.run;
      }
      if (!test.reported) entry["cause"] = test.cause;
      placement.push_back(std::move(entry));
    }
  }
  record["tests"] = std::move(placement);
  util::write_file_atomic(context.reports_dir / "run.json",
                          record.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

// The CI system's own views of the run: folded worker logs, annotations and the job summary.
void publish_to_ci(const RunOptions& options, const RunContext& context, const runners::Runner& runner,
                   const planning::Plan& plan, const execution::FleetResult& result,
                   const MergeSummary& merged, double wall, bool in_container, ui::StatusPrinter& printer) {
  util::EnvVars env = util::current_environment();
  ci::Provider provider = ci::detect(options.ci, env);
  if (provider == ci::Provider::kNone) return;
  ci::RunSummary summary;
  summary.run_id = context.run_id;
  summary.totals = merged.totals;
  summary.not_reported = merged.synthesized;
  summary.wall_seconds = wall;
  summary.lower_bound_seconds = plan.lower_bound_seconds();
  summary.testcases = merged.testcases;
  summary.merged_junit = merged.output.string();
  if (runner.name() == "pytest" && result.assignment) {
    for (const std::string& id : result.assignment->ids) {
      std::size_t sep = id.find("::");
      if (sep == std::string::npos) continue;
      reports::JUnitKey key = runner.junit_key(id);
      summary.files[key.classname + '\x1f' + key.name] = id.substr(0, sep);
    }
  }
  long long now = static_cast<long long>(epoch_now());
  for (std::size_t w = 0; w < result.workers.size(); ++w) {
    const execution::WorkerRecord& worker = result.workers[w];
    ci::GroupSummary group;
    group.index = worker.index;
    group.tests = worker.tests_run;
    group.estimate_seconds = w < plan.groups.size() ? plan.groups[w].seconds : 0.0;
    group.log = context.reports_dir / fmt::format("group-{}", worker.index) / "output.log";
    if (worker.provision_error) {
      group.status = "environment failed";
      group.failed = true;
    } else if (!worker.runs.empty()) {
      group.seconds = worker.runs.back().ended - worker.runs.front().started;
      group.status = status_of(worker.runs.back(), in_container);
      if (worker.runs.size() > 1) group.status += fmt::format(" ({} runners)", worker.runs.size());
      group.failed =
          worker.lost.has_value() || std::any_of(worker.runs.begin(), worker.runs.end(), [](const auto& r) {
            return r.died || r.timed_out || r.start_error || (r.status && !r.status->success());
          });
    } else {
      group.status = "not run";
      group.failed = true;
    }
    std::string log;
    try {
      log = util::read_file(group.log);
    } catch (const std::exception& e) {
      log = e.what();
    }
    printer.block(ci::fold(
        provider, fmt::format("testfleet_group_{}", group.index),
        fmt::format("testfleet worker {}: {} tests, {}", group.index, group.tests, group.status), log, now));
    summary.groups.push_back(std::move(group));
  }
  if (provider != ci::Provider::kGitHub) return;
  for (const std::string& line : ci::github_annotations(summary)) printer.line(line);
  auto step_summary = env.find("GITHUB_STEP_SUMMARY");
  if (step_summary != env.end() && !step_summary->second.empty()) {
    std::FILE* file = std::fopen(step_summary->second.c_str(), "a");
    if (file == nullptr) {
      printer.line(fmt::format("warning: cannot append to GITHUB_STEP_SUMMARY {}", step_summary->second));
      return;
    }
    std::string markdown = ci::github_step_summary(summary);
    std::fwrite(markdown.data(), 1, markdown.size(), file);
    std::fclose(file);
  }
}

void publish_run_files(const RunContext& context, const MergeSummary& summary,
                       const std::optional<ShardSpec>& shard, ui::StatusPrinter& printer) {
  std::filesystem::path junit = context.reports_dir / "junit.xml";
  std::error_code ec;
  if (summary.output != junit)
    std::filesystem::copy_file(summary.output, junit, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec)
    printer.line(fmt::format("warning: cannot copy {} to {}: {}", summary.output.string(), junit.string(),
                             ec.message()));
  nlohmann::json durations = nlohmann::json::object();
  for (const auto& [id, seconds] : summary.durations) durations[id] = seconds;
  util::write_file_atomic(context.reports_dir / "durations.json",
                          durations.dump(4, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  if (shard && shard->bazel_xml_output) {
    std::filesystem::copy_file(summary.output, *shard->bazel_xml_output,
                               std::filesystem::copy_options::overwrite_existing, ec);
    if (ec)
      printer.line(fmt::format("warning: cannot write Bazel's XML_OUTPUT_FILE {}: {}",
                               shard->bazel_xml_output->string(), ec.message()));
  }
  if (shard && shard->bazel_status_file) util::write_file_atomic(*shard->bazel_status_file, "");
}

void print_dry_run(const runners::Runner& runner, const planning::Plan& plan, const FleetCommands& commands,
                   environments::Backend& backend, const RunContext& context, const RunOptions& options) {
  std::cout << format_plan(plan, "text");
  if (options.schedule == "dynamic") {
    std::cout
        << "(the initial assignment: with --schedule dynamic, a worker whose queue runs dry takes tests "
           "from the one with the most left)\n";
  }
  for (const planning::Group& g : plan.groups) {
    std::size_t w = static_cast<std::size_t>(g.index - 1);
    runners::GroupRequest request = commands.request(w, 1);
    request.paths.inside_dir = request.paths.host_dir;
    request.paths.support_inside_dir = context.support_dir;
    if (!runner.streams()) {
      for (std::size_t t : g.tests) request.test_ids.push_back(plan.tests[t].id);
    }
    runners::Command command = runner.group_command(request);
    std::cout << fmt::format("\nworker {} ({} tests) in a {} environment:\n", g.index, g.tests.size(),
                             backend.name());
    std::cout << "  cd " << util::shell_quote(context.cwd.string()) << "\n";
    std::cout << fmt::format("  env TESTFLEET_GROUP={} TESTFLEET_GROUPS={} TESTFLEET_RUN_ID={}", g.index,
                             request.count, context.run_id);
    for (const auto& [key, value] : command.variables)
      std::cout << " " << key << "=" << util::shell_quote(value);
    std::cout << "\n  " << util::shell_join(command.argv) << "\n";
    if (runner.streams()) std::cout << "  (its tests are fed one by one through the worker's stdin)\n";
    std::cout << fmt::format("  output: {}\n", commands.log(w).string());
  }
  std::cout << "\n--dry-run: nothing was run.\n";
}

// Reads the durations, picks this machine's shard and splits it: the plan, and the fleet's view of it.
struct Planned {
  planning::Plan plan;
  std::optional<ShardSpec> shard;
  std::size_t collected = 0;
  bool no_durations = false;
};

execution::Assignment assignment_of(const planning::Plan& plan) {
  execution::Assignment assignment;
  assignment.ids.reserve(plan.tests.size());
  for (const planning::Test& test : plan.tests) {
    assignment.ids.push_back(test.id);
    assignment.estimates.push_back(test.seconds);
  }
  for (const planning::Group& group : plan.groups) assignment.queues.push_back(group.tests);
  return assignment;
}

void announce_plan(const Planned& planned, const RunContext& context, const RunOptions& options,
                   ui::StatusPrinter& printer) {
  const planning::Plan& plan = planned.plan;
  if (plan.tests.empty()) {
    printer.line(fmt::format("testfleet run {}: the collection holds no test", context.run_id));
    return;
  }
  std::string schedule = options.schedule == "dynamic"
                             ? "dynamic: workers take queued tests from each other as they run dry"
                             : "static: the plan exactly";
  printer.line(
      planned.no_durations
          ? fmt::format("testfleet run {}: {} tests over {} workers, split evenly by count ({}; no durations "
                        "known yet: --store-durations records them)",
                        context.run_id, plan.tests.size(), plan.groups.size(), schedule)
          : fmt::format(
                "testfleet run {}: {} tests over {} workers, ~{} each at most (lower bound {}{}; {})",
                context.run_id, plan.tests.size(), plan.groups.size(),
                util::format_duration(plan.makespan_seconds()),
                util::format_duration(plan.lower_bound_seconds()),
                plan.estimated_count() > 0 ? fmt::format("; {} tests estimated", plan.estimated_count()) : "",
                schedule));
  if (static_cast<std::size_t>(plan.requested_groups) > plan.groups.size() && !plan.groups.empty()) {
    printer.line(fmt::format("only {} tests for {} workers: {} of them get tests", plan.tests.size(),
                             plan.requested_groups, plan.groups.size()));
  }
}

}  // namespace

int run_tests(const RunOptions& options) {
  const util::SignalWatcher& signals = util::SignalWatcher::instance();
  ui::StatusPrinter printer(progress_mode(options));
  Clock::time_point start = Clock::now();
  PhaseTimes times;
  times.run_started = epoch_now();
  RunContext context = make_context(options);
  planning::Algorithm algorithm = planning::parse_algorithm(options.algorithm);
  execution::Schedule schedule = execution::parse_schedule(options.schedule);
  std::unique_ptr<runners::Runner> runner = make_runner(options, context);
  std::unique_ptr<environments::Backend> backend = make_backend(options, context);
  prepare_reports_dir(context);
  std::optional<util::TempDir> support = place_support_dir(context, *backend);
  runner->install_support(context.support_dir);
  RunOwner owner(context.run_id, backend->name(), options.docker_hosts);
  if (support) owner.add_dir(support->path());
  Cleanup cleanup(*backend, printer);
  const int workers = group_count(options);

  // Prepared once for all workers (images built, a database template made) before anything runs in it.
  double prepare_start = epoch_now();
  backend->prepare(signals.stop_requested());
  for (const std::filesystem::path& dir : backend->private_dirs()) owner.add_dir(dir);
  if (std::string what = backend->describe(); !what.empty())
    printer.line(fmt::format("{}: {}", backend->name(), what));
  times.prepare_seconds = epoch_now() - prepare_start;

  // Plan: from the first complete collection, groups balanced by past durations, the same on every machine.
  Planned planned;
  auto plan_from = [&](std::vector<std::string> ids) {
    planned.collected = ids.size();
    std::vector<planning::Test> tests =
        select_shard(with_durations(std::move(ids), options, *runner), options, printer, &planned.shard);
    planned.plan = planning::make_plan(std::move(tests), workers, algorithm);
    planned.no_durations =
        !planned.plan.tests.empty() && planned.plan.estimated_count() == planned.plan.tests.size();
    if (!options.dry_run) announce_plan(planned, context, options, printer);
    return assignment_of(planned.plan);
  };
  auto list = [&] { return discover(*runner, *backend, context, printer); };
  FleetCommands commands(*runner, context, workers, plan_from, list);

  if (options.dry_run) {
    // Collected once here, as the workers would, but nothing else runs.
    plan_from(list());
    print_dry_run(*runner, planned.plan, commands, *backend, context, options);
    return 0;
  }

  // Provision and execute: a worker per environment, each started as soon as its own is ready; the first
  // to collect makes the plan, and every worker is fed from it until the suite is done.
  times.provision_started = epoch_now();
  std::vector<environments::Environment*> environments;
  for (int w = 1; w <= workers && !signals.stop_requested(); ++w) {
    std::filesystem::path dir = context.reports_dir / fmt::format("group-{}", w);
    std::filesystem::create_directories(dir);
    environments::GroupSlot slot{w, workers, context.run_id, context.reports_dir, dir};
    cleanup.environments.push_back(backend->create(slot));
    environments.push_back(cleanup.environments.back().get());
  }
  execution::FleetOptions fleet_options;
  fleet_options.schedule = schedule;
  fleet_options.max_restarts = options.max_worker_restarts;
  fleet_options.reports_dir = context.reports_dir;
  if (options.timeout)
    fleet_options.timeout = std::chrono::milliseconds(static_cast<long long>(*options.timeout * 1000));
  fleet_options.kill_grace = std::chrono::milliseconds(static_cast<long long>(options.kill_grace * 1000));
  execution::Fleet fleet(environments, commands, fleet_options, printer);
  times.execute_started = epoch_now();
  execution::FleetResult result =
      fleet.run(signals.stop_requested(), [&signals] { return signals.received(); });
  show_merging(printer, fleet.views(), std::chrono::duration<double>(Clock::now() - start).count());
  const bool in_container = backend->name() == "compose";

  mask_secrets(result, commands, *runner, cleanup.environments);

  // A server or sidecar that ended while its worker ran, an engine that stopped answering: the tests' own
  // errors only hint at it, so it is named here, and the run is an infrastructure failure.
  std::vector<std::vector<std::string>> environment_problems(cleanup.environments.size());
  if (!signals.stop_requested()) environment_problems = execution::problems_of_all(cleanup.environments);
  bool infrastructure_failed = false;
  for (std::size_t w = 0; w < result.workers.size(); ++w) {
    execution::WorkerRecord& worker = result.workers[w];
    for (const std::string& problem : environment_problems[w]) {
      if (std::find(worker.problems.begin(), worker.problems.end(), problem) != worker.problems.end())
        continue;
      printer.block(fmt::format("{} worker {}: {}", printer.red("FAILED:"), worker.index, problem));
      worker.problems.push_back(problem);
    }
    bool start_failed =
        std::any_of(worker.runs.begin(), worker.runs.end(),
                    [](const execution::RunnerRecord& r) { return r.start_error.has_value(); });
    if (worker.provision_error || worker.collection_error || !worker.problems.empty() || start_failed)
      infrastructure_failed = true;
  }

  // The environments go before merging: nothing of theirs is needed any more.
  times.teardown_started = epoch_now();
  if (!cleanup.teardown_environments().empty()) {
    owner.keep();
    printer.line(
        fmt::format("testfleet: run {} left what the warnings above name; `testfleet clean` removes it "
                    "once it can be reached (the run stays recorded in {})",
                    context.run_id, owner.path().string()));
  }
  times.teardown_ended = epoch_now();
  times.group_teardown_seconds = cleanup.teardown_seconds;

  int stop_signal = signals.received();
  // No worker got an environment, so none collected: the tests are listed in the discovery environment
  // (no sidecars needed), so that each is in the report as an error naming why it did not run.
  bool none_provisioned = !result.workers.empty() && std::all_of(result.workers.begin(), result.workers.end(),
                                                                 [](const execution::WorkerRecord& w) {
                                                                   return w.provision_error.has_value();
                                                                 });
  if (!result.assignment && none_provisioned && stop_signal == 0) {
    result.assignment = plan_from(list());
    result.collection_failure.reset();
    result.tests.assign(result.assignment->ids.size(), execution::TestRecord{});
    for (std::size_t w = 0; w < result.assignment->queues.size(); ++w) {
      std::string why = util::split_lines(*result.workers[w].provision_error).front();
      for (std::size_t t : result.assignment->queues[w]) {
        result.tests[t].worker = w;
        result.tests[t].cause = fmt::format("not run: worker {}'s environment failed: {}", w + 1, why);
      }
    }
  }

  if (result.collection_failure && stop_signal == 0 && !result.assignment) {
    // The user's command cannot be started at all: theirs to fix.
    for (const execution::WorkerRecord& worker : result.workers) {
      for (const execution::RunnerRecord& run : worker.runs) {
        if (run.start_error) throw UsageError(*run.start_error);
      }
    }
  }
  if (result.collection_failure && stop_signal == 0) {
    throw Error(ExitCode::kTestsFailed, fmt::format("{} could not collect the tests: {}", runner->name(),
                                                    *result.collection_failure));
  }

  // Merge: one JUnit with every planned test, run or an error naming why it has no result.
  double wall = std::chrono::duration<double>(Clock::now() - start).count();
  MergeSummary summary = merge_results(*runner, commands, result, context, wall);

  // The reports directory is the run's artifact for a fan-in merge of shards: it holds the merged JUnit and
  // this run's durations whatever else the user asked for.
  publish_run_files(context, summary, planned.shard, printer);

  // Publish: the summary, the durations, the coverage reports.
  for (const reports::InputProblem& problem : summary.problems) printer.line("error: " + problem.message);
  for (const auto& [classname, name] : summary.duplicates) {
    printer.line(fmt::format("warning: {}::{} was reported by more than one worker", classname, name));
  }
  publish_to_ci(options, context, *runner, planned.plan, result, summary, wall, in_container, printer);
  if (const auto* pytest = dynamic_cast<const runners::PytestRunner*>(runner.get());
      pytest != nullptr && pytest->coverage_enabled() && result.assignment &&
      !result.assignment->ids.empty()) {
    std::vector<runners::GroupRequest> runs;
    for (std::size_t w = 0; w < result.workers.size(); ++w) {
      for (const execution::RunnerRecord& run : result.workers[w].runs)
        runs.push_back(commands.request(w, run.number));
    }
    if (!combine_coverage(*pytest, runs, context, *backend, printer)) infrastructure_failed = true;
  }
  if (options.store_durations) {
    std::filesystem::path path = !options.store_durations_path.empty() ? options.store_durations_path
                                 : !options.durations.empty()          ? options.durations.front()
                                                              : std::filesystem::path(".test_durations");
    reports::DurationStore store;
    if (std::filesystem::exists(path)) store.load_test_durations(path);
    for (const auto& [id, seconds] : summary.durations) store.set(id, seconds);
    util::write_file_atomic(path, store.to_test_durations_json());
    printer.line(fmt::format("stored {} durations in {}", summary.durations.size(), path.string()));
  }

  bool runner_failed = false;
  for (const execution::WorkerRecord& worker : result.workers) {
    for (const execution::RunnerRecord& run : worker.runs) {
      // Exit 1 is failed tests, which the report holds; a death is its victim's error; anything else failed.
      bool tests_failed = run.status && run.status->signal == 0 && run.status->code == 1;
      if (run.status && !run.died && !tests_failed && !execution::ended_well(run)) runner_failed = true;
    }
  }
  printer.clear();  // the status area ends with the merge; the summary is the last word
  if (stop_signal != 0) {
    printer.line(
        fmt::format("testfleet: interrupted by {}: the partial results are merged, every test without a "
                    "result is an error saying so",
                    util::signal_name(stop_signal)));
  }
  const reports::Totals& t = summary.totals;
  std::size_t passed = t.tests - t.failures - t.errors - t.skipped;
  std::string restarts = result.restarts > 0 ? fmt::format(", {} runner restarts", result.restarts) : "";
  printer.line(
      fmt::format("{} {} tests: {} passed, {} failed, {} errors, {} skipped in {} ({} workers{}); {} not "
                  "reported; merged JUnit: {}",
                  printer.bold("testfleet:"), t.tests, passed, t.failures, t.errors, t.skipped,
                  util::format_duration(wall), result.workers.size(), restarts, summary.synthesized,
                  summary.output.string()));

  ExitCode code = ExitCode::kSuccess;
  if (stop_signal != 0) {
    code = exit_code_for_signal(stop_signal);
  } else if (infrastructure_failed) {
    code = ExitCode::kInfrastructure;
  } else if (t.failures + t.errors > 0 || runner_failed || !summary.problems.empty()) {
    code = ExitCode::kTestsFailed;
  } else if (planned.plan.tests.empty() && !options.allow_no_tests) {
    printer.line(fmt::format(
        "testfleet: no tests were collected ({} collected nothing in {}{}); exit 5, as pytest; "
        "--allow-no-tests makes it 0",
        util::shell_join(options.command), context.cwd.string(),
        in_container ? fmt::format(", inside the {} service's container", options.compose_service) : ""));
    code = ExitCode::kNoTests;
  }
  write_run_record(context, planned.plan, result, times, summary, planned.shard, options, planned.collected,
                   wall, static_cast<int>(code), in_container);
  publish_html_report(context.reports_dir, printer);
  return static_cast<int>(code);
}

namespace {

// What `plan` and `matrix` both do before they split: collect the tests as `run` would, with collection's
// output on stderr so that their own output (JSON) stays clean on stdout. Nothing is provisioned.
std::vector<planning::Test> collect_for_planning(const RunOptions& options, ui::StatusPrinter& quiet) {
  RunContext context = make_context(options);
  std::unique_ptr<runners::Runner> runner = make_runner(options, context);
  std::unique_ptr<environments::Backend> backend = make_backend(options, context);
  std::filesystem::create_directories(context.reports_dir);
  std::optional<util::TempDir> support = place_support_dir(context, *backend);
  runner->install_support(context.support_dir);
  Cleanup cleanup(*backend, quiet);
  backend->prepare(util::SignalWatcher::instance().stop_requested());
  std::vector<std::string> ids = discover(*runner, *backend, context, quiet);
  return with_durations(std::move(ids), options, *runner);
}

}  // namespace

int print_plan(const RunOptions& options) {
  planning::Algorithm algorithm = planning::parse_algorithm(options.algorithm);
  ui::StatusPrinter quiet(ui::StatusPrinter::Mode::kPlain, stderr);
  std::optional<ShardSpec> shard;
  std::vector<planning::Test> tests =
      select_shard(collect_for_planning(options, quiet), options, quiet, &shard);
  planning::Plan plan = planning::make_plan(std::move(tests), group_count(options), algorithm);
  std::cout << format_plan(plan, options.format);
  if (options.format == "text") {
    std::cout
        << "(each group is a worker's initial queue: `run --schedule dynamic`, the default, lets a worker "
           "whose queue runs dry take tests from another; `--schedule static` runs exactly this)\n";
  }
  return 0;
}

int print_matrix(const RunOptions& options, int shards) {
  ui::StatusPrinter quiet(ui::StatusPrinter::Mode::kPlain, stderr);
  // The same split `--shard K/N` makes on each machine.
  planning::Plan plan =
      planning::make_plan(collect_for_planning(options, quiet), shards, planning::Algorithm::kLpt);
  nlohmann::json include = nlohmann::json::array();
  for (const planning::Group& g : plan.groups) {
    include.push_back({{"shard", fmt::format("{}/{}", g.index, shards)},
                       {"index", g.index},
                       {"total", shards},
                       {"tests", g.tests.size()},
                       {"estimated_seconds", std::round(g.seconds * 10) / 10}});
  }
  if (plan.groups.size() < static_cast<std::size_t>(shards)) {
    quiet.line(fmt::format("only {} tests for {} shards: the matrix has {} entries", plan.tests.size(),
                           shards, plan.groups.size()));
  }
  std::cout << nlohmann::json{{"include", include}}.dump() << "\n";
  return 0;
}

}  // namespace testfleet::cli
