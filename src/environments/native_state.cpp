#include "environments/native_state.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "util/error.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"

namespace testfleet::environments {
namespace {

// Only directories named like ours are ever removed by `clean`, whatever a state file says.
constexpr std::string_view kRunDirPrefix = "testfleet-native-";

std::string safe_file_name(std::string_view run_id) {
  std::string out;
  for (char c : run_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.';
    out.push_back(ok ? c : '_');
  }
  if (out.empty() || out[0] == '.') out.insert(out.begin(), '_');
  return out;
}

std::filesystem::path xdg_state_dir() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime == nullptr || *runtime != '/') return {};
  return std::filesystem::path(runtime) / "testfleet";
}

std::filesystem::path tmp_state_dir() {
  return fmt::format("/tmp/testfleet-{}", ::geteuid());
}

// A directory of ours, private: created with mode 0700, and refused when someone else owns it (a shared
// /tmp lets anyone create /tmp/testfleet-<our uid> first).
void make_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw InfrastructureError(fmt::format("cannot create {}: {}", dir.string(), std::strerror(errno)));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    throw InfrastructureError(
        fmt::format("{} is not a directory owned by uid {}; remove it or set XDG_RUNTIME_DIR", dir.string(),
                    ::geteuid()));
  }
}

bool is_within(const std::filesystem::path& path, const std::string& dir) {
  const std::string& text = path.native();
  return text == dir || (text.size() > dir.size() && util::starts_with(text, dir) && text[dir.size()] == '/');
}

bool wait_until_gone(const std::vector<std::pair<pid_t, unsigned long long>>& processes,
                     std::chrono::milliseconds patience) {
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (true) {
    bool any = std::any_of(processes.begin(), processes.end(),
                           [](const auto& entry) { return process_start_time(entry.first) == entry.second; });
    if (!any) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::optional<CleanedRun> clean_run(const std::filesystem::path& file) {
  CleanedRun cleaned;
  cleaned.state_file = file;
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(util::read_file(file));
    cleaned.run_id = state.at("run_id").get<std::string>();
    auto owner = state.at("owner_pid").get<pid_t>();
    auto owner_start = state.at("owner_start").get<unsigned long long>();
    if (process_start_time(owner) == owner_start) return std::nullopt;  // that run is still going
  } catch (const std::exception& error) {
    cleaned.run_id = file.stem().string();
    cleaned.failed.push_back(fmt::format("cannot read {}: {}", file.string(), error.what()));
    return cleaned;
  }

  std::vector<std::pair<pid_t, unsigned long long>> killed;
  for (const nlohmann::json& server : state.value("servers", nlohmann::json::array())) {
    auto pid = server.value("pid", pid_t{0});
    auto start = server.value("start", 0ULL);
    if (pid <= 1 || process_start_time(pid) != start) continue;
    // Servers lead their own process group: take the group, then the leader in case it left it.
    if (::getpgid(pid) == pid) ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    killed.emplace_back(pid, start);
    cleaned.removed.push_back(fmt::format("killed {} (pid {}) of group {}", server.value("service", "server"),
                                          pid, server.value("group", 0)));
  }
  if (!wait_until_gone(killed, std::chrono::milliseconds(5000))) {
    cleaned.failed.push_back("some servers did not die within 5s of SIGKILL");
  }

  for (const nlohmann::json& entry : state.value("dirs", nlohmann::json::array())) {
    std::filesystem::path dir = entry.get<std::string>();
    if (!dir.is_absolute() || !util::starts_with(dir.filename().string(), kRunDirPrefix)) {
      cleaned.failed.push_back(fmt::format("left {} alone: not a testfleet directory", dir.string()));
      continue;
    }
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) continue;
    for (pid_t pid : kill_processes_under(dir)) {
      cleaned.removed.push_back(fmt::format("killed pid {} (working in {})", pid, dir.string()));
    }
    std::filesystem::remove_all(dir, ec);
    if (ec) {
      cleaned.failed.push_back(fmt::format("cannot remove {}: {}", dir.string(), ec.message()));
    } else {
      cleaned.removed.push_back(fmt::format("removed {}", dir.string()));
    }
  }
  if (cleaned.failed.empty()) {
    std::error_code ec;
    std::filesystem::remove(file, ec);
    if (ec) cleaned.failed.push_back(fmt::format("cannot remove {}: {}", file.string(), ec.message()));
  }
  return cleaned;
}

}  // namespace

std::filesystem::path default_state_dir() {
  std::filesystem::path xdg = xdg_state_dir();
  return xdg.empty() ? tmp_state_dir() : xdg;
}

std::optional<unsigned long long> process_start_time(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::string stat;
  try {
    stat = util::read_file(fmt::format("/proc/{}/stat", pid));
  } catch (const Error&) {
    return std::nullopt;
  }
  // The command name in parentheses may hold spaces and parentheses: fields start after the last ')'.
  std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<std::string> fields;
  for (const std::string& field : util::split(util::trim(std::string_view(stat).substr(close + 1)), ' ')) {
    if (!field.empty()) fields.push_back(field);
  }
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return std::nullopt;
  return std::strtoull(fields[19].c_str(), nullptr, 10);
}

std::vector<pid_t> kill_processes_under(const std::filesystem::path& dir,
                                        std::chrono::milliseconds patience) {
  std::error_code ec;
  std::filesystem::path canonical = std::filesystem::weakly_canonical(dir, ec);
  std::string prefix = (ec ? dir : canonical).string();
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  std::vector<pid_t> pids;
  std::vector<std::pair<pid_t, unsigned long long>> killed;
  pid_t self = ::getpid();
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    auto pid = static_cast<pid_t>(std::atoi(name.c_str()));
    if (pid == self) continue;
    std::error_code link_error;
    std::filesystem::path cwd = std::filesystem::read_symlink(entry.path() / "cwd", link_error);
    if (link_error) continue;
    std::string text = cwd.string();
    if (util::ends_with(text, " (deleted)")) text.resize(text.size() - 10);
    if (!is_within(text, prefix)) continue;
    std::optional<unsigned long long> start = process_start_time(pid);
    if (!start) continue;
    if (::kill(pid, SIGKILL) == 0) {
      pids.push_back(pid);
      killed.emplace_back(pid, *start);
    }
  }
  wait_until_gone(killed, patience);
  return pids;
}

RunStateFile::RunStateFile(const std::filesystem::path& state_dir, std::string run_id)
    : run_id_(std::move(run_id)),
      owner_pid_(::getpid()),
      owner_start_(process_start_time(::getpid()).value_or(0)) {
  std::filesystem::path dir = state_dir.empty() ? default_state_dir() : state_dir;
  make_private_dir(dir);
  make_private_dir(dir / "runs");
  path_ = dir / "runs" / (safe_file_name(run_id_) + ".json");
  std::lock_guard<std::mutex> lock(mutex_);
  write_locked();
}

RunStateFile::~RunStateFile() = default;

void RunStateFile::add_dir(const std::filesystem::path& dir) {
  std::lock_guard<std::mutex> lock(mutex_);
  dirs_.push_back(dir);
  write_locked();
}

void RunStateFile::add_server(pid_t pid, const std::string& service, int group) {
  std::lock_guard<std::mutex> lock(mutex_);
  servers_.push_back(Server{pid, process_start_time(pid).value_or(0), service, group});
  write_locked();
}

void RunStateFile::remove_server(pid_t pid) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = std::remove_if(servers_.begin(), servers_.end(), [pid](const Server& s) { return s.pid == pid; });
  if (it == servers_.end()) return;
  servers_.erase(it, servers_.end());
  write_locked();
}

std::size_t RunStateFile::server_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return servers_.size();
}

bool RunStateFile::remove() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  removed_ = true;
  std::error_code ec;
  std::filesystem::remove(path_, ec);
  return !ec;
}

void RunStateFile::write_locked() {
  if (removed_) return;
  nlohmann::json state;
  state["run_id"] = run_id_;
  state["owner_pid"] = owner_pid_;
  state["owner_start"] = owner_start_;
  state["dirs"] = nlohmann::json::array();
  for (const std::filesystem::path& dir : dirs_) state["dirs"].push_back(dir.string());
  state["servers"] = nlohmann::json::array();
  for (const Server& server : servers_) {
    state["servers"].push_back(
        {{"pid", server.pid}, {"start", server.start}, {"service", server.service}, {"group", server.group}});
  }
  util::write_file_atomic(path_, state.dump(2) + "\n");
}

std::vector<std::filesystem::path> native_state_files(const std::filesystem::path& state_dir) {
  std::vector<std::filesystem::path> dirs;
  if (!state_dir.empty()) {
    dirs.push_back(state_dir);
  } else {
    if (std::filesystem::path xdg = xdg_state_dir(); !xdg.empty()) dirs.push_back(xdg);
    dirs.push_back(tmp_state_dir());
  }
  std::vector<std::filesystem::path> files;
  for (const std::filesystem::path& dir : dirs) {
    std::error_code ec;
    std::vector<std::filesystem::path> in_dir;
    for (const std::filesystem::directory_entry& entry :
         std::filesystem::directory_iterator(dir / "runs", ec)) {
      if (entry.path().extension() == ".json") in_dir.push_back(entry.path());
    }
    std::sort(in_dir.begin(), in_dir.end());
    files.insert(files.end(), in_dir.begin(), in_dir.end());
  }
  return files;
}

std::vector<CleanedRun> clean_native_leftovers(const std::filesystem::path& state_dir) {
  std::vector<CleanedRun> cleaned;
  for (const std::filesystem::path& file : native_state_files(state_dir)) {
    if (std::optional<CleanedRun> run = clean_run(file)) cleaned.push_back(std::move(*run));
  }
  return cleaned;
}

}  // namespace testfleet::environments
