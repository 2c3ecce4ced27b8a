// The Fleet's view of the test runner, built from a runners::Runner: where each runner process or batch
// of a worker writes (group-N/ for its first, group-N/run-K/ or group-N/batch-K/ after), the command as it
// is spawned on this machine for the worker's environment (wrapped for a container), and what a batch
// reported.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cli/pipeline.hpp"
#include "execution/fleet.hpp"
#include "runners/runner.hpp"

namespace testfleet::cli {

class FleetCommands : public execution::FleetRunner {
 public:
  using Planner = std::function<execution::Assignment(std::vector<std::string>)>;
  using Lister = std::function<std::vector<std::string>()>;

  FleetCommands(const runners::Runner& runner, const RunContext& context, int workers, Planner planner,
                Lister lister);

  bool streams() const override { return runner_.streams(); }
  std::vector<std::string> list() override { return lister_(); }
  execution::Assignment plan(std::vector<std::string> collected) override {
    return planner_(std::move(collected));
  }
  execution::Launch runner(std::size_t w, int n, const environments::Environment& environment) override;
  execution::Launch batch(std::size_t w, int n, const std::vector<std::string>& ids,
                          const environments::Environment& environment) override;
  std::map<std::string, execution::BatchReport> batch_results(std::size_t w, int n,
                                                              const std::vector<std::string>& ids) override;

  // Runner process (or batch) n of worker w: its number, its tests, its directories on the host.
  runners::GroupRequest request(std::size_t w, int n, std::vector<std::string> ids = {}) const;
  // The worker's log, which all its runners append to.
  std::filesystem::path log(std::size_t w) const;

 private:
  execution::Launch launch(const runners::GroupRequest& request,
                           const environments::Environment& environment) const;

  const runners::Runner& runner_;
  const RunContext& context_;
  int workers_;
  Planner planner_;
  Lister lister_;
  util::EnvVars host_;
};

}  // namespace testfleet::cli
