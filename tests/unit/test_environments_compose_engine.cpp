// The compose backend against a real Docker engine (DOCKER_HOST, as `scripts/docker-engine.sh start`
// prints it), on the fixture projects tests/fixtures/compose-minimal (fast: nothing installed) and
// tests/fixtures/compose-services (PostgreSQL, Redis, pytest from Debian). With CI=true a missing engine
// fails every test here; elsewhere they are skipped with a message saying how to start one.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include "environments/compose_backend.hpp"
#include "environments/compose_engine.hpp"
#include "environments/compose_file.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"

using namespace testfleet;
using namespace testfleet::environments;
using std::chrono::seconds;
using ::testing::HasSubstr;

namespace {

const std::filesystem::path kFixtures = std::filesystem::path(TESTFLEET_TEST_DATA).parent_path() / "fixtures";

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

std::string unique_run_id(std::string_view test) {
  return fmt::format("ut{}-{}", ::getpid() % 100000, test);
}

// What the engine still holds of a compose project: containers, networks, volumes.
std::vector<std::string> resources_of(const std::string& project) {
  std::vector<std::string> found;
  const std::string filter = "label=com.docker.compose.project=" + project;
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"ps", "-a", "-q", "--filter", filter},
        std::vector<std::string>{"network", "ls", "-q", "--filter", filter},
        std::vector<std::string>{"volume", "ls", "-q", "--filter", filter}}) {
    util::CommandResult result = run_docker(command, seconds(30));
    EXPECT_TRUE(result.status.success()) << result.output;
    for (const std::string& line : util::split_lines(result.output)) {
      if (!util::trim(line).empty()) found.push_back(command[0] + " " + line);
    }
  }
  return found;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "(nothing thrown)";
}

class ComposeEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!docker_engine_answers(seconds(15))) {
      std::string message = fmt::format(
          "no Docker engine answers ({}): run `scripts/docker-engine.sh start` and export the DOCKER_HOST it "
          "prints",
          docker_host_description());
      if (in_ci()) FAIL() << message;
      GTEST_SKIP() << message;
    }
    reports_ = std::make_unique<util::TempDir>("testfleet-compose-test-");
  }

  GroupSlot slot(const std::string& run_id, int index, int count = 2) const {
    GroupSlot slot;
    slot.index = index;
    slot.count = count;
    slot.run_id = run_id;
    slot.run_reports_dir = reports_->path();
    slot.group_reports_dir = reports_->path() / fmt::format("group-{}", index);
    return slot;
  }

  static ComposeOptions minimal_options() {
    ComposeOptions options;
    options.files = {kFixtures / "compose-minimal" / "docker-compose.yml"};
    options.service = "app";
    options.ready_timeout = seconds(60);
    return options;
  }

  // Runs a wrapped command as execution would: on the host, its output captured.
  static util::CommandResult run_wrapped(const Environment& environment, const std::vector<std::string>& argv,
                                         const util::EnvVars& variables) {
    return util::run_command(command_spec(environment.wrap_command(argv, variables)), seconds(120));
  }

  std::unique_ptr<util::TempDir> reports_;
  std::atomic<bool> no_cancel_{false};
};

TEST_F(ComposeEngine, GroupsRunInTheirOwnProjectsAndLeaveNothing) {
  const std::string run_id = unique_run_id("groups");
  std::unique_ptr<Backend> backend = make_compose_backend(minimal_options());
  EXPECT_EQ(backend->name(), "compose");
  backend->prepare(no_cancel_);

  // The built service has the one fixed image name every project uses.
  const std::string image = runtime_image_name(kFixtures / "compose-minimal" / "docker-compose.yml", "app");
  EXPECT_TRUE(run_docker({"image", "inspect", image}, seconds(30)).status.success()) << image;

  std::unique_ptr<Environment> first = backend->create(slot(run_id, 1));
  std::unique_ptr<Environment> second = backend->create(slot(run_id, 2));
  EXPECT_EQ(first->describe(), fmt::format("compose project testfleet-{}-g1: echo, slow", run_id));
  EXPECT_FALSE(first->variables_in_host_environment());

  // Both at once, as execution provisions groups: the fixed host port and container name of `echo` would
  // make the second fail if they were kept.
  std::future<void> provisioning = std::async(std::launch::async, [&] { second->provision(no_cancel_); });
  first->provision(no_cancel_);
  provisioning.get();

  for (int index : {1, 2}) {
    Environment& environment = index == 1 ? *first : *second;
    std::filesystem::path report = reports_->path() / fmt::format("group-{}", index) / "probe.txt";
    EXPECT_EQ(environment.path_inside(report), fmt::format("/testfleet-reports/group-{}/probe.txt", index));
    util::EnvVars variables = environment.variables();
    variables["FROM_TESTFLEET"] = "value with spaces";
    util::CommandResult result =
        run_wrapped(environment, {"probe", environment.path_inside(report).string()}, variables);
    ASSERT_TRUE(result.status.success()) << result.output;
    std::string written = util::read_file(report);
    EXPECT_THAT(written, HasSubstr(fmt::format("project=testfleet-{}-g{}\n", run_id, index)));
    EXPECT_THAT(written, HasSubstr("from_compose=yes\n"));
    EXPECT_THAT(written, HasSubstr("from_testfleet=value with spaces\n"));
    EXPECT_THAT(written, HasSubstr("echo=echo here\n"));
    EXPECT_THAT(written, HasSubstr("slow=resolves\n"));
  }

  // The command's exit status comes back through `run`.
  util::CommandResult failing = run_wrapped(*first, {"probe"}, {{"PROBE_EXIT", "3"}});
  EXPECT_EQ(failing.status.code, 3) << failing.output;

  for (Environment* environment : {first.get(), second.get()}) {
    EXPECT_TRUE(environment->teardown().empty());
    EXPECT_TRUE(environment->teardown().empty()) << "a second teardown is harmless";
  }
  for (int index : {1, 2}) {
    EXPECT_THAT(resources_of(fmt::format("testfleet-{}-g{}", run_id, index)), ::testing::IsEmpty());
  }
  EXPECT_TRUE(backend->finish().empty());
}

// A group killed mid-test (its timeout, Ctrl-C): killing the compose client leaves the `run` container
// behind on the engine; teardown still removes it with the rest.
TEST_F(ComposeEngine, TeardownAfterAKilledTestCommandRemovesItsContainer) {
  const std::string run_id = unique_run_id("killed");
  const std::string project = compose_project_name(run_id, "g1");
  std::unique_ptr<Backend> backend = make_compose_backend(minimal_options());
  backend->prepare(no_cancel_);
  std::unique_ptr<Environment> environment = backend->create(slot(run_id, 1, 1));
  environment->provision(no_cancel_);
  util::SpawnSpec spec = command_spec(environment->wrap_command({"sleep", "300"}, {}));
  spec.output = util::OutputMode::kNull;
  util::Process test = util::Process::spawn(spec);
  const std::string oneoff_filter = "label=com.docker.compose.oneoff=True";
  auto running_oneoffs = [&] {
    util::CommandResult ps = run_docker(
        {"ps", "-q", "--filter", "label=com.docker.compose.project=" + project, "--filter", oneoff_filter},
        seconds(30));
    return util::split_lines(ps.output).size();
  };
  auto deadline = std::chrono::steady_clock::now() + seconds(60);
  while (running_oneoffs() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(running_oneoffs(), 1u);
  test.terminate(std::chrono::milliseconds(500));
  EXPECT_TRUE(environment->teardown().empty());
  EXPECT_THAT(resources_of(project), ::testing::IsEmpty());
}

TEST_F(ComposeEngine, DiscoveryRunsWithoutSidecars) {
  const std::string run_id = unique_run_id("collect");
  std::unique_ptr<Backend> backend = make_compose_backend(minimal_options());
  backend->prepare(no_cancel_);
  std::unique_ptr<Environment> discovery = backend->discovery_environment(slot(run_id, 0));
  EXPECT_EQ(discovery->describe(), fmt::format("compose project testfleet-{}-collect (app alone)", run_id));
  discovery->provision(no_cancel_);
  util::CommandResult result = run_wrapped(*discovery, {"probe"}, discovery->variables());
  ASSERT_TRUE(result.status.success()) << result.output;
  EXPECT_THAT(result.output, HasSubstr("echo=unreachable"));
  EXPECT_THAT(result.output, HasSubstr("slow=unknown"));
  EXPECT_TRUE(discovery->teardown().empty());
  EXPECT_THAT(resources_of(fmt::format("testfleet-{}-collect", run_id)), ::testing::IsEmpty());
}

TEST_F(ComposeEngine, ASidecarThatExitsIsNamedWithItsLogs) {
  ComposeOptions options = minimal_options();
  options.sidecars = {"broken"};
  std::unique_ptr<Backend> backend = make_compose_backend(options);
  backend->prepare(no_cancel_);
  const std::string run_id = unique_run_id("broken");
  std::unique_ptr<Environment> environment = backend->create(slot(run_id, 1));
  std::string message = error_of([&] { environment->provision(no_cancel_); });
  EXPECT_THAT(message, HasSubstr(fmt::format("compose project testfleet-{}-g1: sidecar broken", run_id)));
  EXPECT_THAT(message, HasSubstr("exited with exit code 3"));
  EXPECT_THAT(message, HasSubstr("fatal: cannot open the database files"));
  EXPECT_TRUE(environment->teardown().empty());
  EXPECT_THAT(resources_of(fmt::format("testfleet-{}-g1", run_id)), ::testing::IsEmpty());
}

TEST_F(ComposeEngine, ASidecarThatNeverListensTimesOutNamingThePort) {
  ComposeOptions options = minimal_options();
  options.sidecars = {"silent"};
  options.ready_timeout = seconds(4);
  std::unique_ptr<Backend> backend = make_compose_backend(options);
  backend->prepare(no_cancel_);
  std::unique_ptr<Environment> environment = backend->create(slot(unique_run_id("silent"), 1));
  auto start = std::chrono::steady_clock::now();
  std::string message = error_of([&] { environment->provision(no_cancel_); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(30));
  EXPECT_THAT(message, HasSubstr("sidecar silent"));
  EXPECT_THAT(message, HasSubstr("not ready after 4.0s"));
  EXPECT_THAT(message, HasSubstr("port 7001 on "));
  EXPECT_THAT(message, HasSubstr("its last log lines"));
  EXPECT_TRUE(environment->teardown().empty());
}

// The status line polls provisioning_state() while provision() runs on another thread: it names the sidecar
// being waited for, what of it, and for how long of the limit.
TEST_F(ComposeEngine, ProvisioningStateNamesTheSidecarAwaitedAndForHowLong) {
  ComposeOptions options = minimal_options();
  options.sidecars = {"slow", "silent"};  // a healthcheck healthy after 2 s, then a port that never opens
  options.ready_timeout = seconds(8);
  std::unique_ptr<Backend> backend = make_compose_backend(options);
  backend->prepare(no_cancel_);
  std::unique_ptr<Environment> environment = backend->create(slot(unique_run_id("state"), 1));
  EXPECT_EQ(environment->provisioning_state(), "");
  std::future<std::string> provisioned =
      std::async(std::launch::async, [&] { return error_of([&] { environment->provision(no_cancel_); }); });
  std::vector<std::string> seen;
  while (provisioned.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
    std::string state = environment->provisioning_state();
    if (!state.empty() && (seen.empty() || seen.back() != state)) seen.push_back(state);
  }
  std::string message = provisioned.get();
  EXPECT_THAT(message, HasSubstr("sidecar silent"));
  EXPECT_THAT(message, HasSubstr("not ready after 8.0s (--ready-timeout)"));
  EXPECT_EQ(environment->provisioning_state(), "") << "nothing to show once provision() has returned";
  auto matching = [&](const std::string& pattern) {
    const std::regex expression(pattern);
    return std::count_if(seen.begin(), seen.end(),
                         [&](const std::string& state) { return std::regex_match(state, expression); });
  };
  EXPECT_GT(matching(R"(waiting for slow \(healthcheck\), [0-8]s of 8s)"), 0) << util::join(seen, "\n");
  EXPECT_GT(matching(R"(waiting for silent \(port 7001\), [0-8]s of 8s)"), 0) << util::join(seen, "\n");
  // Nothing but the phases of provision(), in their order: compose up, then the sidecars one by one.
  EXPECT_EQ(
      matching(
          R"((starting slow, silent \(compose up\), \d+s|waiting for (slow|silent) \(.*\), [0-8]s of 8s))"),
      static_cast<long>(seen.size()))
      << util::join(seen, "\n");
  auto first_silent = std::find_if(seen.begin(), seen.end(), [](const std::string& state) {
    return state.starts_with("waiting for silent");
  });
  EXPECT_TRUE(std::none_of(first_silent, seen.end(),
                           [](const std::string& state) { return state.starts_with("waiting for slow"); }));
  EXPECT_TRUE(environment->teardown().empty());
}

TEST_F(ComposeEngine, ExplicitWaitsAreWaitedForAndCancelStopsTheWait) {
  ComposeOptions options = minimal_options();
  options.sidecars = {"silent"};
  options.waits = {"silent:7002"};
  options.ready_timeout = seconds(120);
  std::unique_ptr<Backend> backend = make_compose_backend(options);
  backend->prepare(no_cancel_);
  std::unique_ptr<Environment> environment = backend->create(slot(unique_run_id("cancel"), 1));
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(seconds(3));
    cancel = true;
  });
  auto start = std::chrono::steady_clock::now();
  std::string message = error_of([&] { environment->provision(cancel); });
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(20));
  EXPECT_THAT(message, HasSubstr("cancelled"));
  EXPECT_TRUE(environment->teardown().empty());
}

TEST_F(ComposeEngine, AFailedBuildShowsItsOutput) {
  ComposeOptions options = minimal_options();
  options.sidecars = {"badbuild"};
  std::unique_ptr<Backend> backend = make_compose_backend(options);
  std::string message = error_of([&] { backend->prepare(no_cancel_); });
  EXPECT_THAT(message, HasSubstr("building the image of service badbuild"));
  EXPECT_THAT(message, HasSubstr("expected ';'"));
}

TEST_F(ComposeEngine, WrongServicesAndFilesAreNamed) {
  ComposeOptions options = minimal_options();
  options.service = "tests";
  std::string message = error_of([&] { make_compose_backend(options)->prepare(no_cancel_); });
  EXPECT_THAT(message, HasSubstr("has no service 'tests' (the test service); its services: app, badbuild, "
                                 "broken, echo, silent, slow"));
  EXPECT_THAT(message, HasSubstr("compose-minimal/docker-compose.yml"));

  options = minimal_options();
  options.waits = {"db:5432"};
  EXPECT_THAT(error_of([&] { make_compose_backend(options)->prepare(no_cancel_); }),
              HasSubstr("--wait db:5432: "));

  util::TempDir dir("testfleet-compose-bad-");
  std::filesystem::path bad = dir.path() / "docker-compose.yml";
  util::write_file_atomic(bad, "services:\n  app:\n    image: x\n    ports: {not: a list}\n");
  options = minimal_options();
  options.files = {bad};
  message = error_of([&] { make_compose_backend(options)->prepare(no_cancel_); });
  EXPECT_THAT(message, HasSubstr(bad.string() + " is not a valid compose project"));

  options.files = {dir.path() / "missing.yml"};
  EXPECT_THAT(error_of([&] { make_compose_backend(options)->prepare(no_cancel_); }),
              HasSubstr("missing.yml does not exist"));
  EXPECT_THROW(make_compose_backend(ComposeOptions{}), UsageError);
}

TEST_F(ComposeEngine, NoBuildNeedsAnEarlierBuild) {
  // A copy of the fixture elsewhere: a new path, so an image name no run has built.
  util::TempDir dir("testfleet-compose-copy-");
  std::filesystem::copy(kFixtures / "compose-minimal", dir.path(), std::filesystem::copy_options::recursive);
  ComposeOptions options = minimal_options();
  options.files = {dir.path() / "docker-compose.yml"};
  options.no_build = true;
  EXPECT_THAT(error_of([&] { make_compose_backend(options)->prepare(no_cancel_); }),
              HasSubstr("does not exist: run once without --no-build"));
  options.no_build = false;
  make_compose_backend(options)->prepare(no_cancel_);
  options.no_build = true;
  make_compose_backend(options)->prepare(no_cancel_);
  run_docker({"image", "rm", "-f", runtime_image_name(dir.path() / "docker-compose.yml", "app")},
             seconds(60));
}

TEST_F(ComposeEngine, CleanRemovesWhatAnInterruptedRunLeft) {
  const std::string run_id = unique_run_id("crash");
  const std::string other_run = unique_run_id("other");
  ComposeCommand compose = detect_compose_command({});
  // Projects as a killed testfleet leaves them: started, never torn down.
  for (const std::string& project : {compose_project_name(run_id, "g1"), compose_project_name(run_id, "g2"),
                                     compose_project_name(other_run, "g1")}) {
    std::vector<std::string> argv = compose.argv;
    argv.insert(argv.end(),
                {"-p", project, "-f", (kFixtures / "compose-minimal" / "docker-compose.yml").string(), "up",
                 "-d", "silent"});
    util::CommandResult up = util::run_command(command_spec(argv), seconds(120));
    ASSERT_TRUE(up.status.success()) << up.output;
  }
  CleanReport report = clean_compose_leftovers(run_id);
  EXPECT_TRUE(report.failed.empty()) << util::join(report.failed, "\n");
  std::string removed = util::join(report.removed, "\n");
  EXPECT_THAT(removed, HasSubstr(fmt::format("network testfleet-{}-g1_default", run_id)));
  EXPECT_THAT(removed, HasSubstr(fmt::format("network testfleet-{}-g2_default", run_id)));
  EXPECT_THAT(removed, HasSubstr(fmt::format("container testfleet-{}-g1", run_id)));
  EXPECT_THAT(removed, ::testing::Not(HasSubstr(other_run)));
  EXPECT_THAT(resources_of(compose_project_name(run_id, "g1")), ::testing::IsEmpty());
  EXPECT_THAT(resources_of(compose_project_name(other_run, "g1")), ::testing::Not(::testing::IsEmpty()));

  CleanReport rest = clean_compose_leftovers(other_run);
  EXPECT_THAT(util::join(rest.removed, "\n"), HasSubstr(other_run));
  EXPECT_THAT(resources_of(compose_project_name(other_run, "g1")), ::testing::IsEmpty());
}

TEST_F(ComposeEngine, ComposeCommandFromTheEnvironment) {
  ComposeCommand detected = detect_compose_command({});
  EXPECT_TRUE(detected.major_version == 1 || detected.major_version == 2) << detected.version;
  EXPECT_EQ(detect_compose_command(detected.argv).argv, detected.argv);
  EXPECT_THAT(error_of([] { detect_compose_command({"/nonexistent/compose"}); }),
              HasSubstr("names `/nonexistent/compose`, which does not run"));
}

// The fixture the end-to-end tests use, with a real pytest run in one group: PostgreSQL ready through its
// healthcheck, Redis through its port, JUnit written to the mounted reports directory.
TEST_F(ComposeEngine, ServicesFixtureRunsPytestAgainstPostgresAndRedis) {
  ComposeOptions options;
  options.files = {kFixtures / "compose-services" / "docker-compose.yml"};
  options.service = "app";
  std::unique_ptr<Backend> backend = make_compose_backend(options);
  backend->prepare(no_cancel_);
  const std::string run_id = unique_run_id("services");
  std::unique_ptr<Environment> environment = backend->create(slot(run_id, 1, 1));
  EXPECT_EQ(environment->describe(), fmt::format("compose project testfleet-{}-g1: db, redis", run_id));
  environment->provision(no_cancel_);
  std::filesystem::path junit = reports_->path() / "group-1" / "junit.xml";
  util::CommandResult result =
      run_wrapped(*environment,
                  {"python3", "-m", "pytest", "-q", "--junit-xml", environment->path_inside(junit).string()},
                  environment->variables());
  EXPECT_TRUE(result.status.success()) << result.output;
  EXPECT_THAT(result.output, HasSubstr("11 passed"));
  EXPECT_THAT(util::read_file(junit), HasSubstr("tests=\"11\""));
  EXPECT_TRUE(environment->teardown().empty());
  EXPECT_THAT(resources_of(fmt::format("testfleet-{}-g1", run_id)), ::testing::IsEmpty());
  EXPECT_TRUE(backend->finish().empty());
}

}  // namespace
