// The compose backend over several Docker engines (ComposeOptions::docker_hosts): how groups are shared
// between hosts, which addresses are taken, and, against real engines, that every docker and compose
// command of a group reaches its own host.
//
// The engine tests run on the engine DOCKER_HOST names (as `scripts/docker-engine.sh start` prints it). One
// of them reaches it through two addresses (its socket and a symbolic link to it) while the ambient
// DOCKER_HOST points nowhere, so a command that forgot its host fails. TwoEnginesShareTheGroups starts a
// second engine on this machine with scripts/docker-engine.sh (its own socket, data root, bridge and
// address pool; the base image copied from the first) and stops it at the end. With CI=true a missing
// engine fails these tests; elsewhere they are skipped with a message saying how to start one.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <future>
#include <numeric>
#include <optional>

#include "environments/compose_backend.hpp"
#include "environments/compose_engine.hpp"
#include "environments/compose_file.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"

using namespace testfleet;
using namespace testfleet::environments;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

namespace {

const std::filesystem::path kRepo = std::filesystem::path(TESTFLEET_TEST_DATA).parent_path().parent_path();
const std::filesystem::path kFixtures = kRepo / "tests" / "fixtures";

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "(nothing thrown)";
}

// ---- Sharing groups between hosts
// --------------------------------------------------------------------------

TEST(AssignGroupsToHosts, EqualCapacitiesShareEquallyInConsecutiveRuns) {
  EXPECT_THAT(assign_groups_to_hosts(4, {2, 2}), ElementsAre(0u, 0u, 1u, 1u));
  EXPECT_THAT(assign_groups_to_hosts(6, {8, 8, 8}), ElementsAre(0u, 0u, 1u, 1u, 2u, 2u));
  // One left over goes to the first host.
  EXPECT_THAT(assign_groups_to_hosts(5, {2, 2}), ElementsAre(0u, 0u, 0u, 1u, 1u));
}

TEST(AssignGroupsToHosts, SharesFollowCapacity) {
  EXPECT_THAT(assign_groups_to_hosts(8, {6, 2}), ElementsAre(0u, 0u, 0u, 0u, 0u, 0u, 1u, 1u));
  // 5 * 1/7 = 0.71 and 5 * 6/7 = 4.29: the small host gets one group by its larger remainder.
  EXPECT_THAT(assign_groups_to_hosts(5, {1, 6}), ElementsAre(0u, 1u, 1u, 1u, 1u));
  EXPECT_THAT(assign_groups_to_hosts(3, {16, 1}), ElementsAre(0u, 0u, 0u));
}

TEST(AssignGroupsToHosts, UnknownCapacitiesCountAsTheMeanOfTheKnown) {
  // Known 2 and 6 (mean 4), unknown one: 2 : 6 : 4 of 12 groups.
  std::vector<std::size_t> hosts = assign_groups_to_hosts(12, {2, 6, 0});
  EXPECT_EQ(std::count(hosts.begin(), hosts.end(), 0u), 2);
  EXPECT_EQ(std::count(hosts.begin(), hosts.end(), 1u), 6);
  EXPECT_EQ(std::count(hosts.begin(), hosts.end(), 2u), 4);
  EXPECT_THAT(assign_groups_to_hosts(4, {0, 0}), ElementsAre(0u, 0u, 1u, 1u));
  EXPECT_THAT(assign_groups_to_hosts(4, {-1, 4}), ElementsAre(0u, 0u, 1u, 1u));
}

TEST(AssignGroupsToHosts, FewerGroupsThanHostsAndEdgeCases) {
  EXPECT_THAT(assign_groups_to_hosts(2, {1, 1, 1}), ElementsAre(0u, 1u));
  EXPECT_THAT(assign_groups_to_hosts(1, {4}), ElementsAre(0u));
  EXPECT_THAT(assign_groups_to_hosts(0, {4, 4}), IsEmpty());
  EXPECT_THROW(assign_groups_to_hosts(3, {}), std::invalid_argument);
}

TEST(AssignGroupsToHosts, EveryGroupGetsExactlyOneHostAndSharesFollowTheWeights) {
  const std::vector<std::vector<int>> cases = {{1}, {3, 5}, {2, 2, 2}, {7, 0, 1}, {1, 2, 3, 4}, {64, 1}};
  for (const std::vector<int>& capacities : cases) {
    // The documented weights: a known capacity as it is, an unknown one the mean of the known.
    double known_sum = 0;
    int known = 0;
    for (int capacity : capacities) {
      if (capacity > 0) {
        known_sum += capacity;
        ++known;
      }
    }
    std::vector<double> weights;
    for (int capacity : capacities) weights.push_back(capacity > 0 ? capacity : known_sum / known);
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    for (int count = 0; count <= 40; ++count) {
      std::vector<std::size_t> hosts = assign_groups_to_hosts(count, capacities);
      ASSERT_EQ(hosts.size(), static_cast<std::size_t>(count));
      EXPECT_TRUE(std::is_sorted(hosts.begin(), hosts.end())) << "a host's groups are consecutive";
      for (std::size_t h = 0; h < capacities.size(); ++h) {
        auto share = static_cast<double>(std::count(hosts.begin(), hosts.end(), h));
        EXPECT_LT(std::abs(share - count * weights[h] / total), 1.0)
            << "host " << h << " of " << capacities.size() << ", " << count << " groups";
      }
    }
  }
}

// ---- Addresses
// ----------------------------------------------------------------------------------------------

TEST(DockerHosts, AddressesTheDockerClientTakes) {
  for (const char* good : {"unix:///var/run/docker.sock", "tcp://10.1.2.3:2376", "tcp://build-2:2375",
                           "ssh://ci@build-2", "ssh://build-3:2222"}) {
    EXPECT_NO_THROW(check_docker_host(good)) << good;
  }
  EXPECT_THAT(error_of([] { check_docker_host("build-2:2375"); }),
              HasSubstr("docker host 'build-2:2375' is not a Docker address: use unix://"));
  EXPECT_THAT(error_of([] { check_docker_host("unix://docker.sock"); }), HasSubstr("absolute path"));
  EXPECT_THAT(error_of([] { check_docker_host("tcp://"); }), HasSubstr("names no host"));
  EXPECT_THAT(error_of([] { check_docker_host("http://build-2"); }), HasSubstr("is not a Docker address"));
  EXPECT_THROW(check_docker_host(""), UsageError);
}

TEST(DockerHosts, TheBackendRefusesBadAndRepeatedHostsBeforeTouchingDocker) {
  ComposeOptions options;
  options.files = {kFixtures / "compose-minimal" / "docker-compose.yml"};
  options.service = "app";
  options.docker_hosts = {"unix:///run/a.sock", "tcp://b:2375", "unix:///run/a.sock"};
  EXPECT_THAT(error_of([&] { make_compose_backend(options); }),
              HasSubstr("docker host unix:///run/a.sock is given twice"));
  options.docker_hosts = {"unix:///run/a.sock", "b:2375"};
  EXPECT_THROW(make_compose_backend(options), UsageError);
}

TEST(DockerHosts, WrappedCommandsCarryTheirHost) {
  EXPECT_THAT(with_docker_host({"docker", "compose", "up"}, ""), ElementsAre("docker", "compose", "up"));
  EXPECT_THAT(with_docker_host({"docker-compose", "up"}, "ssh://ci@b"),
              ElementsAre("env", "-u", "DOCKER_CONTEXT", "DOCKER_HOST=ssh://ci@b", "docker-compose", "up"));
  util::SpawnSpec spec = command_spec({"docker", "ps"}, {}, "tcp://b:2375");
  ASSERT_TRUE(spec.env.has_value());
  EXPECT_EQ(spec.env->at("DOCKER_HOST"), "tcp://b:2375");
  EXPECT_EQ(spec.env->count("DOCKER_CONTEXT"), 0u);
  EXPECT_FALSE(command_spec({"docker", "ps"}).env.has_value()) << "no host: our own environment as it is";
  EXPECT_EQ(docker_host_description("tcp://b:2375"), "DOCKER_HOST=tcp://b:2375");
}

// ---- Against real engines
// -----------------------------------------------------------------------------------

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

std::string unique_run_id(std::string_view test) {
  return fmt::format("uh{}-{}", ::getpid() % 100000, test);
}

// The engine the tests were given, as an explicit address.
std::string first_engine() {
  const char* host = std::getenv("DOCKER_HOST");
  return host != nullptr && *host != '\0' ? std::string(host) : std::string("unix:///var/run/docker.sock");
}

// Sets an environment variable for one scope, then puts back what was there.
class ScopedVariable {
 public:
  ScopedVariable(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedVariable() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedVariable(const ScopedVariable&) = delete;
  ScopedVariable& operator=(const ScopedVariable&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// What an engine still holds of a compose project: containers, networks, volumes.
std::vector<std::string> resources_of(const std::string& project, const std::string& host) {
  std::vector<std::string> found;
  const std::string filter = "label=com.docker.compose.project=" + project;
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"ps", "-a", "-q", "--filter", filter},
        std::vector<std::string>{"network", "ls", "-q", "--filter", filter},
        std::vector<std::string>{"volume", "ls", "-q", "--filter", filter}}) {
    util::CommandResult result = run_docker(command, seconds(30), host);
    EXPECT_TRUE(result.status.success()) << host << ": " << result.output;
    for (const std::string& line : util::split_lines(result.output)) {
      if (!util::trim(line).empty()) found.push_back(command[0] + " " + line);
    }
  }
  return found;
}

class ComposeHosts : public ::testing::Test {
 protected:
  void SetUp() override {
    first_ = first_engine();
    if (!docker_engine_answers(seconds(15), first_)) {
      std::string message = fmt::format(
          "no Docker engine answers (DOCKER_HOST={}): run `scripts/docker-engine.sh start` and export the "
          "DOCKER_HOST it prints",
          first_);
      if (in_ci()) FAIL() << message;
      GTEST_SKIP() << message;
    }
    reports_ = std::make_unique<util::TempDir>("testfleet-compose-hosts-");
  }

  GroupSlot slot(const std::string& run_id, int index, int count) const {
    GroupSlot slot;
    slot.index = index;
    slot.count = count;
    slot.run_id = run_id;
    slot.run_reports_dir = reports_->path();
    slot.group_reports_dir = reports_->path() / fmt::format("group-{}", index);
    return slot;
  }

  static ComposeOptions minimal_options(std::vector<std::string> hosts) {
    ComposeOptions options;
    options.files = {kFixtures / "compose-minimal" / "docker-compose.yml"};
    options.service = "app";
    options.ready_timeout = seconds(60);
    options.docker_hosts = std::move(hosts);
    return options;
  }

  // Runs a wrapped command as execution does: on the host, with this process's environment.
  static util::CommandResult run_wrapped(const Environment& environment,
                                         const std::vector<std::string>& argv) {
    return util::run_command(command_spec(environment.wrap_command(argv, environment.variables())),
                             seconds(120));
  }

  std::string first_;
  std::unique_ptr<util::TempDir> reports_;
  std::atomic<bool> no_cancel_{false};
};

// One engine under two names, while DOCKER_HOST itself points at no engine: every command (build, `up`,
// readiness, the test command, `down`, the sweep, finish, clean) must carry its group's host to succeed.
TEST_F(ComposeHosts, EveryCommandOfAGroupCarriesItsHost) {
  if (!util::starts_with(first_, "unix://")) GTEST_SKIP() << "needs a unix socket, not " << first_;
  util::TempDir links("testfleet-hosts-link-");
  std::filesystem::path link = links.path() / "docker.sock";
  std::filesystem::create_symlink(first_.substr(std::string_view("unix://").size()), link);
  const std::string second = "unix://" + link.string();
  ScopedVariable nowhere("DOCKER_HOST", "unix:///nonexistent/testfleet-no-engine.sock");

  const std::string run_id = unique_run_id("carry");
  std::unique_ptr<Backend> backend = make_compose_backend(minimal_options({first_, second}));
  backend->prepare(no_cancel_);

  std::unique_ptr<Environment> discovery = backend->discovery_environment(slot(run_id, 0, 0));
  EXPECT_EQ(discovery->describe(),
            fmt::format("compose project testfleet-{}-collect on {} (app alone)", run_id, first_));
  std::vector<std::unique_ptr<Environment>> groups;
  for (int index = 1; index <= 4; ++index) groups.push_back(backend->create(slot(run_id, index, 4)));
  for (int index = 1; index <= 4; ++index) {
    EXPECT_EQ(groups[static_cast<std::size_t>(index - 1)]->describe(),
              fmt::format("compose project testfleet-{}-g{} on {}: echo, slow", run_id, index,
                          index <= 2 ? first_ : second));
  }

  std::vector<std::future<void>> provisioning;
  for (std::unique_ptr<Environment>& group : groups) {
    provisioning.push_back(std::async(std::launch::async, [&] { group->provision(no_cancel_); }));
  }
  for (std::future<void>& done : provisioning) done.get();
  for (std::unique_ptr<Environment>& group : groups) {
    util::CommandResult result = run_wrapped(*group, {"probe"});
    ASSERT_TRUE(result.status.success()) << result.output;
    EXPECT_THAT(result.output, HasSubstr("echo=echo here\n"));
  }
  for (std::unique_ptr<Environment>& group : groups) EXPECT_THAT(group->teardown(), IsEmpty());
  for (int index = 1; index <= 4; ++index) {
    EXPECT_THAT(resources_of(compose_project_name(run_id, fmt::format("g{}", index)), first_), IsEmpty());
  }

  // A project left behind (a killed run) is found by clean on every host, and named with its host.
  ComposeCommand compose = detect_compose_command({});
  std::vector<std::string> up = compose.argv;
  up.insert(up.end(),
            {"-p", compose_project_name(run_id, "g9"), "-f",
             (kFixtures / "compose-minimal" / "docker-compose.yml").string(), "up", "-d", "silent"});
  util::CommandResult started = util::run_command(command_spec(up, {}, second), seconds(120));
  ASSERT_TRUE(started.status.success()) << started.output;
  CleanReport cleaned = clean_compose_leftovers(run_id, {first_, second});
  EXPECT_THAT(cleaned.failed, IsEmpty());
  // Started through the second name, found through the first: both names are one engine here.
  EXPECT_THAT(util::join(cleaned.removed, "\n"),
              HasSubstr(fmt::format("network testfleet-{}-g9_default on {}", run_id, first_)));
  EXPECT_THAT(resources_of(compose_project_name(run_id, "g9"), first_), IsEmpty());
  EXPECT_THAT(backend->finish(), IsEmpty());
}

TEST_F(ComposeHosts, AHostThatDoesNotAnswerIsNamedBeforeAnythingIsBuilt) {
  const std::string dead = "unix:///nonexistent/testfleet-dead-engine.sock";
  std::unique_ptr<Backend> backend = make_compose_backend(minimal_options({first_, dead}));
  std::string message = error_of([&] { backend->prepare(no_cancel_); });
  EXPECT_THAT(message, HasSubstr("no Docker engine answers (DOCKER_HOST=" + dead + ")"));

  CleanReport cleaned = clean_compose_leftovers(unique_run_id("dead"), {first_, dead});
  ASSERT_EQ(cleaned.failed.size(), 1u);
  EXPECT_THAT(cleaned.failed.front(), HasSubstr("engine: no Docker engine answers"));
  EXPECT_THAT(cleaned.failed.front(), HasSubstr(" on " + dead));
  EXPECT_THROW(clean_compose_leftovers(std::nullopt, {dead, dead + "2"}), InfrastructureError);
}

// A second dockerd on this machine, started with scripts/docker-engine.sh and stopped when it goes.
class SecondEngine {
 public:
  SecondEngine(const std::string& seed, const std::string& name, const std::string& bridge,
               const std::string& pool) {
    env_ = {{"TESTFLEET_DOCKER_RUN", "/run/" + name},
            {"TESTFLEET_DOCKER_DATA", "/var/lib/" + name},
            {"TESTFLEET_DOCKER_POOL", pool},
            {"TESTFLEET_DOCKER_BRIDGE", bridge},
            {"TESTFLEET_DOCKER_SEED", seed}};
    host_ = "unix:///run/" + name + "/docker.sock";
    util::CommandResult started = script("start");
    started_ = true;
    if (!started.status.success()) {
      throw InfrastructureError("scripts/docker-engine.sh start of a second engine failed:\n" +
                                started.output);
    }
  }
  ~SecondEngine() {
    if (started_) script("stop");
  }
  SecondEngine(const SecondEngine&) = delete;
  SecondEngine& operator=(const SecondEngine&) = delete;

  const std::string& host() const { return host_; }

 private:
  util::CommandResult script(const std::string& command) const {
    util::SpawnSpec spec;
    spec.argv = {(kRepo / "scripts" / "docker-engine.sh").string(), command};
    util::EnvVars env = util::current_environment();
    for (const auto& [key, value] : env_) env[key] = value;
    spec.env = env;
    return util::run_command(spec, seconds(300));
  }

  util::EnvVars env_;
  std::string host_;
  bool started_ = false;
};

TEST_F(ComposeHosts, TwoEnginesShareTheGroups) {
  if (::geteuid() != 0) {
    if (in_ci()) FAIL() << "starting a second dockerd needs root";
    GTEST_SKIP() << "starting a second dockerd needs root";
  }
  SecondEngine engine(first_, "testfleet-docker-ut2", "tfdocker-ut2", "172.25.0.0/16");
  const std::string second = engine.host();
  const std::filesystem::path compose_file = kFixtures / "compose-minimal" / "docker-compose.yml";
  const std::string image = runtime_image_name(compose_file, "app");
  // Whatever an earlier run left on the second engine: prepare() must build it there itself.
  run_docker({"image", "rm", "-f", image}, seconds(60), second);

  const std::string run_id = unique_run_id("two");
  std::unique_ptr<Backend> backend = make_compose_backend(minimal_options({first_, second}));
  backend->prepare(no_cancel_);
  EXPECT_TRUE(run_docker({"image", "inspect", image}, seconds(30), second).status.success())
      << "the test service's image is built on the second engine too";

  std::vector<std::unique_ptr<Environment>> groups;
  for (int index = 1; index <= 4; ++index) groups.push_back(backend->create(slot(run_id, index, 4)));
  std::vector<std::future<void>> provisioning;
  for (std::unique_ptr<Environment>& group : groups) {
    provisioning.push_back(std::async(std::launch::async, [&] { group->provision(no_cancel_); }));
  }
  for (std::future<void>& done : provisioning) done.get();

  // Both engines have equal CPU counts (the same machine): groups 1-2 on the first, 3-4 on the second,
  // each engine holding exactly its own projects, with sidecars that answer.
  for (int index = 1; index <= 4; ++index) {
    const std::string project = compose_project_name(run_id, fmt::format("g{}", index));
    const std::string& own = index <= 2 ? first_ : second;
    const std::string& other = index <= 2 ? second : first_;
    EXPECT_THAT(resources_of(project, own), ::testing::Not(IsEmpty())) << project << " on " << own;
    EXPECT_THAT(resources_of(project, other), IsEmpty()) << project << " not on " << other;
    Environment& group = *groups[static_cast<std::size_t>(index - 1)];
    std::filesystem::path report = reports_->path() / fmt::format("group-{}", index) / "probe.txt";
    util::CommandResult result = run_wrapped(group, {"probe", group.path_inside(report).string()});
    ASSERT_TRUE(result.status.success()) << result.output;
    std::string written = util::read_file(report);
    EXPECT_THAT(written, HasSubstr(fmt::format("project={}\n", project)));
    EXPECT_THAT(written, HasSubstr("echo=echo here\n"));
    EXPECT_THAT(written, HasSubstr("slow=resolves\n"));
  }

  for (std::unique_ptr<Environment>& group : groups) EXPECT_THAT(group->teardown(), IsEmpty());
  for (int index = 1; index <= 4; ++index) {
    for (const std::string& host : {first_, second}) {
      EXPECT_THAT(resources_of(compose_project_name(run_id, fmt::format("g{}", index)), host), IsEmpty());
    }
  }
  EXPECT_THAT(backend->finish(), IsEmpty());
}

}  // namespace
