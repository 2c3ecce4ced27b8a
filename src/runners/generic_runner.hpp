// Any test runner: a command that lists one test ID per line, and a test command with placeholders that
// testfleet fills for each group:
//   {tests}       the group's test IDs, one argv word each (must stand alone as a word)
//   {tests_file}  a file with the group's test IDs, one per line (for groups too large for argv)
//   {junit}       the JUnit XML file the group must write (required: it is how results come back)
//   {group} {groups} {run_id}
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "runners/runner.hpp"

namespace testfleet::runners {

class GenericRunner : public Runner {
 public:
  // Throws UsageError when the test command has no {junit} or misuses {tests}.
  GenericRunner(std::vector<std::string> list_argv, std::vector<std::string> test_argv,
                std::optional<std::filesystem::path> merged_junit);

  std::string name() const override { return "generic"; }
  Command collect_command(const CommandPaths& paths) const override;
  std::vector<std::string> read_collection(const util::CommandResult& result,
                                           const CommandPaths& paths) const override;
  void install_support(const std::filesystem::path& host_dir) const override { (void)host_dir; }
  bool streams() const override { return false; }
  void write_group_files(const GroupRequest& group) const override;
  Command group_command(const GroupRequest& group) const override;
  std::filesystem::path group_junit(const GroupRequest& group) const override;
  GroupReport read_group(const GroupRequest& group) const override;
  reports::JUnitKey junit_key(const std::string& id) const override;
  std::string junit_suite_name() const override { return "testfleet"; }
  std::optional<std::filesystem::path> requested_junit() const override { return merged_junit_; }

 private:
  std::vector<std::string> list_argv_;
  std::vector<std::string> test_argv_;
  std::optional<std::filesystem::path> merged_junit_;
};

}  // namespace testfleet::runners
