// Child processes without a shell in between: posix_spawn for ordinary children, fork+exec only when the
// child must change user or die with us (servers). Every child gets its own process group by default, so
// that a Ctrl-C on the terminal reaches testfleet alone and testfleet decides what each group receives.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace testfleet::util {

using EnvVars = std::map<std::string, std::string>;

// This process's environment as a map.
EnvVars current_environment();

// The full path of `name` found on `path_variable` (PATH's syntax), or nothing. A name with a '/' is
// returned as it is when it exists and is executable.
std::optional<std::filesystem::path> find_executable(const std::string& name,
                                                     const std::string& path_variable);
std::optional<std::filesystem::path> find_executable(const std::string& name);

struct ExitStatus {
  int code = -1;   // the exit code, when the process exited
  int signal = 0;  // the signal that ended it, 0 when it exited

  static ExitStatus from_wait_status(int status);
  bool success() const { return signal == 0 && code == 0; }
  // "exit 1", "killed by SIGKILL"
  std::string describe() const;
};

enum class OutputMode {
  kInherit,     // our stdout and stderr
  kFile,        // stdout and stderr appended to output_file
  kNull,        // discarded
  kPipe,        // stdout and stderr into one pipe, read with Process::output_fd()
  kPipeStdout,  // stdout into the pipe, stderr to ours (a listing that must not mix with diagnostics)
  kPipeStdoutLogStderr,  // stdout into the pipe, stderr appended to output_file (a worker's channel and log)
};

struct SpawnSpec {
  std::vector<std::string> argv;
  // The child's whole environment; empty means ours.
  std::optional<EnvVars> env;
  std::filesystem::path cwd;  // empty: ours
  OutputMode output = OutputMode::kInherit;
  std::filesystem::path output_file;
  // stdin from a pipe written through Process::input_fd() (a worker's orders); else /dev/null.
  bool input_pipe = false;
  bool own_process_group = true;
  // Servers only: run as this user (when we are root) and be signalled when testfleet dies, even by SIGKILL
  // (PR_SET_PDEATHSIG): a server's own stop signal lets it remove what it made (PostgreSQL's shared memory).
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  bool die_with_parent = false;
  int parent_death_signal = SIGKILL;
};

class Process {
 public:
  // Throws InfrastructureError naming the program when it cannot be started (not found, not executable).
  static Process spawn(const SpawnSpec& spec);

  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // A process still running when its owner dies is killed (its whole group) and reaped: nothing leaks.
  ~Process();

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_; }
  int output_fd() const { return output_fd_; }
  int input_fd() const { return input_fd_; }
  // Closes our end of the child's stdin: it reads end of file.
  void close_input();

  // Sends `sig` to the child's process group (or the child alone without one). No-op once reaped.
  void signal(int sig) const;
  // Reaps the child if it has ended.
  std::optional<ExitStatus> try_wait();
  ExitStatus wait();
  // TERM, then KILL after `grace`; returns how it ended.
  ExitStatus terminate(std::chrono::milliseconds grace);
  const std::optional<ExitStatus>& status() const { return status_; }

 private:
  void close_output();

  pid_t pid_ = -1;
  bool own_group_ = true;
  int output_fd_ = -1;
  int input_fd_ = -1;
  std::optional<ExitStatus> status_;
};

struct CommandResult {
  ExitStatus status;
  std::string output;  // stdout and stderr, interleaved as written
  bool timed_out = false;
};

// Runs a command to its end with stdin from /dev/null, capturing its output. On timeout the process group
// is killed and timed_out set. A command that leaves a daemon holding the pipe open returns when the
// command itself has exited.
CommandResult run_command(SpawnSpec spec, std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                          bool stdout_only = false);

// The signals testfleet handles itself; children get them back at their defaults.
const std::vector<int>& handled_signals();

}  // namespace testfleet::util
