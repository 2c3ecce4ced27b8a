// What a native run leaves on disk so that a later `testfleet clean` can undo a run that was SIGKILLed
// (servers die with us through PR_SET_PDEATHSIG, but their directories stay, and a server another
// program reparented may not). One JSON file per run:
//
//   $XDG_RUNTIME_DIR/testfleet/runs/<run_id>.json   or   /tmp/testfleet-<uid>/runs/<run_id>.json
//   {"run_id": "...", "owner_pid": 123, "owner_start": 456789,
//    "dirs": ["/tmp/testfleet-native-<run>-Ab12Cd"],
//    "servers": [{"pid": 124, "start": 456800, "service": "postgres", "group": 1}]}
//
// `start` is the process's start time in clock ticks since boot (/proc/PID/stat field 22): a pid alone may
// have been reused by an unrelated process by the time someone cleans.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace testfleet::environments {

// $XDG_RUNTIME_DIR/testfleet when that is set, else /tmp/testfleet-<uid>.
std::filesystem::path default_state_dir();

// The start time of a live process (clock ticks since boot), nothing when it is gone or a zombie.
std::optional<unsigned long long> process_start_time(pid_t pid);

// SIGKILLs every process whose working directory is `dir` or below it and waits (up to `patience`) for
// them to go. Catches what a server left behind: PostgreSQL backends orphaned by a killed postmaster, a
// daemon a generic service forked. Returns the pids it killed.
std::vector<pid_t> kill_processes_under(const std::filesystem::path& dir,
                                        std::chrono::milliseconds patience = std::chrono::milliseconds(3000));

// The state file of one run, rewritten (atomically) at every change; safe to use from several threads.
class RunStateFile {
 public:
  // Creates the runs directory (mode 0700) when needed. Throws InfrastructureError naming it when it cannot.
  RunStateFile(const std::filesystem::path& state_dir, std::string run_id);
  ~RunStateFile();
  RunStateFile(const RunStateFile&) = delete;
  RunStateFile& operator=(const RunStateFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  void add_dir(const std::filesystem::path& dir);
  void add_server(pid_t pid, const std::string& service, int group);
  void remove_server(pid_t pid);
  std::size_t server_count() const;
  // Deletes the file (a clean end); false when it could not.
  bool remove() noexcept;

 private:
  struct Server {
    pid_t pid;
    unsigned long long start;
    std::string service;
    int group;
  };
  void write_locked();

  mutable std::mutex mutex_;
  std::filesystem::path path_;
  std::string run_id_;
  pid_t owner_pid_;
  unsigned long long owner_start_;
  std::vector<std::filesystem::path> dirs_;
  std::vector<Server> servers_;
  bool removed_ = false;
};

// What `testfleet clean` did for one abandoned run.
struct CleanedRun {
  std::string run_id;
  std::filesystem::path state_file;
  std::vector<std::string> removed;  // "killed postgres (pid 1234) of group 2", "removed /tmp/testfleet-..."
  std::vector<std::string> failed;   // what could not be removed, and why
};

// The state files clean_native_leftovers() looks at, in order: those of `state_dir`, or (empty) of both
// $XDG_RUNTIME_DIR/testfleet when that is set and /tmp/testfleet-<uid>.
std::vector<std::filesystem::path> native_state_files(const std::filesystem::path& state_dir = {});

// Finds the runs whose owner is dead in `state_dir` (empty: both $XDG_RUNTIME_DIR/testfleet and
// /tmp/testfleet-<uid>), kills their servers (only a pid whose start time still matches), removes their
// directories and state files. Runs still owned by a live testfleet are left alone.
std::vector<CleanedRun> clean_native_leftovers(const std::filesystem::path& state_dir = {});

}  // namespace testfleet::environments
