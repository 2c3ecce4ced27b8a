#include "cli/run_owner.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "environments/native_state.hpp"
#include "util/files.hpp"

namespace testfleet::cli {
namespace {

std::filesystem::path owners_dir() {
  return environments::default_state_dir() / "owners";
}

}  // namespace

RunOwner::RunOwner(std::string run_id, std::string backend, std::vector<std::string> docker_hosts)
    : run_id_(std::move(run_id)), backend_(std::move(backend)), docker_hosts_(std::move(docker_hosts)) {
  std::error_code ec;
  std::filesystem::create_directories(owners_dir(), ec);
  path_ = owners_dir() / (run_id_ + ".json");
  write();
}

void RunOwner::add_dir(const std::filesystem::path& dir) {
  dirs_.push_back(dir.string());
  write();
}

void RunOwner::write() {
  if (path_.empty()) return;
  nlohmann::json record = {{"run_id", run_id_},
                           {"owner_pid", ::getpid()},
                           {"owner_start", environments::process_start_time(::getpid()).value_or(0)},
                           {"backend", backend_},
                           {"docker_hosts", docker_hosts_},
                           {"dirs", dirs_}};
  try {
    util::write_file_atomic(path_, record.dump());
  } catch (const std::exception&) {
    path_.clear();  // without a state directory `clean` cannot help, but the run itself goes on
  }
}

RunOwner::~RunOwner() {
  std::error_code ec;
  if (!path_.empty() && !kept_) std::filesystem::remove(path_, ec);
}

std::vector<AbandonedRun> abandoned_runs() {
  std::vector<AbandonedRun> runs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(owners_dir(), ec)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    nlohmann::json record = nlohmann::json::parse(in, nullptr, false);
    if (!record.is_object()) continue;
    auto pid = record.value("owner_pid", 0);
    auto start = record.value("owner_start", 0ULL);
    std::optional<unsigned long long> alive = environments::process_start_time(static_cast<pid_t>(pid));
    if (alive && *alive == start) continue;  // its testfleet still runs
    AbandonedRun run;
    run.run_id = record.value("run_id", "");
    run.backend = record.value("backend", "");
    run.docker_hosts = record.value("docker_hosts", std::vector<std::string>{});
    run.dirs = record.value("dirs", std::vector<std::string>{});
    run.owner_file = entry.path();
    if (!run.run_id.empty()) runs.push_back(std::move(run));
  }
  return runs;
}

std::vector<std::string> kill_run_processes(const std::string& run_id, bool dry_run) {
  std::vector<std::string> killed;
  std::string needle = "TESTFLEET_RUN_ID=" + run_id;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid == ::getpid()) continue;
    std::ifstream in(entry.path() / "environ", std::ios::binary);
    std::string environ((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bool found = false;
    for (std::size_t pos = 0; pos < environ.size();) {
      std::size_t end = environ.find('\0', pos);
      if (end == std::string::npos) end = environ.size();
      if (environ.compare(pos, end - pos, needle) == 0) found = true;
      pos = end + 1;
    }
    if (!found) continue;
    std::ifstream comm(entry.path() / "comm");
    std::string command;
    std::getline(comm, command);
    if (!dry_run) ::kill(pid, SIGKILL);
    killed.push_back(
        fmt::format("{} process {} ({}) of run {}", dry_run ? "would kill" : "killed", pid, command, run_id));
  }
  return killed;
}

}  // namespace testfleet::cli
