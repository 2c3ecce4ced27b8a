#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "environments/native_server.hpp"
#include "environments/native_state.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/subprocess.hpp"

using namespace testfleet;
using namespace testfleet::environments;
using namespace std::chrono_literals;

namespace {

util::Process spawn_sleeper(const std::filesystem::path& cwd) {
  util::SpawnSpec spec;
  spec.argv = {"sleep", "300"};
  spec.cwd = cwd;
  return util::Process::spawn(spec);
}

// Writes a state file from a process that then dies, as a SIGKILLed testfleet would leave it.
void write_state_from_dead_owner(const std::filesystem::path& state_dir, const std::string& run_id,
                                 const std::filesystem::path& dir, pid_t server) {
  pid_t owner = ::fork();
  ASSERT_GE(owner, 0);
  if (owner == 0) {
    RunStateFile state(state_dir, run_id);
    state.add_dir(dir);
    state.add_server(server, "sleeper", 1);
    ::_exit(0);  // no destructors: the file stays
  }
  int status = 0;
  ::waitpid(owner, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace

TEST(RunStateFile, RecordsOwnerDirsAndServers) {
  util::TempDir temp("native-state-");
  util::Process sleeper = spawn_sleeper(temp.path());
  {
    RunStateFile state(temp.path() / "state", "run/with odd:chars");
    EXPECT_EQ(state.path(), temp.path() / "state" / "runs" / "run_with_odd_chars.json");
    state.add_dir(temp.path() / "testfleet-native-x");
    state.add_server(sleeper.pid(), "redis", 2);
    nlohmann::json json = nlohmann::json::parse(util::read_file(state.path()));
    EXPECT_EQ(json["run_id"], "run/with odd:chars");
    EXPECT_EQ(json["owner_pid"], ::getpid());
    EXPECT_EQ(json["owner_start"], *process_start_time(::getpid()));
    EXPECT_EQ(json["dirs"][0], (temp.path() / "testfleet-native-x").string());
    EXPECT_EQ(json["servers"][0]["pid"], sleeper.pid());
    EXPECT_EQ(json["servers"][0]["start"], *process_start_time(sleeper.pid()));
    EXPECT_EQ(json["servers"][0]["group"], 2);
    state.remove_server(sleeper.pid());
    EXPECT_EQ(state.server_count(), 0u);
    EXPECT_TRUE(nlohmann::json::parse(util::read_file(state.path()))["servers"].empty());
    // A live owner's run is not a leftover.
    EXPECT_TRUE(clean_native_leftovers(temp.path() / "state").empty());
    EXPECT_TRUE(state.remove());
    EXPECT_FALSE(std::filesystem::exists(state.path()));
  }
}

TEST(CleanNativeLeftovers, KillsServersAndRemovesDirsOfDeadRuns) {
  util::TempDir temp("native-state-");
  std::filesystem::path run_dir = temp.path() / "testfleet-native-dead-abc123";
  std::filesystem::create_directories(run_dir / "group-1-x" / "redis");
  util::Process server = spawn_sleeper(temp.path());
  util::Process straggler =
      spawn_sleeper(run_dir / "group-1-x" / "redis");  // a backend orphaned by its postmaster
  write_state_from_dead_owner(temp.path() / "state", "dead", run_dir, server.pid());

  std::vector<CleanedRun> cleaned = clean_native_leftovers(temp.path() / "state");
  ASSERT_EQ(cleaned.size(), 1u);
  EXPECT_EQ(cleaned[0].run_id, "dead");
  EXPECT_EQ(cleaned[0].failed, std::vector<std::string>{});
  EXPECT_EQ(cleaned[0].removed,
            (std::vector<std::string>{
                fmt::format("killed sleeper (pid {}) of group 1", server.pid()),
                fmt::format("killed pid {} (working in {})", straggler.pid(), run_dir.string()),
                fmt::format("removed {}", run_dir.string())}));
  EXPECT_EQ(server.wait().signal, SIGKILL);
  EXPECT_EQ(straggler.wait().signal, SIGKILL);
  EXPECT_FALSE(std::filesystem::exists(run_dir));
  EXPECT_TRUE(std::filesystem::is_empty(temp.path() / "state" / "runs"));
}

TEST(CleanNativeLeftovers, LeavesReusedPidsAndForeignDirsAlone) {
  util::TempDir temp("native-state-");
  std::filesystem::path foreign = temp.path() / "precious";
  std::filesystem::create_directories(foreign);
  util::Process bystander = spawn_sleeper(temp.path());
  write_state_from_dead_owner(temp.path() / "state", "odd", foreign, bystander.pid());
  // The recorded start time no longer matches: the pid now belongs to someone else.
  std::filesystem::path file = temp.path() / "state" / "runs" / "odd.json";
  nlohmann::json state = nlohmann::json::parse(util::read_file(file));
  state["servers"][0]["start"] = state["servers"][0]["start"].get<unsigned long long>() + 1;
  util::write_file_atomic(file, state.dump());

  std::vector<CleanedRun> cleaned = clean_native_leftovers(temp.path() / "state");
  ASSERT_EQ(cleaned.size(), 1u);
  EXPECT_TRUE(cleaned[0].removed.empty());
  EXPECT_EQ(cleaned[0].failed, std::vector<std::string>{fmt::format(
                                   "left {} alone: not a testfleet directory", foreign.string())});
  EXPECT_TRUE(bystander.running());
  EXPECT_FALSE(bystander.try_wait());
  EXPECT_TRUE(std::filesystem::exists(foreign));
  EXPECT_TRUE(std::filesystem::exists(file));  // kept: something it names is still there
}

TEST(KillProcessesUnder, OnlyThoseWorkingInTheDirectory) {
  util::TempDir temp("native-state-");
  std::filesystem::create_directories(temp.path() / "inside" / "deeper");
  std::filesystem::create_directories(temp.path() / "inside-not");
  util::Process inside = spawn_sleeper(temp.path() / "inside" / "deeper");
  util::Process beside = spawn_sleeper(temp.path() / "inside-not");
  EXPECT_EQ(kill_processes_under(temp.path() / "inside"), std::vector<pid_t>{inside.pid()});
  EXPECT_EQ(inside.wait().signal, SIGKILL);
  EXPECT_FALSE(beside.try_wait());
}

TEST(UnprivilegedUser, FromThePasswdFile) {
  util::TempDir temp("native-state-");
  util::write_file_atomic(
      temp.path() / "passwd",
      "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
      "postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n");
  util::write_file_atomic(temp.path() / "passwd-nobody", "nobody:x:65534:65534::/:/usr/sbin/nologin\n");
  util::write_file_atomic(temp.path() / "passwd-none", "root:x:0:0::/root:/bin/sh\n");
  if (::geteuid() != 0) {
    EXPECT_FALSE(unprivileged_user(temp.path() / "passwd").uid);
    return;
  }
  ServerUser postgres = unprivileged_user(temp.path() / "passwd");
  EXPECT_EQ(postgres.name, "postgres");
  EXPECT_EQ(postgres.uid, 101u);
  EXPECT_EQ(postgres.gid, 104u);
  EXPECT_EQ(unprivileged_user(temp.path() / "passwd-nobody").name, "nobody");
  EXPECT_THROW(unprivileged_user(temp.path() / "passwd-none"), InfrastructureError);
}
