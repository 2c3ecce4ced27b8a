#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "runners/generic_runner.hpp"
#include "runners/pytest_runner.hpp"
#include "util/error.hpp"
#include "util/files.hpp"

using namespace testfleet::runners;

TEST(PytestJUnitKey, MatchesPytestsMangling) {
  auto key = pytest_junit_key("tests/unit/test_a.py::TestX::test_y[a::b-c/d]");
  EXPECT_EQ(key.classname, "tests.unit.test_a.TestX");
  EXPECT_EQ(key.name, "test_y[a::b-c/d]");
  key = pytest_junit_key("test_top.py::test_f");
  EXPECT_EQ(key.classname, "test_top");
  EXPECT_EQ(key.name, "test_f");
  // As pytest writes them: characters above U+FFFD and control characters become "#x..." text.
  EXPECT_EQ(pytest_junit_key("t.py::test[emoji \U0001F680 \x07 \u00e9]").name,
            "test[emoji #x1F680 #x07 \u00e9]");
  key = pytest_junit_key("a.py::T::test", "prefix");
  EXPECT_EQ(key.classname, "prefix.a.T");
}

TEST(PytestCommand, Detection) {
  EXPECT_TRUE(is_pytest_command({"pytest", "tests"}));
  EXPECT_TRUE(is_pytest_command({"/usr/bin/pytest-3"}));
  EXPECT_TRUE(is_pytest_command({"/usr/bin/python3", "-m", "pytest", "-q"}));
  EXPECT_TRUE(is_pytest_command({"python", "-X", "dev", "-m", "pytest"}));
  EXPECT_FALSE(is_pytest_command({"python3", "runner.py", "-m", "pytest"}));
  EXPECT_FALSE(is_pytest_command({"go", "test"}));
}

TEST(PytestRunner, OwnsTheReportOptionsAndKeepsTheRest) {
  PytestRunner runner({"pytest", "-q", "--junit-xml", "out/unit.xml", "--cov=app", "--cov-report=xml",
                       "--cov-report", "term-missing", "-k", "not slow", "tests/"},
                      "/work/project");
  ASSERT_TRUE(runner.requested_junit());
  EXPECT_EQ(*runner.requested_junit(), "/work/project/out/unit.xml");
  EXPECT_TRUE(runner.coverage_enabled());
  EXPECT_EQ(runner.coverage_reports(), (std::vector<std::string>{"xml", "term-missing"}));

  GroupRequest group;
  group.index = 2;
  group.count = 3;
  group.test_ids = {"tests/test_a.py::test_x"};
  group.paths = {"/host/r/group-2", "/inside/r/group-2", "/inside/r/.testfleet"};
  Command command = runner.group_command(group);
  EXPECT_EQ(command.argv,
            (std::vector<std::string>{"pytest", "-q", "--cov=app", "-k", "not slow", "tests/",
                                      "--junit-xml=/inside/r/group-2/junit.xml", "--cov-report="}));
  EXPECT_EQ(command.variables.at("COVERAGE_FILE"), "/inside/r/group-2/.coverage");
  EXPECT_EQ(command.variables.at("TESTFLEET_WORKER"), "1");
  EXPECT_TRUE(runner.streams());
  EXPECT_EQ(command.variables.at("PYTHONPATH"), "/inside/r/.testfleet");
  EXPECT_EQ(command.variables.at("PYTEST_PLUGINS"), "testfleet_pytest_plugin");
  EXPECT_EQ(runner.group_junit(group), "/host/r/group-2/junit.xml");

  Command collect = runner.collect_command(group.paths);
  EXPECT_EQ(collect.argv.back(), "--no-cov");
  EXPECT_NE(std::find(collect.argv.begin(), collect.argv.end(), "--collect-only"), collect.argv.end());
}

TEST(PytestRunner, JUnitSuiteNameAndMissingValue) {
  PytestRunner runner({"pytest", "-o", "junit_suite_name=api", "--junitxml=u.xml"}, "/p");
  EXPECT_EQ(runner.junit_suite_name(), "api");
  EXPECT_THROW(PytestRunner({"pytest", "--junit-xml"}, "/p"), testfleet::UsageError);
}

TEST(GenericRunner, ReadsWhatItsBatchReportedFromItsJUnit) {
  testfleet::util::TempDir dir("tf-runner-");
  GenericRunner runner({"./runner.py", "--list"}, {"./runner.py", "{tests_file}", "--junit={junit}"},
                       std::nullopt);
  EXPECT_FALSE(runner.streams());
  GroupRequest batch;
  batch.index = 1;
  batch.test_ids = {"suite::a", "suite::b", "suite::c"};
  batch.paths = {dir.path(), dir.path(), dir.path()};
  runner.write_group_files(batch);
  EXPECT_EQ(testfleet::util::read_file(dir.path() / "tests.txt"), "suite::a\nsuite::b\nsuite::c\n");
  testfleet::util::write_file_atomic(dir.path() / "junit.xml",
                                     "<testsuite><testcase classname=\"suite\" name=\"a\" time=\"0.5\"/>"
                                     "<testcase classname=\"suite\" name=\"b\"><failure message=\"x\"/>"
                                     "</testcase></testsuite>");
  GroupReport report = runner.read_group(batch);
  ASSERT_EQ(report.finished.size(), 2u);
  EXPECT_EQ(report.finished.at("suite::a").outcome, testfleet::reports::Outcome::kPassed);
  EXPECT_DOUBLE_EQ(report.finished.at("suite::a").time, 0.5);
  EXPECT_EQ(report.finished.at("suite::b").outcome, testfleet::reports::Outcome::kFailed);
  EXPECT_EQ(report.finished.count("suite::c"), 0u);
}

TEST(GenericRunner, FillsPlaceholders) {
  GenericRunner runner({"./runner.py", "--list"},
                       {"./runner.py", "{tests}", "--junit={junit}", "-g", "{group}/{groups}"}, std::nullopt);
  GroupRequest group;
  group.index = 3;
  group.count = 4;
  group.run_id = "r1";
  group.test_ids = {"a b", "c;$d"};
  group.paths = {"/h/group-3", "/i/group-3", "/i/.testfleet"};
  Command command = runner.group_command(group);
  EXPECT_EQ(command.argv, (std::vector<std::string>{"./runner.py", "a b", "c;$d",
                                                    "--junit=/i/group-3/junit.xml", "-g", "3/4"}));
}

TEST(GenericRunner, RejectsCommandsItCannotDriveAndHugeArgv) {
  EXPECT_THROW(GenericRunner({"ls"}, {"run", "{tests}"}, std::nullopt), testfleet::UsageError);
  EXPECT_THROW(GenericRunner({"ls"}, {"run", "{junit}"}, std::nullopt), testfleet::UsageError);
  EXPECT_THROW(GenericRunner({"ls"}, {"run", "--t={tests}", "{junit}"}, std::nullopt), testfleet::UsageError);
  GenericRunner runner({"ls"}, {"run", "{tests}", "{junit}"}, std::nullopt);
  GroupRequest group;
  group.index = 1;
  for (int i = 0; i < 100000; ++i) group.test_ids.push_back("tests/test_module_number_" + std::to_string(i));
  EXPECT_THROW(runner.group_command(group), testfleet::UsageError);
}

TEST(GenericRunner, ListOutputOneIdPerLine) {
  GenericRunner runner({"ls"}, {"run", "{tests_file}", "{junit}"}, std::nullopt);
  testfleet::util::CommandResult result;
  result.status.code = 0;
  result.output = "a\r\n\nb c\n";
  EXPECT_EQ(runner.read_collection(result, {}), (std::vector<std::string>{"a", "b c"}));
  result.status.code = 2;
  EXPECT_THROW(runner.read_collection(result, {}), testfleet::Error);
}
