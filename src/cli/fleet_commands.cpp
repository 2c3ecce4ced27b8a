#include "cli/fleet_commands.hpp"

#include <fmt/format.h>

namespace testfleet::cli {

FleetCommands::FleetCommands(const runners::Runner& runner, const RunContext& context, int workers,
                             Planner planner, Lister lister)
    : runner_(runner),
      context_(context),
      workers_(workers),
      planner_(std::move(planner)),
      lister_(std::move(lister)),
      host_(util::current_environment()) {}

runners::GroupRequest FleetCommands::request(std::size_t w, int n, std::vector<std::string> ids) const {
  runners::GroupRequest request;
  request.index = static_cast<int>(w) + 1;
  request.count = workers_;
  request.run_id = context_.run_id;
  request.test_ids = std::move(ids);
  std::filesystem::path dir = context_.reports_dir / fmt::format("group-{}", request.index);
  if (n > 1) dir /= fmt::format("{}-{}", runner_.streams() ? "run" : "batch", n);
  request.paths.host_dir = dir;
  return request;
}

std::filesystem::path FleetCommands::log(std::size_t w) const {
  return context_.reports_dir / fmt::format("group-{}", w + 1) / "output.log";
}

execution::Launch FleetCommands::launch(const runners::GroupRequest& request,
                                        const environments::Environment& environment) const {
  runners::Command command = runner_.group_command(request);
  util::EnvVars variables = {{"TESTFLEET_GROUP", std::to_string(request.index)},
                             {"TESTFLEET_GROUPS", std::to_string(request.count)},
                             {"TESTFLEET_RUN_ID", context_.run_id}};
  for (const auto& [key, value] : environment.variables()) variables[key] = value;
  for (const auto& [key, value] : command.variables) variables[key] = value;
  execution::Launch launch;
  launch.cwd = context_.cwd;
  launch.log = log(static_cast<std::size_t>(request.index - 1));
  launch.in_container = !environment.variables_in_host_environment();
  launch.returned_files_dir = request.paths.host_dir;
  if (environment.variables_in_host_environment()) {
    launch.argv = command.argv;
    launch.env = with_variables(host_, variables);
  } else {
    launch.argv = environment.wrap_command(command.argv, variables);
    launch.env = host_;
  }
  return launch;
}

execution::Launch FleetCommands::runner(std::size_t w, int n, const environments::Environment& environment) {
  runners::GroupRequest run = request(w, n);
  std::filesystem::create_directories(run.paths.host_dir);
  run.paths.inside_dir = environment.path_inside(run.paths.host_dir);
  run.paths.support_inside_dir = environment.path_inside(context_.support_dir);
  run.paths.shared_files = environment.sees_host_files();
  return launch(run, environment);
}

execution::Launch FleetCommands::batch(std::size_t w, int n, const std::vector<std::string>& ids,
                                       const environments::Environment& environment) {
  runners::GroupRequest run = request(w, n, ids);
  std::filesystem::create_directories(run.paths.host_dir);
  run.paths.inside_dir = environment.path_inside(run.paths.host_dir);
  run.paths.support_inside_dir = environment.path_inside(context_.support_dir);
  run.paths.shared_files = environment.sees_host_files();
  runner_.write_group_files(run);
  return launch(run, environment);
}

std::map<std::string, execution::BatchReport> FleetCommands::batch_results(
    std::size_t w, int n, const std::vector<std::string>& ids) {
  std::map<std::string, execution::BatchReport> reported;
  runners::GroupReport report;
  try {
    report = runner_.read_group(request(w, n, ids));
  } catch (const std::exception&) {
    return reported;  // an unreadable JUnit reports nothing; the merge names the file and its fault
  }
  for (const auto& [id, record] : report.finished) {
    std::string outcome = record.outcome == reports::Outcome::kFailed    ? "failed"
                          : record.outcome == reports::Outcome::kError   ? "error"
                          : record.outcome == reports::Outcome::kSkipped ? "skipped"
                                                                         : "passed";
    reported[id] = {outcome, record.time};
  }
  return reported;
}

}  // namespace testfleet::cli
