#include "ci/ci_output.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "util/strings.hpp"

namespace testfleet::ci {
namespace {

bool is_true(const util::EnvVars& env, const char* key) {
  auto it = env.find(key);
  return it != env.end() && (it->second == "true" || it->second == "1");
}

std::string first_lines(const std::string& text, std::size_t lines, std::size_t max_chars) {
  std::vector<std::string> all = util::split_lines(text);
  std::vector<std::string> kept(all.begin(),
                                all.begin() + static_cast<std::ptrdiff_t>(std::min(lines, all.size())));
  std::string out = util::join(kept, "\n");
  if (out.size() > max_chars) out = out.substr(0, max_chars) + "...";
  return out;
}

// Markdown table cells: pipes and newlines would break the row; backticks would open code spans.
std::string cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else {
      out += c;
    }
  }
  return out;
}

// The test's own file: the testcase's `file` attribute, else what the runner knows of its ID.
std::string file_of(const RunSummary& summary, const reports::TestCaseRecord& record) {
  if (!record.file.empty()) return record.file;
  auto it = summary.files.find(record.classname + '\x1f' + record.name);
  return it != summary.files.end() ? it->second : std::string();
}

std::string display_name(const RunSummary& summary, const reports::TestCaseRecord& record) {
  return test_id(record, file_of(summary, record));
}

// A path's components, without "." and leading ".." (a traceback's path relative to a folder below the
// rootdir starts with them).
std::vector<std::string_view> path_components(std::string_view path) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0; start <= path.size();) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(start, slash - start);
    if (!part.empty() && part != "." && !(part == ".." && parts.empty())) parts.push_back(part);
    start = slash + 1;
  }
  return parts;
}

// Whether a traceback's path is `file`: one ends with the other's components (absolute, relative to the
// rootdir, or relative to a folder below it).
bool same_file(std::string_view traceback_path, const std::vector<std::string_view>& file) {
  std::vector<std::string_view> path = path_components(traceback_path);
  if (path.empty() || file.empty()) return false;
  std::size_t common = std::min(path.size(), file.size());
  return std::equal(path.end() - static_cast<std::ptrdiff_t>(common), path.end(),
                    file.end() - static_cast<std::ptrdiff_t>(common));
}

// The number at the start of `text`, 0 when there is none.
int leading_number(std::string_view text) {
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || value > 100000000) break;
    value = value * 10 + (c - '0');
  }
  return value;
}

// The module pytest names a file by in a classname: "tests/test_a.py" -> "tests.test_a".
std::string module_of(std::string_view file) {
  std::string module = util::replace_all(std::string(file), "/", ".");
  if (module.ends_with(".py")) module.resize(module.size() - 3);
  return module;
}

// The classes of a pytest classname after the file's module (".TestCart", or "" for a function of the
// module), which may stand behind a --junit-prefix and its dot; nullopt when the classname is not pytest's
// for `file`.
std::optional<std::string> pytest_classes(std::string_view classname, std::string_view file) {
  if (!file.ends_with(".py")) return std::nullopt;
  const std::string module = module_of(file);
  for (std::size_t at = classname.find(module); at != std::string_view::npos;
       at = classname.find(module, at + 1)) {
    std::size_t end = at + module.size();
    if ((at == 0 || classname[at - 1] == '.') && (end == classname.size() || classname[end] == '.')) {
      return std::string(classname.substr(end));
    }
  }
  return std::nullopt;
}

bool is_failure(const reports::TestCaseRecord& record) {
  return record.outcome == reports::Outcome::kFailed || record.outcome == reports::Outcome::kError;
}

}  // namespace

std::string test_id(const reports::TestCaseRecord& record, std::string_view file) {
  if (std::optional<std::string> classes = pytest_classes(record.classname, file)) {
    // The classes, dotted in the classname, are "::" in the node ID.
    return std::string(file) + util::replace_all(*classes, ".", "::") + "::" + record.name;
  }
  return record.classname.empty() ? record.name : record.classname + "::" + record.name;
}

int traceback_line(std::string_view text, std::string_view file) {
  const std::vector<std::string_view> wanted = path_components(file);
  int found = 0;
  for (const std::string& raw : util::split_lines(std::string(text))) {
    std::string_view line = util::trim(raw);
    int number = 0;
    if (line.starts_with("File \"")) {
      // --tb=native: File "path", line 33, in test_total
      std::size_t quote = line.find("\", line ", 6);
      if (quote == std::string_view::npos) continue;
      if (same_file(line.substr(6, quote - 6), wanted)) number = leading_number(line.substr(quote + 8));
    } else {
      // path:33: AssertionError, path:33: in test_total, path:33: (an outer frame)
      for (std::size_t colon = line.find(':'); colon != std::string_view::npos;
           colon = line.find(':', colon + 1)) {
        std::string_view rest = line.substr(colon + 1);
        int candidate = leading_number(rest);
        std::size_t digits = rest.find_first_not_of("0123456789");
        if (candidate > 0 && digits != std::string_view::npos && rest[digits] == ':' &&
            same_file(line.substr(0, colon), wanted)) {
          number = candidate;
          break;
        }
      }
    }
    if (number > 0) found = number;
  }
  return found;
}

Provider detect(std::string_view setting, const util::EnvVars& env) {
  if (setting == "github") return Provider::kGitHub;
  if (setting == "gitlab") return Provider::kGitLab;
  if (setting == "none") return Provider::kNone;
  if (is_true(env, "GITHUB_ACTIONS")) return Provider::kGitHub;
  if (is_true(env, "GITLAB_CI")) return Provider::kGitLab;
  return Provider::kNone;
}

std::string github_escape_data(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '%') {
      out += "%25";
    } else if (c == '\r') {
      out += "%0D";
    } else if (c == '\n') {
      out += "%0A";
    } else {
      out += c;
    }
  }
  return out;
}

std::string github_escape_property(std::string_view text) {
  std::string out = github_escape_data(text);
  out = util::replace_all(out, ":", "%3A");
  return util::replace_all(out, ",", "%2C");
}

std::string github_step_summary(const RunSummary& summary, std::size_t max_bytes) {
  const reports::Totals& t = summary.totals;
  std::size_t passed = t.tests - t.failures - t.errors - t.skipped;
  bool ok = t.failures + t.errors == 0;
  std::string md = fmt::format("## testfleet {} {}\n\n", ok ? "\u2705" : "\u274c", summary.run_id);
  md += "| tests | passed | failed | errors | skipped | not reported | wall time | lower bound |\n";
  md += "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n\n", t.tests, passed, t.failures, t.errors,
                    t.skipped, summary.not_reported, util::format_duration(summary.wall_seconds),
                    util::format_duration(summary.lower_bound_seconds));

  md += "### Groups\n\n| group | tests | time | estimate | result |\n|---:|---:|---:|---:|---|\n";
  for (const GroupSummary& g : summary.groups) {
    md += fmt::format("| {} | {} | {} | {} | {}{} |\n", g.index, g.tests, util::format_duration(g.seconds),
                      util::format_duration(g.estimate_seconds), g.failed ? "\u274c " : "", cell(g.status));
  }

  std::vector<const reports::TestCaseRecord*> slowest;
  for (const reports::TestCaseRecord& record : summary.testcases) slowest.push_back(&record);
  std::partial_sort(slowest.begin(),
                    slowest.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(10, slowest.size())),
                    slowest.end(), [](const auto* a, const auto* b) { return a->time > b->time; });
  slowest.resize(std::min<std::size_t>(10, slowest.size()));
  if (!slowest.empty()) {
    md += "\n### Slowest tests\n\n| time | test |\n|---:|---|\n";
    for (const reports::TestCaseRecord* record : slowest) {
      md += fmt::format("| {} | `{}` |\n", util::format_duration(record->time),
                        cell(display_name(summary, *record)));
    }
  }

  std::string failures;
  std::size_t shown = 0;
  std::size_t total_failures = 0;
  bool full = false;
  for (const reports::TestCaseRecord& record : summary.testcases) {
    if (!is_failure(record)) continue;
    ++total_failures;
    if (full) continue;
    std::string entry =
        fmt::format("<details><summary>{} <code>{}</code>: {}</summary>\n\n```\n{}\n```\n</details>\n\n",
                    record.outcome == reports::Outcome::kError ? "error" : "failed",
                    cell(display_name(summary, record)), cell(first_lines(record.message, 1, 200)),
                    util::replace_all(first_lines(record.text, 12, 2000), "```", "'''"));
    // Leave room for the closing line.
    if (md.size() + failures.size() + entry.size() + 200 > max_bytes) {
      full = true;
      continue;
    }
    failures += entry;
    ++shown;
  }
  if (total_failures > 0) {
    md += fmt::format("\n### Failures ({})\n\n", total_failures);
    md += failures;
    if (shown < total_failures) {
      md += fmt::format("... and {} more: see {}\n", total_failures - shown, summary.merged_junit);
    }
  }
  if (md.size() > max_bytes) md.resize(max_bytes);
  return md;
}

std::vector<std::string> github_annotations(const RunSummary& summary, std::size_t max) {
  std::vector<std::string> lines;
  std::size_t failures = 0;
  for (const reports::TestCaseRecord& record : summary.testcases) {
    if (!is_failure(record)) continue;
    ++failures;
    if (lines.size() >= max) continue;
    const std::string file = file_of(summary, record);
    int line = traceback_line(record.text, file);
    if (line == 0) line = traceback_line(record.message, file);
    if (line == 0 && record.line > 0) {
      // pytest counts the line it writes from 0: its `def` is on the next one.
      line = record.line + (pytest_classes(record.classname, file) ? 1 : 0);
    }
    std::string properties;
    if (!file.empty()) properties += "file=" + github_escape_property(file) + ",";
    if (!file.empty() && line > 0) properties += fmt::format("line={},", line);
    properties += "title=" + github_escape_property(fmt::format(
                                 "{} {}", record.outcome == reports::Outcome::kError ? "error in" : "failed:",
                                 test_id(record, file)));
    std::string message = record.message.empty() ? first_lines(record.text, 20, 4000)
                                                 : record.message + "\n" + first_lines(record.text, 20, 4000);
    lines.push_back(fmt::format("::error {}::{}", properties, github_escape_data(message)));
  }
  if (failures > lines.size()) {
    lines.push_back(fmt::format("::notice title=testfleet::{} more failed tests are not annotated; see {}",
                                failures - lines.size(), github_escape_data(summary.merged_junit)));
  }
  return lines;
}

std::string fold(Provider provider, const std::string& name, const std::string& title,
                 const std::string& content, long long unix_time) {
  std::string body = content.empty() || content.back() == '\n' ? content : content + "\n";
  if (provider == Provider::kGitHub) {
    // A line of the log that looks like a workflow command must not be run as one.
    std::string safe;
    for (const std::string& line : util::split_lines(body)) {
      safe += (line.starts_with("::") ? " " + line : line) + "\n";
    }
    return fmt::format("::group::{}\n{}::endgroup::\n", title, safe);
  }
  if (provider == Provider::kGitLab) {
    std::string section;
    for (char c : name) {
      bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '.' || c == '-';
      section += keep ? c : '_';
    }
    return fmt::format(
        "\x1b[0Ksection_start:{}:{}[collapsed=true]\r\x1b[0K{}\n{}\x1b[0Ksection_end:{}:{}\r\x1b[0K\n",
        unix_time, section, title, body, unix_time, section);
  }
  return body;
}

}  // namespace testfleet::ci
