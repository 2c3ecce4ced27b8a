// The small subcommands beside run/plan/merge: `wait` (replaces wait-for-it inside any container) and
// `clean` (removes what an interrupted or killed run left).
#pragma once

#include <string>
#include <vector>

namespace testfleet::cli {

// Waits for every HOST:PORT to accept connections, up to `timeout_seconds` in all, then execs `command`
// when one is given. Returns 0 when all are ready, 3 on timeout; does not return after a successful exec.
int wait_for(const std::vector<std::string>& endpoints, double timeout_seconds,
             const std::vector<std::string>& command, bool quiet);

// Removes the processes, servers, temporary directories, containers, networks and volumes of runs whose
// testfleet is gone, saying what it removed; `all_projects` also removes every compose project named
// testfleet-* on the engines (live runs' too). Returns 0, or 3 when something could not be removed.
int clean_leftovers(bool dry_run, bool all_projects, const std::vector<std::string>& docker_hosts);

}  // namespace testfleet::cli
