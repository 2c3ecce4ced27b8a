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
#include "cli/pipeline.hpp"
#include "cli/report_command.hpp"
#include "cli/run_owner.hpp"
#include "execution/provisioner.hpp"
#include "execution/supervisor.hpp"
#include "reports/durations.hpp"
#include "reports/junit.hpp"
#include "runners/pytest_runner.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
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

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : std::to_string(sig);
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

// Why a planned test has no result of its own, as the merged report says it.
std::string missing_cause(const runners::GroupRequest& group, const runners::GroupReport& report,
                          const std::string& id, const std::optional<std::string>& provision_error,
                          const std::vector<std::string>& environment_problems,
                          const execution::GroupOutcome* outcome, int stop_signal, bool in_container) {
  std::string who = fmt::format("group {}", group.index);
  if (provision_error) return fmt::format("not run: {}'s environment failed: {}", who, *provision_error);
  if (outcome == nullptr) {
    return stop_signal != 0 ? fmt::format("not run: the run was interrupted ({}) before {} started",
                                          signal_name(stop_signal), who)
                            : fmt::format("not run: {} never started", who);
  }
  if (outcome->start_error) return fmt::format("not run: {} could not start: {}", who, *outcome->start_error);
  for (const std::string& missing : report.not_collected) {
    if (missing == id) return fmt::format("not run: {}'s runner did not collect this test", who);
  }
  bool was_running = report.running && *report.running == id;
  if (!environment_problems.empty()) {
    const std::string first = util::split_lines(environment_problems.front()).front();
    return was_running ? fmt::format("{} lost its environment while running this test: {}", who, first)
                       : fmt::format("not run: {}'s environment failed during the run: {}", who, first);
  }
  double seconds = outcome->ended - outcome->started;
  if (outcome->timed_out) {
    return was_running ? fmt::format("timed out: {} was stopped after {} while running this test", who,
                                     util::format_duration(seconds))
                       : fmt::format("not run: {} timed out after {} before reaching this test", who,
                                     util::format_duration(seconds));
  }
  if (outcome->stopped) {
    return fmt::format("not run: the run was interrupted ({}) {}", signal_name(stop_signal),
                       was_running ? "while this test was running" : "before this test ran");
  }
  std::string how = execution::describe_exit(outcome->status, in_container);
  if (execution::ended_by_signal(outcome->status, in_container)) {
    return was_running ? fmt::format("{} crashed ({}) while running this test", who, how)
                       : fmt::format("not run: {} ended ({}) before reaching this test", who, how);
  }
  return fmt::format("not reported: {} ended ({}) without reporting this test", who, how);
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

MergeSummary merge_groups(const runners::Runner& runner, const planning::Plan& plan,
                          const std::vector<runners::GroupRequest>& groups,
                          const std::vector<std::optional<std::string>>& provision_errors,
                          const std::vector<std::vector<std::string>>& environment_problems,
                          const std::vector<std::optional<execution::GroupOutcome>>& outcomes,
                          int stop_signal, bool in_container, const RunContext& context,
                          double wall_seconds) {
  reports::JUnitMerger merger;
  MergeSummary summary;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const runners::GroupRequest& group = groups[g];
    std::filesystem::path junit = runner.group_junit(group);
    bool junit_ok = std::filesystem::exists(junit) && merger.add_file(junit);
    runners::GroupReport report = runner.read_group(group, junit_ok);
    const execution::GroupOutcome* outcome = outcomes[g] ? &*outcomes[g] : nullptr;
    for (const std::string& id : group.test_ids) {
      auto finished = report.finished.find(id);
      if (finished != report.finished.end()) {
        summary.durations[id] = finished->second.time;
        // Reported in the group's JUnit, or only in its progress stream when the JUnit never came.
        if (!junit_ok) merger.add_testcase(runner.junit_suite_name(), finished->second);
        continue;
      }
      reports::JUnitKey key = runner.junit_key(id);
      reports::TestCaseRecord record;
      record.suite = runner.junit_suite_name();
      record.classname = key.classname;
      record.name = key.name;
      record.outcome = reports::Outcome::kError;
      record.message = missing_cause(group, report, id, provision_errors[g], environment_problems[g], outcome,
                                     stop_signal, in_container);
      record.text = fmt::format("{}\ntest: {}\ngroup log: {}", record.message, id,
                                (group.paths.host_dir / "output.log").string());
      for (const std::string& problem : environment_problems[g]) record.text += "\n\n" + problem;
      merger.add_testcase(runner.junit_suite_name(), record);
      ++summary.synthesized;
    }
  }
  (void)plan;
  summary.output = runner.requested_junit().value_or(context.reports_dir / "junit.xml");
  if (summary.output.has_parent_path()) std::filesystem::create_directories(summary.output.parent_path());
  merger.write(summary.output, wall_seconds);
  summary.totals = merger.totals();
  summary.problems = merger.problems();
  summary.duplicates = merger.duplicates();
  summary.testcases = merger.testcases();
  return summary;
}

// Every group that ran shows "merging" (with how it ended) until the summary: teardown, the merge and the
// coverage reports can take a while after the last group ended.
void show_merging(ui::StatusPrinter& printer, const execution::Supervisor& supervisor) {
  std::vector<ui::GroupView> views = supervisor.views();
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
    printer.status(views, supervisor.elapsed());
  } else {
    printer.line(fmt::format("merging the reports of {} groups", merging));
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

void write_run_record(const RunContext& context, const planning::Plan& plan,
                      const std::vector<runners::GroupRequest>& groups,
                      const std::vector<std::optional<execution::GroupOutcome>>& outcomes,
                      const std::vector<execution::ProvisionResult>& provisioning,
                      const std::vector<std::optional<std::string>>& provision_errors,
                      const std::vector<std::vector<std::string>>& commands, const PhaseTimes& times,
                      const MergeSummary& summary, const std::optional<ShardSpec>& shard,
                      std::size_t collected, double wall_seconds, int exit_code) {
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
  record["exit_code"] = exit_code;
  record["wall_seconds"] = wall_seconds;
  record["lower_bound_seconds"] = plan.lower_bound_seconds();
  record["merged_junit"] = summary.output.string();
  record["totals"] = {{"tests", summary.totals.tests},
                      {"failures", summary.totals.failures},
                      {"errors", summary.totals.errors},
                      {"skipped", summary.totals.skipped},
                      {"not_reported", summary.synthesized}};
  record["groups"] = nlohmann::json::array();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    nlohmann::json group;
    group["group"] = groups[g].index;
    group["tests"] = groups[g].test_ids.size();
    group["estimate_seconds"] = plan.groups[g].seconds;
    group["log"] = (groups[g].paths.host_dir / "output.log").string();
    if (g < commands.size() && !commands[g].empty()) group["command"] = commands[g];
    if (g < provisioning.size()) group["provision_seconds"] = provisioning[g].seconds;
    if (g < times.group_teardown_seconds.size()) group["teardown_seconds"] = times.group_teardown_seconds[g];
    if (provision_errors[g]) group["provision_error"] = *provision_errors[g];
    if (outcomes[g]) {
      // Seconds since the epoch, like `times`.
      group["started"] = times.execute_started + outcomes[g]->started;
      group["ended"] = times.execute_started + outcomes[g]->ended;
      group["status"] = outcomes[g]->start_error ? "could not start" : outcomes[g]->status.describe();
      group["timed_out"] = outcomes[g]->timed_out;
    }
    record["groups"].push_back(group);
  }
  util::write_file_atomic(context.reports_dir / "run.json",
                          record.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

// The CI system's own views of the run: folded group logs, annotations and the job summary.
void publish_to_ci(const RunOptions& options, const RunContext& context, const runners::Runner& runner,
                   const planning::Plan& plan, const std::vector<runners::GroupRequest>& groups,
                   const std::vector<std::optional<std::string>>& provision_errors,
                   const std::vector<std::optional<execution::GroupOutcome>>& outcomes,
                   const MergeSummary& merged, double wall, ui::StatusPrinter& printer) {
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
  long long now = static_cast<long long>(epoch_now());
  for (std::size_t g = 0; g < groups.size(); ++g) {
    ci::GroupSummary group;
    group.index = groups[g].index;
    group.tests = groups[g].test_ids.size();
    group.estimate_seconds = plan.groups[g].seconds;
    group.log = groups[g].paths.host_dir / "output.log";
    if (provision_errors[g]) {
      group.status = "environment failed";
      group.failed = true;
    } else if (outcomes[g]) {
      group.seconds = outcomes[g]->ended - outcomes[g]->started;
      group.status = outcomes[g]->start_error ? "could not start"
                     : outcomes[g]->timed_out ? "timed out, " + outcomes[g]->status.describe()
                                              : outcomes[g]->status.describe();
      group.failed = !outcomes[g]->status.success() || outcomes[g]->timed_out;
    } else {
      group.status = "not run";
      group.failed = true;
    }
    for (const std::string& id : groups[g].test_ids) {
      reports::JUnitKey key = runner.junit_key(id);
      std::size_t sep = id.find("::");
      if (runner.name() == "pytest" && sep != std::string::npos) {
        summary.files[key.classname + '\x1f' + key.name] = id.substr(0, sep);
      }
    }
    std::string log;
    try {
      log = util::read_file(group.log);
    } catch (const std::exception& e) {
      log = e.what();
    }
    printer.block(ci::fold(
        provider, fmt::format("testfleet_group_{}", group.index),
        fmt::format("testfleet group {}: {} tests, {}", group.index, group.tests, group.status), log, now));
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

void print_dry_run(const runners::Runner& runner, const planning::Plan& plan,
                   const std::vector<runners::GroupRequest>& groups, environments::Backend& backend,
                   const RunContext& context) {
  std::cout << format_plan(plan, "text");
  for (const runners::GroupRequest& group : groups) {
    runners::Command command = runner.group_command(group);
    std::cout << fmt::format("\ngroup {} ({} tests) in {} environment:\n", group.index, group.test_ids.size(),
                             backend.name());
    std::cout << "  cd " << util::shell_quote(context.cwd.string()) << "\n";
    std::cout << fmt::format("  env TESTFLEET_GROUP={} TESTFLEET_GROUPS={} TESTFLEET_RUN_ID={}", group.index,
                             group.count, context.run_id);
    for (const auto& [key, value] : command.variables)
      std::cout << " " << key << "=" << util::shell_quote(value);
    std::cout << "\n  " << util::shell_join(command.argv) << "\n";
    std::cout << fmt::format("  output: {}\n", (group.paths.host_dir / "output.log").string());
  }
  std::cout << "\n--dry-run: nothing was run.\n";
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
  std::unique_ptr<runners::Runner> runner = make_runner(options, context);
  std::unique_ptr<environments::Backend> backend = make_backend(options, context);
  prepare_reports_dir(context);
  std::optional<util::TempDir> support = place_support_dir(context, *backend);
  runner->install_support(context.support_dir);
  RunOwner owner(context.run_id, backend->name(), options.docker_hosts);
  if (support) owner.add_dir(support->path());
  Cleanup cleanup(*backend, printer);

  // Prepared once for all groups (images built, a database template made) before anything runs in it.
  double prepare_start = epoch_now();
  backend->prepare(signals.stop_requested());
  for (const std::filesystem::path& dir : backend->private_dirs()) owner.add_dir(dir);
  if (std::string what = backend->describe(); !what.empty())
    printer.line(fmt::format("{}: {}", backend->name(), what));
  times.prepare_seconds = epoch_now() - prepare_start;

  // Discover: the tests exactly as the user's own command collects them.
  std::vector<std::string> ids = discover(*runner, *backend, context, printer);

  // Plan: groups balanced by past durations, the same on every machine.
  std::optional<ShardSpec> shard;
  const std::size_t collected = ids.size();  // ids is moved into the plan below
  std::vector<planning::Test> tests =
      select_shard(with_durations(std::move(ids), options, *runner), options, printer, &shard);
  planning::Plan plan = planning::make_plan(std::move(tests), group_count(options), algorithm);
  std::vector<runners::GroupRequest> groups;
  for (const planning::Group& g : plan.groups) {
    runners::GroupRequest request;
    request.index = g.index;
    request.count = static_cast<int>(plan.groups.size());
    request.run_id = context.run_id;
    for (std::size_t t : g.tests) request.test_ids.push_back(plan.tests[t].id);
    request.paths.host_dir = context.reports_dir / fmt::format("group-{}", g.index);
    groups.push_back(std::move(request));
  }
  if (options.dry_run) {
    for (runners::GroupRequest& group : groups) {
      group.paths.inside_dir = group.paths.host_dir;
      group.paths.support_inside_dir = context.support_dir;
    }
    print_dry_run(*runner, plan, groups, *backend, context);
    return 0;
  }
  if (plan.groups.empty()) printer.line("no tests were collected: nothing to run");
  bool no_durations = !plan.tests.empty() && plan.estimated_count() == plan.tests.size();
  printer.line(
      no_durations
          ? fmt::format("testfleet run {}: {} tests in {} groups, balanced by count (no durations known yet: "
                        "--store-durations records them)",
                        context.run_id, plan.tests.size(), plan.groups.size())
          : fmt::format("testfleet run {}: {} tests in {} groups, ~{} each at most (lower bound {}{})",
                        context.run_id, plan.tests.size(), plan.groups.size(),
                        util::format_duration(plan.makespan_seconds()),
                        util::format_duration(plan.lower_bound_seconds()),
                        plan.estimated_count() > 0
                            ? fmt::format("; {} tests estimated", plan.estimated_count())
                            : ""));
  if (static_cast<std::size_t>(plan.requested_groups) > plan.groups.size() && !plan.groups.empty()) {
    printer.line(fmt::format("only {} tests for {} groups: running {} groups", plan.tests.size(),
                             plan.requested_groups, plan.groups.size()));
  }

  // Provision: every group its own environment, all at once.
  std::vector<std::optional<std::string>> provision_errors(groups.size());
  std::vector<execution::ProvisionResult> provisioning;
  times.provision_started = epoch_now();
  if (!groups.empty() && !signals.stop_requested()) {
    for (runners::GroupRequest& group : groups) {
      std::filesystem::create_directories(group.paths.host_dir);
      environments::GroupSlot slot{group.index, group.count, context.run_id, context.reports_dir,
                                   group.paths.host_dir};
      cleanup.environments.push_back(backend->create(slot));
      group.paths.inside_dir = cleanup.environments.back()->path_inside(group.paths.host_dir);
      group.paths.support_inside_dir = cleanup.environments.back()->path_inside(context.support_dir);
      runner->write_group_files(group);
    }
    provisioning = execution::provision_all(cleanup.environments, signals.stop_requested(), printer);
    for (std::size_t g = 0; g < groups.size(); ++g) {
      if (provisioning[g].error) {
        provision_errors[g] =
            signals.stop_requested() ? std::string("interrupted while provisioning") : *provisioning[g].error;
        printer.block(fmt::format("{} group {}: its environment could not be provisioned:\n{}",
                                  printer.red("FAILED:"), groups[g].index, *provisioning[g].error));
      }
    }
  }

  // Execute: each group's command in its environment, supervised.
  std::vector<execution::GroupJob> jobs;
  std::vector<std::size_t> job_group;
  util::EnvVars host = util::current_environment();
  for (std::size_t g = 0; g < groups.size() && !signals.stop_requested(); ++g) {
    if (provision_errors[g]) continue;
    const runners::GroupRequest& group = groups[g];
    environments::Environment& environment = *cleanup.environments[g];
    runners::Command command = runner->group_command(group);
    util::EnvVars variables = {{"TESTFLEET_GROUP", std::to_string(group.index)},
                               {"TESTFLEET_GROUPS", std::to_string(group.count)},
                               {"TESTFLEET_RUN_ID", context.run_id}};
    for (const auto& [key, value] : environment.variables()) variables[key] = value;
    for (const auto& [key, value] : command.variables) variables[key] = value;
    execution::GroupJob job;
    job.index = group.index;
    job.cwd = context.cwd;
    job.log_file = group.paths.host_dir / "output.log";
    job.planned_tests = group.test_ids.size();
    job.in_container = !environment.variables_in_host_environment();
    // Without any known duration the "estimate" is one second a test: not worth showing.
    job.estimate_seconds = no_durations ? 0 : plan.groups[g].seconds;
    if (environment.variables_in_host_environment()) {
      job.argv = command.argv;
      job.env = with_variables(host, variables);
    } else {
      job.argv = environment.wrap_command(command.argv, variables);
      job.env = host;
    }
    if (std::function<std::size_t()> counter = runner->progress_counter(group)) {
      job.finished_tests = [counter]() -> std::optional<std::size_t> { return counter(); };
    }
    jobs.push_back(std::move(job));
    job_group.push_back(g);
  }
  execution::SupervisorOptions supervisor_options;
  if (options.timeout)
    supervisor_options.timeout = std::chrono::milliseconds(static_cast<long long>(*options.timeout * 1000));
  supervisor_options.kill_grace =
      std::chrono::milliseconds(static_cast<long long>(options.kill_grace * 1000));
  execution::Supervisor supervisor(printer, supervisor_options);
  std::vector<std::vector<std::string>> commands(groups.size());
  for (std::size_t j = 0; j < jobs.size(); ++j) commands[job_group[j]] = jobs[j].argv;
  times.execute_started = epoch_now();
  std::vector<execution::GroupOutcome> job_outcomes =
      supervisor.run(jobs, signals.stop_requested(), [&signals] { return signals.received(); });
  std::vector<std::optional<execution::GroupOutcome>> outcomes(groups.size());
  for (std::size_t j = 0; j < jobs.size(); ++j) outcomes[job_group[j]] = job_outcomes[j];
  show_merging(printer, supervisor);

  // A server or sidecar that ended while its group ran, an engine that stopped answering: the tests' own
  // errors only hint at it, so it is named here, and the run is an infrastructure failure.
  std::vector<std::vector<std::string>> environment_problems(groups.size());
  if (!signals.stop_requested() && cleanup.environments.size() == groups.size()) {
    environment_problems = execution::problems_of_all(cleanup.environments);
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (const std::string& problem : environment_problems[g]) {
      printer.block(fmt::format("{} group {}: {}", printer.red("FAILED:"), groups[g].index, problem));
    }
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

  // Merge: one JUnit with every planned test, run or an error naming why it has no result.
  int stop_signal = signals.received();
  double wall = std::chrono::duration<double>(Clock::now() - start).count();
  MergeSummary summary = merge_groups(*runner, plan, groups, provision_errors, environment_problems, outcomes,
                                      stop_signal, backend->name() == "compose", context, wall);

  // The reports directory is the run's artifact for a fan-in merge of shards: it holds the merged JUnit and
  // this run's durations whatever else the user asked for.
  publish_run_files(context, summary, shard, printer);

  // Publish: the summary, the durations, the coverage reports.
  for (const reports::InputProblem& problem : summary.problems) printer.line("error: " + problem.message);
  for (const auto& [classname, name] : summary.duplicates) {
    printer.line(fmt::format("warning: {}::{} was reported by more than one group", classname, name));
  }
  publish_to_ci(options, context, *runner, plan, groups, provision_errors, outcomes, summary, wall, printer);
  bool coverage_failed = false;
  if (const auto* pytest = dynamic_cast<const runners::PytestRunner*>(runner.get());
      pytest != nullptr && pytest->coverage_enabled() && !groups.empty()) {
    coverage_failed = !combine_coverage(*pytest, groups, context, *backend, printer);
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

  bool infrastructure_failed = coverage_failed;
  bool group_failed = false;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (provision_errors[g] || (outcomes[g] && outcomes[g]->start_error) ||
        !environment_problems[g].empty()) {
      infrastructure_failed = true;
    }
    if (outcomes[g] && !outcomes[g]->status.success()) group_failed = true;
  }
  printer.clear();  // the status area ends with the merge; the summary is the last word
  if (stop_signal != 0) {
    printer.line(
        fmt::format("testfleet: interrupted by {}: the partial results are merged, every test without a "
                    "result is an error saying so",
                    signal_name(stop_signal)));
  }
  const reports::Totals& t = summary.totals;
  std::size_t passed = t.tests - t.failures - t.errors - t.skipped;
  printer.line(
      fmt::format("{} {} tests: {} passed, {} failed, {} errors, {} skipped in {} ({} groups); {} not "
                  "reported; merged JUnit: {}",
                  printer.bold("testfleet:"), t.tests, passed, t.failures, t.errors, t.skipped,
                  util::format_duration(wall), groups.size(), summary.synthesized, summary.output.string()));

  ExitCode code = ExitCode::kSuccess;
  if (stop_signal != 0) {
    code = exit_code_for_signal(stop_signal);
  } else if (infrastructure_failed) {
    code = ExitCode::kInfrastructure;
  } else if (t.failures + t.errors > 0 || group_failed || !summary.problems.empty()) {
    code = ExitCode::kTestsFailed;
  }
  write_run_record(context, plan, groups, outcomes, provisioning, provision_errors, commands, times, summary,
                   shard, collected, wall, static_cast<int>(code));
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
