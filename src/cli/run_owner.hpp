// Every run says who owns it: a small file per run in testfleet's state directory
// (<state>/owners/<run_id>.json: the owning testfleet's pid and start time, its backend and Docker hosts),
// removed when the run ends cleanly. `testfleet clean` acts only on runs whose owner is gone (killed with
// SIGKILL, or its machine restarted): the test processes still carrying TESTFLEET_RUN_ID=<run id>, the
// compose projects named after the run. A run that is alive, on this machine or another engineer's, is
// never touched.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace testfleet::cli {

class RunOwner {
 public:
  RunOwner(std::string run_id, std::string backend, std::vector<std::string> docker_hosts);
  ~RunOwner();
  RunOwner(const RunOwner&) = delete;
  RunOwner& operator=(const RunOwner&) = delete;

  // A directory of the run's own that `clean` removes if the run is abandoned.
  void add_dir(const std::filesystem::path& dir);
  // Leaves the record in place when the run ends: it left something `clean` must remove later.
  void keep() { kept_ = true; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void write();

  std::filesystem::path path_;
  std::string run_id_;
  std::string backend_;
  std::vector<std::string> docker_hosts_;
  std::vector<std::string> dirs_;
  bool kept_ = false;
};

struct AbandonedRun {
  std::string run_id;
  std::string backend;
  std::vector<std::string> docker_hosts;
  std::vector<std::string> dirs;
  std::filesystem::path owner_file;
};

// Runs whose owner is no longer alive.
std::vector<AbandonedRun> abandoned_runs();

// SIGKILLs every process whose environment holds TESTFLEET_RUN_ID=<run_id>; returns descriptions.
std::vector<std::string> kill_run_processes(const std::string& run_id, bool dry_run);

}  // namespace testfleet::cli
