#include "ci/ci_output.hpp"

#include <fmt/format.h>

#include <algorithm>

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

std::string display_name(const reports::TestCaseRecord& record) {
  return record.classname.empty() ? record.name : record.classname + "::" + record.name;
}

bool is_failure(const reports::TestCaseRecord& record) {
  return record.outcome == reports::Outcome::kFailed || record.outcome == reports::Outcome::kError;
}

}  // namespace

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
      md += fmt::format("| {} | `{}` |\n", util::format_duration(record->time), cell(display_name(*record)));
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
                    cell(display_name(record)), cell(first_lines(record.message, 1, 200)),
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
    std::string file = record.file;
    if (file.empty()) {
      auto it = summary.files.find(record.classname + '\x1f' + record.name);
      if (it != summary.files.end()) file = it->second;
    }
    std::string properties = file.empty() ? "" : "file=" + github_escape_property(file) + ",";
    properties += "title=" + github_escape_property(fmt::format(
                                 "{} {}", record.outcome == reports::Outcome::kError ? "error in" : "failed:",
                                 display_name(record)));
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
