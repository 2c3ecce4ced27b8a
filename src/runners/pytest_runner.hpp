// pytest as a Runner. Every command testfleet runs is the user's own pytest command, unchanged but for
// its report options, with testfleet's plugin loaded (pytest_plugin.py): in a worker the plugin collects,
// then runs the tests it is fed by node ID through the worker channel and reports each result there. So IDs
// never pass through argv, and they mean the same wherever pytest's rootdir is.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "runners/runner.hpp"

namespace testfleet::runners {

// Whether a command runs pytest: `pytest`, `pytest-3`, `py.test`, or `PYTHON -m pytest`.
bool is_pytest_command(const std::vector<std::string>& argv);

// pytest's own mapping of a node ID to JUnit's (classname, name) (mangle_test_address in junitxml.py).
reports::JUnitKey pytest_junit_key(const std::string& nodeid, const std::string& prefix = {});

class PytestRunner : public Runner {
 public:
  // `argv` is the user's test command; relative paths in its report options are resolved against `cwd`.
  PytestRunner(std::vector<std::string> argv, const std::filesystem::path& cwd);

  std::string name() const override { return "pytest"; }
  Command collect_command(const CommandPaths& paths) const override;
  std::vector<std::string> read_collection(const util::CommandResult& result,
                                           const CommandPaths& paths) const override;
  void install_support(const std::filesystem::path& host_dir) const override;
  bool streams() const override { return true; }
  void write_group_files(const GroupRequest& group) const override { (void)group; }
  Command group_command(const GroupRequest& group) const override;
  std::filesystem::path group_junit(const GroupRequest& group) const override;
  reports::JUnitKey junit_key(const std::string& id) const override;
  std::string junit_suite_name() const override { return suite_name_; }
  std::optional<std::filesystem::path> requested_junit() const override { return junit_; }

  // Coverage: whether --cov was given, and the report types the user asked for (--cov-report values).
  bool coverage_enabled() const { return coverage_; }
  const std::vector<std::string>& coverage_reports() const { return coverage_reports_; }
  // The Python that runs pytest (from `-m pytest` or the pytest script's shebang), for `coverage combine`.
  std::vector<std::string> python_command() const;

 private:
  Command base_command(const CommandPaths& paths) const;

  std::vector<std::string> argv_;  // without the options testfleet owns (JUnit, coverage reports)
  std::optional<std::filesystem::path> junit_;
  std::string junit_prefix_;
  std::string suite_name_ = "pytest";
  bool coverage_ = false;
  std::vector<std::string> coverage_reports_;
};

}  // namespace testfleet::runners
