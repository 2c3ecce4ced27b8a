#include "runners/pytest_runner.hpp"

#include <fmt/format.h>

#include <cctype>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>

#include "runners/pytest_plugin_source.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"

namespace testfleet::runners {
namespace {

constexpr const char* kPluginModule = "testfleet_pytest_plugin";

// Where files are not shared, the plugin travels in a variable: this writes it into a directory of the
// container's own and puts that first on PYTHONPATH, then runs the user's command as it is.
constexpr const char* kBootstrap =
    "d=$(mktemp -d \"${TMPDIR:-/tmp}/testfleet.XXXXXX\") && "
    "printf '%s' \"$TESTFLEET_PLUGIN_SOURCE\" > \"$d/testfleet_pytest_plugin.py\" && "
    "unset TESTFLEET_PLUGIN_SOURCE && PYTHONPATH=\"$d${PYTHONPATH:+:$PYTHONPATH}\" && export PYTHONPATH && "
    "exec \"$@\"";
// A worker's JUnit inside such a container, sent back through the channel when pytest is done.
constexpr const char* kContainerJUnit = "/tmp/testfleet-junit.xml";

// An option given as `--name=value` or `--name value`: its value, and how many words it took.
std::optional<std::pair<std::string, std::size_t>> option_value(const std::vector<std::string>& argv,
                                                                std::size_t i, std::string_view name) {
  const std::string& word = argv[i];
  if (word.size() > name.size() && word.starts_with(name) && word[name.size()] == '=') {
    return std::make_pair(word.substr(name.size() + 1), std::size_t{1});
  }
  if (word == name) {
    if (i + 1 >= argv.size()) throw UsageError(fmt::format("the pytest option {} needs a value", name));
    return std::make_pair(argv[i + 1], std::size_t{2});
  }
  return std::nullopt;
}

// pytest's bin_xml_escape as it behaves (its character class is mistyped, so every character above U+FFFD is
// "illegal" too): such characters become the text "#xHH" or "#xHHHH" in a testcase name.
std::string pytest_xml_escape(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    auto byte = static_cast<unsigned char>(text[i]);
    std::size_t length = byte < 0x80           ? 1
                         : (byte >> 5) == 0x6  ? 2
                         : (byte >> 4) == 0xE  ? 3
                         : (byte >> 3) == 0x1E ? 4
                                               : 1;
    if (i + length > text.size()) length = 1;
    char32_t code = length == 1 ? byte : byte & (0x7F >> length);
    for (std::size_t k = 1; k < length; ++k)
      code = (code << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    bool legal = code == 0x09 || code == 0x0A || code == 0x0D || (code >= 0x20 && code <= 0x7E) ||
                 (code >= 0x80 && code <= 0xD7FF) || (code >= 0xE000 && code <= 0xFFFD);
    if (legal) {
      out.append(text, i, length);
    } else {
      out += code <= 0xFF ? fmt::format("#x{:02X}", static_cast<unsigned>(code))
                          : fmt::format("#x{:04X}", static_cast<unsigned>(code));
    }
    i += length;
  }
  return out;
}

}  // namespace

bool is_pytest_command(const std::vector<std::string>& argv) {
  if (argv.empty()) return false;
  std::string base = std::filesystem::path(argv[0]).filename().string();
  if (base == "pytest" || base == "py.test" || std::regex_match(base, std::regex(R"(pytest-?[0-9.]*)")))
    return true;
  // PYTHON [options] -m pytest: -X and -W take a value of their own.
  for (std::size_t i = 1; i + 1 < argv.size(); ++i) {
    if (argv[i] == "-m") return argv[i + 1] == "pytest";
    if (argv[i] == "-X" || argv[i] == "-W") {
      ++i;
      continue;
    }
    if (!argv[i].starts_with("-")) break;
  }
  return false;
}

reports::JUnitKey pytest_junit_key(const std::string& nodeid, const std::string& prefix) {
  std::size_t bracket = nodeid.find('[');
  std::string path = nodeid.substr(0, bracket);
  std::string params = bracket == std::string::npos ? "" : nodeid.substr(bracket);
  std::vector<std::string> names;
  std::size_t start = 0;
  while (true) {
    std::size_t sep = path.find("::", start);
    names.push_back(path.substr(start, sep == std::string::npos ? std::string::npos : sep - start));
    if (sep == std::string::npos) break;
    start = sep + 2;
  }
  names[0] = util::replace_all(names[0], "/", ".");
  if (names[0].ends_with(".py")) names[0].resize(names[0].size() - 3);
  names.back() += params;
  std::vector<std::string> classnames(names.begin(), names.end() - 1);
  if (!prefix.empty()) classnames.insert(classnames.begin(), prefix);
  return {util::join(classnames, "."), pytest_xml_escape(names.back())};
}

PytestRunner::PytestRunner(std::vector<std::string> argv, const std::filesystem::path& cwd) {
  for (std::size_t i = 0; i < argv.size();) {
    if (i > 0) {
      std::optional<std::pair<std::string, std::size_t>> value;
      if ((value = option_value(argv, i, "--junit-xml")) || (value = option_value(argv, i, "--junitxml"))) {
        junit_ = cwd / value->first;
        i += value->second;
        continue;
      }
      if ((value = option_value(argv, i, "--cov-report"))) {
        coverage_reports_.push_back(value->first);
        i += value->second;
        continue;
      }
      if ((value = option_value(argv, i, "--junit-prefix"))) junit_prefix_ = value->first;
      if (argv[i] == "-o" && i + 1 < argv.size() && argv[i + 1].starts_with("junit_suite_name=")) {
        suite_name_ = argv[i + 1].substr(std::string_view("junit_suite_name=").size());
      }
      if (argv[i] == "--cov" || argv[i].starts_with("--cov=")) coverage_ = true;
      const std::string& word = argv[i];
      bool numprocesses = word == "-n" || word == "--numprocesses" || word.starts_with("--numprocesses=") ||
                          (word.size() > 2 && word.starts_with("-n") &&
                           (std::isdigit(static_cast<unsigned char>(word[2])) || word.substr(2) == "auto"));
      if (numprocesses) {
        throw UsageError(fmt::format(
            "'{}' asks pytest-xdist for workers of its own inside testfleet's: they would share one "
            "environment again, and testfleet feeds its workers test by test. Drop it; `testfleet run -n N` "
            "gives N isolated workers",
            word));
      }
    }
    argv_.push_back(argv[i]);
    ++i;
  }
  // pytest-cov's default report is "term" when --cov is given without --cov-report.
  if (coverage_ && coverage_reports_.empty()) coverage_reports_.push_back("term");
}

std::vector<std::string> PytestRunner::python_command() const {
  for (std::size_t i = 1; i + 1 < argv_.size(); ++i) {
    if (argv_[i] == "-m" && argv_[i + 1] == "pytest")
      return {argv_.begin(), argv_.begin() + static_cast<std::ptrdiff_t>(i)};
  }
  std::optional<std::filesystem::path> script = util::find_executable(argv_[0]);
  if (script) {
    std::ifstream in(*script);
    std::string first_line;
    if (std::getline(in, first_line) && first_line.starts_with("#!")) {
      std::vector<std::string> words = util::split_command_line(first_line.substr(2));
      if (!words.empty() && std::filesystem::path(words[0]).filename() == "env") words.erase(words.begin());
      if (!words.empty()) return words;
    }
  }
  return {"python3"};
}

Command PytestRunner::base_command(const CommandPaths& paths) const {
  Command command;
  command.variables["PYTEST_PLUGINS"] = kPluginModule;
  if (paths.shared_files) {
    command.argv = argv_;
    command.variables["PYTHONPATH"] = paths.support_inside_dir.string();
  } else {
    command.argv = {"sh", "-c", kBootstrap, "testfleet-bootstrap"};
    command.argv.insert(command.argv.end(), argv_.begin(), argv_.end());
    command.variables["TESTFLEET_PLUGIN_SOURCE"] = kPytestPluginSource;
  }
  return command;
}

Command PytestRunner::collect_command(const CommandPaths& paths) const {
  Command command = base_command(paths);
  command.argv.insert(command.argv.end(), {"--collect-only", "-q"});
  if (coverage_) command.argv.push_back("--no-cov");
  if (paths.shared_files) {
    command.variables["TESTFLEET_COLLECT_FILE"] = (paths.inside_dir / "collection.json").string();
  } else {
    command.variables["TESTFLEET_COLLECT_STDOUT"] = "1";
  }
  return command;
}

std::vector<std::string> PytestRunner::read_collection(const util::CommandResult& result,
                                                       const CommandPaths& paths) const {
  // pytest's exit codes: 0 collected, 5 nothing collected, anything else a failure to collect.
  if (result.status.code == 5 && result.status.signal == 0) return {};
  if (!result.status.success()) {
    throw Error(ExitCode::kTestsFailed,
                fmt::format("pytest could not collect the tests ({}):\n{}", result.status.describe(),
                            util::tail_lines(result.output, 60)));
  }
  if (!paths.shared_files) {
    // The plugin printed the collection as one line of its own among pytest's output.
    for (const std::string& line : util::split_lines(result.output)) {
      if (!line.starts_with("@testfleet ")) continue;
      nlohmann::json event = nlohmann::json::parse(line.substr(11), nullptr, false);
      if (event.is_object() && event.value("event", "") == "collected")
        return event.at("ids").get<std::vector<std::string>>();
    }
    throw InfrastructureError(fmt::format(
        "testfleet's pytest plugin did not run during collection (it printed no collection); does the "
        "command keep the PYTEST_PLUGINS and PYTHONPATH variables? Its output:\n{}",
        util::tail_lines(result.output, 30)));
  }
  std::filesystem::path file = paths.host_dir / "collection.json";
  if (!std::filesystem::exists(file)) {
    throw InfrastructureError(fmt::format(
        "testfleet's pytest plugin did not run during collection (no {}); does the command keep the "
        "PYTEST_PLUGINS and PYTHONPATH variables? Its output:\n{}",
        file.string(), util::tail_lines(result.output, 30)));
  }
  nlohmann::json document = nlohmann::json::parse(util::read_file(file));
  return document.at("ids").get<std::vector<std::string>>();
}

void PytestRunner::install_support(const std::filesystem::path& host_dir) const {
  std::filesystem::create_directories(host_dir);
  util::write_file_atomic(host_dir / (std::string(kPluginModule) + ".py"), kPytestPluginSource);
}

Command PytestRunner::group_command(const GroupRequest& group) const {
  Command command = base_command(group.paths);
  const std::filesystem::path& dir = group.paths.inside_dir;
  if (group.paths.shared_files) {
    command.argv.push_back("--junit-xml=" + (dir / "junit.xml").string());
  } else {
    command.argv.push_back(std::string("--junit-xml=") + kContainerJUnit);
    command.variables["TESTFLEET_RETURN_JUNIT"] = "1";
  }
  if (coverage_) {
    command.argv.push_back("--cov-report=");
    command.variables["COVERAGE_FILE"] = (dir / ".coverage").string();
  }
  command.variables["TESTFLEET_WORKER"] = "1";
  return command;
}

std::filesystem::path PytestRunner::group_junit(const GroupRequest& group) const {
  return group.paths.host_dir / "junit.xml";
}

reports::JUnitKey PytestRunner::junit_key(const std::string& id) const {
  return pytest_junit_key(id, junit_prefix_);
}

}  // namespace testfleet::runners
