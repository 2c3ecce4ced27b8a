// The phases of `run` and `plan`, each a function, so that both subcommands read as the pipeline:
// discover -> plan -> provision -> execute -> merge -> publish.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/run_options.hpp"
#include "cli/shard.hpp"
#include "environments/environment.hpp"
#include "planning/plan.hpp"
#include "runners/runner.hpp"
#include "ui/status_printer.hpp"
#include "util/files.hpp"

namespace testfleet::cli {

// What every phase shares: where the run writes and what it is called.
struct RunContext {
  std::string run_id;
  std::filesystem::path cwd;
  std::filesystem::path reports_dir;  // absolute
  std::filesystem::path support_dir;  // reports_dir / ".testfleet"
};

RunContext make_context(const RunOptions& options);

// Where testfleet's support files (the pytest plugin) go: a private temporary directory, so that a user's
// `--cov=.` never measures them; under the reports directory for compose, whose containers see that alone.
// The returned directory, when any, lives as long as the run.
std::optional<util::TempDir> place_support_dir(RunContext& context, const environments::Backend& backend);
std::unique_ptr<runners::Runner> make_runner(const RunOptions& options, const RunContext& context);
std::unique_ptr<environments::Backend> make_backend(const RunOptions& options, const RunContext& context);

// The host environment with `variables` set on top; search paths (PYTHONPATH, PYTEST_PLUGINS) are
// extended rather than replaced, so the user's own still count.
util::EnvVars with_variables(util::EnvVars host, const util::EnvVars& variables);

// Lists the tests in the backend's discovery environment.
std::vector<std::string> discover(const runners::Runner& runner, environments::Backend& backend,
                                  const RunContext& context, ui::StatusPrinter& printer);

// Durations for every test, known or estimated (the mean of the known ones, else 1 s).
std::vector<planning::Test> with_durations(std::vector<std::string> ids, const RunOptions& options,
                                           const runners::Runner& runner);

// The tests this machine runs: all of them, or its shard's (said on `printer`).
std::vector<planning::Test> select_shard(std::vector<planning::Test> tests, const RunOptions& options,
                                         ui::StatusPrinter& printer, std::optional<ShardSpec>* shard);

// The plan as `plan` prints it: text or JSON.
std::string format_plan(const planning::Plan& plan, const std::string& format);

}  // namespace testfleet::cli
