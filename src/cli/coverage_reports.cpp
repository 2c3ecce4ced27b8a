#include "cli/coverage_reports.hpp"

#include <fmt/format.h>

#include <chrono>

#include "reports/coverage_data.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace testfleet::cli {
namespace {

struct CoverageReport {
  std::vector<std::string> args;  // coverage.py's subcommand and options; empty: an unknown kind
  std::filesystem::path output;   // the file or folder it writes, relative to the current directory
  std::string output_flag;        // -o or -d
};

// pytest-cov's --cov-report values as coverage.py commands: term, term-missing, xml[:path], html[:dir],
// lcov[:path], json[:path], annotate[:dir]; a trailing ":skip-covered" on the term forms. Outputs default to
// coverage.py's own names.
std::optional<CoverageReport> report_command(const std::string& spec) {
  std::string kind = spec;
  std::string target;
  if (std::size_t colon = spec.find(':'); colon != std::string::npos) {
    kind = spec.substr(0, colon);
    target = spec.substr(colon + 1);
  }
  if (kind.empty()) return std::nullopt;
  if (kind == "term" || kind == "term-missing") {
    CoverageReport report{{"report"}, {}, {}};
    if (kind == "term-missing") report.args.push_back("-m");
    if (target == "skip-covered") report.args.push_back("--skip-covered");
    return report;
  }
  if (kind == "xml" || kind == "lcov" || kind == "json") {
    std::string default_name = kind == "xml"    ? "coverage.xml"
                               : kind == "lcov" ? "coverage.lcov"
                                                : "coverage.json";
    return CoverageReport{{kind}, target.empty() ? default_name : target, "-o"};
  }
  if (kind == "html" || kind == "annotate") {
    return CoverageReport{
        {kind}, target.empty() ? std::string(kind == "html" ? "htmlcov" : "annotate") : target, "-d"};
  }
  return CoverageReport{};
}

// Whether `python` can import coverage.py: pytest may run under a Python that finds it (a virtualenv's
// script, a wrapper that sets sys.path) while the interpreter we would call for `coverage combine` does not.
bool coverage_importable(const std::vector<std::string>& python, const RunContext& context,
                         const util::EnvVars& host) {
  util::SpawnSpec spec;
  spec.argv = python;
  spec.argv.insert(spec.argv.end(), {"-c", "import coverage"});
  spec.cwd = context.cwd;
  spec.env = host;
  try {
    return util::run_command(spec, std::chrono::seconds(60)).status.success();
  } catch (const Error&) {
    return false;  // no such interpreter: no coverage.py either
  }
}

// The groups' data combined by testfleet itself into `target`. Returns false (having said why) when an input
// was refused or the data could not be combined; the good inputs are still combined.
bool combine_natively(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& target,
                      const std::vector<std::string>& python, const runners::PytestRunner& runner,
                      ui::StatusPrinter& printer) {
  bool ok = true;
  try {
    reports::CoverageCombineResult result = reports::combine_coverage_data(inputs, target);
    for (const reports::InputProblem& problem : result.problems) printer.line("error: " + problem.message);
    ok = result.problems.empty();
    printer.line(fmt::format(
        "coverage.py is not importable by {}: combined the coverage data of {} groups natively into {}",
        util::shell_join(python), result.combined, target.string()));
  } catch (const Error& e) {
    printer.line(fmt::format("error: {}", e.what()));
    return false;
  }
  std::vector<std::string> kinds;
  for (const std::string& spec : runner.coverage_reports()) {
    if (!spec.empty()) kinds.push_back(spec);
  }
  if (!kinds.empty()) {
    printer.line(fmt::format(
        "warning: --cov-report {} cannot be produced without coverage.py; install it for {}, or run "
        "`coverage report` (xml, html...) where it is, on {}",
        util::join(kinds, ", "), util::shell_join(python), target.string()));
  }
  return ok;
}

}  // namespace

bool combine_coverage(const runners::PytestRunner& runner, const std::vector<runners::GroupRequest>& groups,
                      const RunContext& context, environments::Backend& backend, ui::StatusPrinter& printer) {
  environments::GroupSlot slot;
  slot.run_id = context.run_id;
  slot.run_reports_dir = context.reports_dir;
  slot.group_reports_dir = context.reports_dir / "coverage";
  std::filesystem::create_directories(slot.group_reports_dir);
  std::unique_ptr<environments::Environment> environment = backend.discovery_environment(slot);
  bool on_host = environment->variables_in_host_environment();
  // Inside a container the host's pytest script says nothing about the container's Python.
  std::vector<std::string> python = on_host ? runner.python_command() : std::vector<std::string>{"python3"};

  std::vector<std::filesystem::path> inputs;  // on the host
  for (const runners::GroupRequest& group : groups) {
    std::filesystem::path data = group.paths.host_dir / ".coverage";
    if (std::filesystem::exists(data)) inputs.push_back(data);
  }
  if (inputs.empty()) {
    printer.line("warning: --cov was given but no group wrote coverage data");
    return false;
  }
  util::EnvVars host = util::current_environment();
  // Where a serial `pytest --cov` leaves its data: COVERAGE_FILE, else .coverage, relative to where it ran.
  const std::filesystem::path data_file =
      context.cwd / (host.count("COVERAGE_FILE") ? host["COVERAGE_FILE"] : std::string(".coverage"));
  // What was written where, for the line that ends the coverage step.
  std::vector<std::string> outputs;
  auto say_where = [&] {
    if (!outputs.empty()) printer.line("coverage: " + util::join(outputs, "; "));
  };
  util::EnvVars variables;
  if (on_host) {
    variables["COVERAGE_FILE"] = data_file.string();
  } else {
    // Combined in the reports directory, which the container sees, then copied out.
    variables["COVERAGE_FILE"] = environment->path_inside(slot.group_reports_dir / ".coverage").string();
  }
  if (on_host && !coverage_importable(python, context, host)) {
    bool ok = combine_natively(inputs, data_file, python, runner, printer);
    if (ok) outputs.push_back("the combined data in " + data_file.string());
    say_where();
    for (const std::string& what : environment->teardown()) printer.line("warning: " + what);
    return ok;
  }
  std::vector<std::string> combine = python;
  combine.insert(combine.end(), {"-m", "coverage", "combine", "--keep"});
  for (const std::filesystem::path& data : inputs) combine.push_back(environment->path_inside(data).string());
  auto run = [&](const std::vector<std::string>& argv) {
    util::SpawnSpec spec;
    spec.cwd = context.cwd;
    if (on_host) {
      spec.argv = argv;
      spec.env = with_variables(host, variables);
    } else {
      spec.argv = environment->wrap_command(argv, variables);
    }
    util::CommandResult result = util::run_command(spec);
    if (!result.status.success()) {
      printer.block(fmt::format("{} {} [{}]\n{}", printer.red("FAILED:"), util::shell_join(argv),
                                result.status.describe(), util::tail_lines(result.output, 40)));
    }
    return result;
  };
  bool ok = run(combine).status.success();
  if (ok && !on_host) {
    // The data names the container's paths, as a serial run in the container leaves it.
    std::error_code ec;
    std::filesystem::copy_file(slot.group_reports_dir / ".coverage", data_file,
                               std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) {
      printer.line(fmt::format("error: cannot copy {} to {}: {}",
                               (slot.group_reports_dir / ".coverage").string(), data_file.string(),
                               ec.message()));
      ok = false;
    }
  }
  if (ok) {
    printer.line(
        fmt::format("combined the coverage data of {} groups into {}", groups.size(), data_file.string()));
    outputs.push_back("the combined data in " + data_file.string());
  }
  for (const std::string& spec : ok ? runner.coverage_reports() : std::vector<std::string>{}) {
    std::optional<CoverageReport> report = report_command(spec);
    if (!report) continue;
    if (report->args.empty()) {
      printer.line(fmt::format("warning: unknown --cov-report '{}' skipped", spec));
      continue;
    }
    std::vector<std::string> argv = python;
    argv.insert(argv.end(), {"-m", "coverage"});
    argv.insert(argv.end(), report->args.begin(), report->args.end());
    // In a container the report is written into the reports directory, then copied to where it was asked.
    std::filesystem::path wanted =
        report->output.empty() ? std::filesystem::path() : context.cwd / report->output;
    std::filesystem::path staged = slot.group_reports_dir / report->output.filename();
    if (!on_host && !report->output.empty()) {
      argv.insert(argv.end(), {report->output_flag, environment->path_inside(staged).string()});
    } else if (!report->output.empty()) {
      argv.insert(argv.end(), {report->output_flag, wanted.string()});
    }
    util::CommandResult result = run(argv);
    if (!result.status.success()) {
      ok = false;
      continue;
    }
    if (!on_host && !report->output.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(wanted, ec);
      std::filesystem::copy(staged, wanted, std::filesystem::copy_options::recursive, ec);
      if (ec) {
        printer.line(
            fmt::format("error: cannot copy {} to {}: {}", staged.string(), wanted.string(), ec.message()));
        ok = false;
        continue;
      }
    }
    if (spec.starts_with("xml")) {
      // Kept with the run's reports too, for a fan-in merge of shards.
      std::error_code ec;
      std::filesystem::copy_file(wanted, context.reports_dir / "coverage.xml",
                                 std::filesystem::copy_options::overwrite_existing, ec);
    }
    if (spec.starts_with("term")) printer.block(result.output);
    const std::string kind = spec.substr(0, spec.find(':'));
    outputs.push_back(wanted.empty() ? fmt::format("the {} report above", kind)
                                     : fmt::format("the {} report in {}", kind, wanted.string()));
  }
  say_where();
  for (const std::string& what : environment->teardown()) printer.line("warning: " + what);
  return ok;
}

}  // namespace testfleet::cli
