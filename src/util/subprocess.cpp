#include "util/subprocess.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "util/error.hpp"
#include "util/signals.hpp"
#include "util/strings.hpp"

extern char** environ;

namespace testfleet::util {
namespace {

// argv/envp as the C arrays exec wants; built before fork so the child allocates nothing.
class CStrings {
 public:
  explicit CStrings(const std::vector<std::string>& strings) : strings_(strings) {
    for (auto& s : strings_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  char** get() { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

std::vector<std::string> env_strings(const EnvVars& env) {
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [key, value] : env) out.push_back(key + "=" + value);
  return out;
}

std::string path_of(const std::optional<EnvVars>& env) {
  if (env) {
    auto it = env->find("PATH");
    return it == env->end() ? std::string("/usr/local/bin:/usr/bin:/bin") : it->second;
  }
  const char* path = std::getenv("PATH");
  return path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
}

std::filesystem::path resolve_program(const SpawnSpec& spec) {
  if (spec.argv.empty()) throw UsageError("empty command");
  const std::string& name = spec.argv.front();
  std::optional<std::filesystem::path> found;
  if (name.find('/') != std::string::npos && !spec.cwd.empty() && name.front() != '/') {
    found = find_executable((spec.cwd / name).string(), "");
  } else {
    found = find_executable(name, path_of(spec.env));
  }
  if (!found) {
    throw InfrastructureError(
        fmt::format("cannot run {}: {}", shell_quote(name),
                    name.find('/') != std::string::npos ? "no such executable file" : "not found on PATH"));
  }
  return *found;
}

int open_log(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw InfrastructureError(
        fmt::format("cannot open log file {}: {}", path.string(), std::strerror(errno)));
  }
  return fd;
}

int make_pipe(int fds[2]) {
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw InfrastructureError(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  }
  return 0;
}

// The child's ends of its standard streams; -1 where it gets /dev/null (stdin) or ours (output).
struct ChildFds {
  int in = -1;
  int out = -1;
  int err = -1;
};

int open_output(const SpawnSpec& spec, int* pipe_read_end) {
  switch (spec.output) {
    case OutputMode::kInherit:
      return -1;
    case OutputMode::kNull:
      return ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    case OutputMode::kFile:
      return open_log(spec.output_file);
    case OutputMode::kPipe:
    case OutputMode::kPipeStdout:
    case OutputMode::kPipeStdoutLogStderr: {
      int fds[2];
      make_pipe(fds);
      *pipe_read_end = fds[0];
      return fds[1];
    }
  }
  return -1;
}

pid_t spawn_with_posix_spawn(const std::filesystem::path& program, const SpawnSpec& spec, ChildFds fds,
                             char** argv, char** envp) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (fds.in >= 0) {
    posix_spawn_file_actions_adddup2(&actions, fds.in, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  if (fds.out >= 0) posix_spawn_file_actions_adddup2(&actions, fds.out, 1);
  if (fds.err >= 0) posix_spawn_file_actions_adddup2(&actions, fds.err, 2);
  if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, spec.cwd.c_str());

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (spec.own_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
  posix_spawnattr_setflags(&attr, flags);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : handled_signals()) {
    if (!ignored_by_caller(sig)) sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, program.c_str(), &actions, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    throw InfrastructureError(fmt::format("cannot run {}: {}", program.string(), std::strerror(rc)));
  }
  return pid;
}

// For servers: a user change and PR_SET_PDEATHSIG need code between fork and exec. Only
// async-signal-safe calls happen in the child; an exec failure comes back through a CLOEXEC pipe.
pid_t spawn_with_fork(const std::filesystem::path& program, const SpawnSpec& spec, ChildFds fds, char** argv,
                      char** envp) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    throw InfrastructureError(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int saved = errno;
    ::close(report[0]);
    ::close(report[1]);
    throw InfrastructureError(fmt::format("cannot fork: {}", std::strerror(saved)));
  }
  if (pid == 0) {
    auto fail = [&](int step) {
      int err[2] = {step, errno};
      ssize_t ignored = ::write(report[1], err, sizeof err);
      (void)ignored;
      ::_exit(127);
    };
    if (spec.own_process_group && ::setpgid(0, 0) != 0) fail(1);
    int in_fd = fds.in >= 0 ? fds.in : ::open("/dev/null", O_RDONLY);
    if (in_fd < 0 || ::dup2(in_fd, 0) < 0) fail(3);
    if (fds.out >= 0 && ::dup2(fds.out, 1) < 0) fail(4);
    if (fds.err >= 0 && ::dup2(fds.err, 2) < 0) fail(4);
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) fail(5);
    if (spec.gid) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(*spec.gid) != 0) fail(6);
    }
    if (spec.uid && ::setuid(*spec.uid) != 0) fail(7);
    // After the user change: changing credentials clears the parent-death signal (prctl(2)).
    if (spec.die_with_parent) {
      if (::prctl(PR_SET_PDEATHSIG, spec.parent_death_signal) != 0) fail(2);
      if (::getppid() != parent) ::_exit(127);
    }
    for (int sig : handled_signals()) {
      if (!ignored_by_caller(sig)) ::signal(sig, SIG_DFL);
    }
    sigset_t empty;
    sigemptyset(&empty);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    ::execve(program.c_str(), argv, envp);
    fail(8);
  }
  ::close(report[1]);
  int err[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(report[0], err, sizeof err);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    static const char* steps[] = {"",       "setpgid", "prctl", "open /dev/null", "dup2", "chdir",
                                  "setgid", "setuid",  "exec"};
    std::string step = err[0] >= 0 && err[0] <= 8 ? steps[err[0]] : "start";
    throw InfrastructureError(
        fmt::format("cannot run {}: {} failed: {}", program.string(), step, std::strerror(err[1])));
  }
  return pid;
}

}  // namespace

EnvVars current_environment() {
  EnvVars env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::size_t eq = text.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return env;
}

std::optional<std::filesystem::path> find_executable(const std::string& name,
                                                     const std::string& path_variable) {
  auto usable = [](const std::filesystem::path& candidate) {
    struct stat st {};
    return ::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(candidate.c_str(), X_OK) == 0;
  };
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) {
    if (usable(name)) return std::filesystem::path(name);
    return std::nullopt;
  }
  for (const std::string& dir : split(path_variable, ':')) {
    std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
    if (usable(candidate)) return candidate;
  }
  return std::nullopt;
}

std::optional<std::filesystem::path> find_executable(const std::string& name) {
  return find_executable(name, path_of(std::nullopt));
}

ExitStatus ExitStatus::from_wait_status(int status) {
  ExitStatus result;
  if (WIFEXITED(status)) {
    result.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
    result.code = 128 + result.signal;
  }
  return result;
}

std::string ExitStatus::describe() const {
  if (signal != 0) {
    const char* abbrev = sigabbrev_np(signal);
    return fmt::format("killed by SIG{}", abbrev != nullptr ? abbrev : std::to_string(signal));
  }
  return fmt::format("exit {}", code);
}

const std::vector<int>& handled_signals() {
  static const std::vector<int> signals = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE, SIGQUIT};
  return signals;
}

Process Process::spawn(const SpawnSpec& spec) {
  std::filesystem::path program = resolve_program(spec);
  // Every descriptor opened here is closed on every way out; the child's are dup2'ed, so CLOEXEC is right.
  int pipe_read_end = -1;
  int input[2] = {-1, -1};
  ChildFds fds;
  auto close_all = [&](bool ours_too) {
    for (int fd : {fds.out, fds.err == fds.out ? -1 : fds.err, input[0]}) {
      if (fd >= 0) ::close(fd);
    }
    if (ours_too) {
      if (pipe_read_end >= 0) ::close(pipe_read_end);
      if (input[1] >= 0) ::close(input[1]);
    }
  };
  try {
    fds.out = open_output(spec, &pipe_read_end);
    if (spec.output == OutputMode::kPipeStdoutLogStderr) {
      fds.err = open_log(spec.output_file);
    } else if (spec.output != OutputMode::kPipeStdout) {
      fds.err = fds.out;
    }
    if (spec.input_pipe) {
      make_pipe(input);
      fds.in = input[0];
    }
  } catch (...) {
    close_all(true);
    throw;
  }
  CStrings argv(spec.argv);
  CStrings envp(spec.env ? env_strings(*spec.env) : env_strings(current_environment()));
  Process process;
  process.own_group_ = spec.own_process_group;
  try {
    bool needs_fork = spec.uid.has_value() || spec.gid.has_value() || spec.die_with_parent;
    process.pid_ = needs_fork ? spawn_with_fork(program, spec, fds, argv.get(), envp.get())
                              : spawn_with_posix_spawn(program, spec, fds, argv.get(), envp.get());
  } catch (...) {
    close_all(true);
    throw;
  }
  close_all(false);
  process.output_fd_ = pipe_read_end;
  process.input_fd_ = input[1];
  return process;
}

Process::Process(Process&& other) noexcept
    : pid_(other.pid_),
      own_group_(other.own_group_),
      output_fd_(other.output_fd_),
      input_fd_(other.input_fd_),
      status_(other.status_) {
  other.pid_ = -1;
  other.output_fd_ = -1;
  other.input_fd_ = -1;
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (running()) terminate(std::chrono::milliseconds(0));
    close_output();
    close_input();
    pid_ = other.pid_;
    own_group_ = other.own_group_;
    output_fd_ = other.output_fd_;
    input_fd_ = other.input_fd_;
    status_ = other.status_;
    other.pid_ = -1;
    other.output_fd_ = -1;
    other.input_fd_ = -1;
  }
  return *this;
}

Process::~Process() {
  if (running()) {
    signal(SIGKILL);
    wait();
  }
  close_output();
  close_input();
}

void Process::close_output() {
  if (output_fd_ >= 0) ::close(output_fd_);
  output_fd_ = -1;
}

void Process::close_input() {
  if (input_fd_ >= 0) ::close(input_fd_);
  input_fd_ = -1;
}

void Process::signal(int sig) const {
  if (pid_ <= 0 || status_) return;
  if (own_group_) {
    if (::kill(-pid_, sig) == 0 || errno != ESRCH) return;
  }
  ::kill(pid_, sig);
}

std::optional<ExitStatus> Process::try_wait() {
  if (status_ || pid_ <= 0) return status_;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = ExitStatus::from_wait_status(status);
  return status_;
}

ExitStatus Process::wait() {
  if (status_ || pid_ <= 0) return status_.value_or(ExitStatus{});
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  status_ = r == pid_ ? ExitStatus::from_wait_status(status) : ExitStatus{};
  return *status_;
}

ExitStatus Process::terminate(std::chrono::milliseconds grace) {
  if (!running()) return status_.value_or(ExitStatus{});
  signal(SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (try_wait()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The leader may be gone while others of its group live on: KILL the group in any case.
  if (own_group_ && pid_ > 0) ::kill(-pid_, SIGKILL);
  if (!status_) {
    signal(SIGKILL);
    wait();
  }
  return *status_;
}

CommandResult run_command(SpawnSpec spec, std::optional<std::chrono::milliseconds> timeout,
                          bool stdout_only) {
  spec.output = stdout_only ? OutputMode::kPipeStdout : OutputMode::kPipe;
  Process process = Process::spawn(spec);
  CommandResult result;
  int fd = process.output_fd();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  auto start = std::chrono::steady_clock::now();
  bool eof = false;
  char buffer[65536];
  while (true) {
    while (!eof) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n > 0) {
        result.output.append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0) {
        eof = true;
      } else {
        break;  // EAGAIN or EINTR
      }
    }
    if (process.try_wait()) {
      // Drain what the command wrote just before exiting; a daemon it left may hold the pipe open.
      while (true) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) break;
        result.output.append(buffer, static_cast<std::size_t>(n));
      }
      break;
    }
    if (timeout && std::chrono::steady_clock::now() - start > *timeout) {
      result.timed_out = true;
      process.terminate(std::chrono::milliseconds(2000));
      break;
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    ::poll(&pfd, eof ? 0 : 1, 20);
    if (eof) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  result.status = *process.status();
  return result;
}

}  // namespace testfleet::util
