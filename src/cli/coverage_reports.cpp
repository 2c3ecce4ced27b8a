#include "cli/coverage_reports.hpp"

#include <fmt/format.h>

#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace testfleet::cli {
namespace {

// pytest-cov's --cov-report values as coverage.py commands: term, term-missing, xml[:path], html[:dir],
// lcov[:path], json[:path], annotate[:dir]; a trailing ":skip-covered" on the term forms.
std::optional<std::vector<std::string>> report_command(const std::string& spec) {
  std::string kind = spec;
  std::string target;
  if (std::size_t colon = spec.find(':'); colon != std::string::npos) {
    kind = spec.substr(0, colon);
    target = spec.substr(colon + 1);
  }
  if (kind.empty()) return std::nullopt;
  if (kind == "term" || kind == "term-missing") {
    std::vector<std::string> args = {"report"};
    if (kind == "term-missing") args.push_back("-m");
    if (target == "skip-covered") args.push_back("--skip-covered");
    return args;
  }
  if (kind == "xml" || kind == "lcov" || kind == "json") {
    std::vector<std::string> args = {kind};
    if (!target.empty()) args.insert(args.end(), {"-o", target});
    return args;
  }
  if (kind == "html" || kind == "annotate") {
    std::vector<std::string> args = {kind};
    if (!target.empty()) args.insert(args.end(), {"-d", target});
    return args;
  }
  return std::vector<std::string>{};
}

}  // namespace

bool combine_coverage(const runners::PytestRunner& runner, const std::vector<runners::GroupRequest>& groups,
                      const RunContext& context, ui::StatusPrinter& printer) {
  std::vector<std::string> python = runner.python_command();
  std::vector<std::string> combine = python;
  combine.insert(combine.end(), {"-m", "coverage", "combine", "--keep"});
  bool any = false;
  for (const runners::GroupRequest& group : groups) {
    std::filesystem::path data = group.paths.host_dir / ".coverage";
    if (std::filesystem::exists(data)) {
      combine.push_back(data.string());
      any = true;
    }
  }
  if (!any) {
    printer.line("warning: --cov was given but no group wrote coverage data");
    return false;
  }
  util::EnvVars env = util::current_environment();
  if (!env.count("COVERAGE_FILE")) env["COVERAGE_FILE"] = (context.cwd / ".coverage").string();
  auto run = [&](const std::vector<std::string>& argv) {
    util::SpawnSpec spec;
    spec.argv = argv;
    spec.env = env;
    spec.cwd = context.cwd;
    util::CommandResult result = util::run_command(spec);
    if (!result.status.success()) {
      printer.block(fmt::format("{} {} [{}]\n{}", printer.red("FAILED:"), util::shell_join(argv),
                                result.status.describe(), util::tail_lines(result.output, 40)));
    }
    return result;
  };
  if (!run(combine).status.success()) return false;
  printer.line(fmt::format("combined coverage of {} groups into {}", groups.size(), env["COVERAGE_FILE"]));
  bool ok = true;
  for (const std::string& spec : runner.coverage_reports()) {
    std::optional<std::vector<std::string>> args = report_command(spec);
    if (!args) continue;
    if (args->empty()) {
      printer.line(fmt::format("warning: unknown --cov-report '{}' skipped", spec));
      continue;
    }
    std::vector<std::string> argv = python;
    argv.insert(argv.end(), {"-m", "coverage"});
    argv.insert(argv.end(), args->begin(), args->end());
    util::CommandResult result = run(argv);
    if (!result.status.success()) {
      ok = false;
    } else if (spec.starts_with("term")) {
      printer.block(result.output);
    }
  }
  return ok;
}

}  // namespace testfleet::cli
