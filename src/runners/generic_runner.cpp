#include "runners/generic_runner.hpp"

#include <fmt/format.h>

#include <fstream>
#include <unordered_map>

#include "util/error.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"

namespace testfleet::runners {
namespace {

// Linux allows 2 MiB of argv and environment together; keep well clear of it.
constexpr std::size_t kMaxArgvBytes = 1024 * 1024;

bool mentions(const std::vector<std::string>& argv, std::string_view placeholder) {
  for (const std::string& word : argv) {
    if (word.find(placeholder) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

GenericRunner::GenericRunner(std::vector<std::string> list_argv, std::vector<std::string> test_argv,
                             std::optional<std::filesystem::path> merged_junit)
    : list_argv_(std::move(list_argv)),
      test_argv_(std::move(test_argv)),
      merged_junit_(std::move(merged_junit)) {
  if (list_argv_.empty()) throw UsageError("the list command is empty");
  if (test_argv_.empty()) throw UsageError("the test command is empty");
  if (!mentions(test_argv_, "{junit}")) {
    throw UsageError(fmt::format(
        "the test command '{}' has no {{junit}} placeholder: testfleet needs each group's JUnit XML to "
        "know its results",
        util::shell_join(test_argv_)));
  }
  if (!mentions(test_argv_, "{tests}") && !mentions(test_argv_, "{tests_file}")) {
    throw UsageError(
        fmt::format("the test command '{}' has neither {{tests}} nor {{tests_file}}: how would a "
                    "group know its tests?",
                    util::shell_join(test_argv_)));
  }
  for (const std::string& word : test_argv_) {
    if (word != "{tests}" && word.find("{tests}") != std::string::npos) {
      throw UsageError(
          fmt::format("{{tests}} must stand alone as a word of the test command, not inside '{}'", word));
    }
  }
}

Command GenericRunner::collect_command(const CommandPaths& paths) const {
  (void)paths;
  return {list_argv_, {}, /*output_is_data=*/true};
}

std::vector<std::string> GenericRunner::read_collection(const util::CommandResult& result,
                                                        const CommandPaths& paths) const {
  (void)paths;
  if (!result.status.success()) {
    throw Error(ExitCode::kTestsFailed,
                fmt::format("the list command '{}' failed ({}):\n{}", util::shell_join(list_argv_),
                            result.status.describe(), util::tail_lines(result.output, 60)));
  }
  std::vector<std::string> ids;
  for (std::string& line : util::split_lines(result.output)) {
    if (!util::trim(line).empty()) ids.push_back(std::move(line));
  }
  return ids;
}

void GenericRunner::write_group_files(const GroupRequest& group) const {
  std::string text;
  for (const std::string& id : group.test_ids) {
    if (id.find('\n') != std::string::npos) {
      throw UsageError(fmt::format("the test ID '{}' holds a newline, which a tests file cannot carry", id));
    }
    text += id;
    text += '\n';
  }
  util::write_file_atomic(group.paths.host_dir / "tests.txt", text);
}

Command GenericRunner::group_command(const GroupRequest& group) const {
  const std::filesystem::path& dir = group.paths.inside_dir;
  auto fill = [&](std::string word) {
    word = util::replace_all(std::move(word), "{tests_file}", (dir / "tests.txt").string());
    word = util::replace_all(std::move(word), "{junit}", (dir / "junit.xml").string());
    word = util::replace_all(std::move(word), "{groups}", std::to_string(group.count));
    word = util::replace_all(std::move(word), "{group}", std::to_string(group.index));
    return util::replace_all(std::move(word), "{run_id}", group.run_id);
  };
  Command command;
  std::size_t bytes = 0;
  for (const std::string& word : test_argv_) {
    if (word == "{tests}") {
      for (const std::string& id : group.test_ids) {
        bytes += id.size() + 1;
        command.argv.push_back(id);
      }
    } else {
      command.argv.push_back(fill(word));
    }
  }
  if (bytes > kMaxArgvBytes) {
    throw UsageError(
        fmt::format("group {}'s {} test IDs take {} KiB of argv, more than a process can take: use "
                    "{{tests_file}} instead of {{tests}}",
                    group.index, group.test_ids.size(), bytes / 1024));
  }
  return command;
}

std::filesystem::path GenericRunner::group_junit(const GroupRequest& group) const {
  return group.paths.host_dir / "junit.xml";
}

GroupReport GenericRunner::read_group(const GroupRequest& group) const {
  GroupReport report;
  std::filesystem::path junit = group_junit(group);
  if (!std::filesystem::exists(junit)) return report;
  // A runner names its testcases as it likes: a test ID is matched to `name`, `classname::name` or
  // `classname.name`.
  std::unordered_map<std::string, reports::TestCaseRecord> by_key;
  for (reports::TestCaseRecord& record : reports::read_testcases(junit)) {
    std::vector<std::string> keys = {record.name};
    if (!record.classname.empty()) {
      keys.push_back(record.classname + "::" + record.name);
      keys.push_back(record.classname + "." + record.name);
    }
    for (const std::string& key : keys) {
      auto [it, inserted] = by_key.emplace(key, record);
      // Of two testcases for one test keep the worse outcome (kFailed/kError come before kPassed).
      if (!inserted && record.outcome != reports::Outcome::kPassed) it->second = record;
    }
  }
  for (const std::string& id : group.test_ids) {
    if (auto it = by_key.find(id); it != by_key.end()) report.finished[id] = it->second;
  }
  return report;
}

reports::JUnitKey GenericRunner::junit_key(const std::string& id) const {
  std::size_t sep = id.rfind("::");
  if (sep == std::string::npos) return {"", id};
  return {id.substr(0, sep), id.substr(sep + 2)};
}

}  // namespace testfleet::runners
