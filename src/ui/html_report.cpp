#include "ui/html_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "util/error.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"

namespace testfleet::ui {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::size_t kMaxLogBytes = 256 * 1024;
constexpr std::size_t kMaxFailureBytes = 24 * 1024;
constexpr std::size_t kDetailedFailures = 500;  // past these, a failure is listed by name only
constexpr std::size_t kOpenFailures = 30;       // the first ones are shown unfolded
constexpr std::size_t kSlowestTests = 15;
// A passing test narrower than this share of the timeline is drawn together with its neighbours.
constexpr double kMinBarPercent = 0.15;

// The last `max_bytes` of a file, starting at a line, and the file's size; without reading the rest.
std::string read_tail(const fs::path& path, std::size_t max_bytes, std::size_t& size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("{}: cannot be read", path.string()));
  in.seekg(0, std::ios::end);
  auto end = static_cast<std::size_t>(in.tellg());
  size = end;
  std::size_t start = end > max_bytes ? end - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::string text(end - start, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (start > 0) {
    std::size_t newline = text.find('\n');
    if (newline != std::string::npos) text.erase(0, newline + 1);
  }
  return text;
}

std::string tail_bytes(const std::string& text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::string tail = text.substr(text.size() - max_bytes);
  std::size_t newline = tail.find('\n');
  if (newline != std::string::npos && newline + 1 < tail.size()) tail.erase(0, newline + 1);
  return "[... " + std::to_string(text.size() - tail.size()) + " earlier bytes cut]\n" + tail;
}

double number(const json& object, const char* key, double fallback = 0) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : fallback;
}

std::string text(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string junit_name(const reports::TestCaseRecord& record) {
  return record.classname.empty() ? record.name : record.classname + "::" + record.name;
}

reports::Outcome progress_outcome(const std::string& outcome) {
  if (outcome == "failed") return reports::Outcome::kFailed;
  if (outcome == "error") return reports::Outcome::kError;
  if (outcome == "skipped") return reports::Outcome::kSkipped;
  return reports::Outcome::kPassed;
}

bool is_failure(reports::Outcome outcome) {
  return outcome == reports::Outcome::kFailed || outcome == reports::Outcome::kError;
}

// The tests of a group from the pytest plugin's progress stream: each from its start to its report.
// A line cut short by a kill is skipped; a test that started and never reported was running at the end.
bool read_progress(const fs::path& path, GroupRecord& group) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::map<std::string, double> running;
  std::vector<std::string> start_order;
  double last_event = 0;
  std::string line;
  bool any = false;
  while (std::getline(in, line)) {
    json event = json::parse(line, nullptr, false);
    if (event.is_discarded() || !event.is_object()) continue;
    std::string kind = text(event, "event");
    double time = number(event, "time");
    last_event = std::max(last_event, time);
    if (kind == "start") {
      std::string id = text(event, "id");
      if (running.emplace(id, time).second) start_order.push_back(id);
    } else if (kind == "test") {
      any = true;
      TimedTest test;
      test.id = text(event, "id");
      test.outcome = progress_outcome(text(event, "outcome"));
      test.seconds = number(event, "seconds");
      test.ended = time;
      auto started = running.find(test.id);
      test.started = started != running.end() ? started->second : time - test.seconds;
      if (started != running.end()) running.erase(started);
      test.message = text(event, "message");
      group.tests.push_back(std::move(test));
    }
  }
  for (const std::string& id : start_order) {
    auto it = running.find(id);
    if (it == running.end()) continue;
    any = true;
    TimedTest test;
    test.id = id;
    test.outcome = reports::Outcome::kError;
    test.unfinished = true;
    test.started = it->second;
    test.ended = std::max(group.ended.value_or(last_event), it->second);
    test.seconds = test.ended - test.started;
    test.message = "still running when its group ended";
    group.tests.push_back(std::move(test));
  }
  return any;
}

// A runner without a progress stream: its JUnit's tests laid end to end from the group's start.
void place_by_junit(const std::vector<reports::TestCaseRecord>& records, double start, GroupRecord& group) {
  double cursor = start;
  for (const reports::TestCaseRecord& record : records) {
    TimedTest test;
    test.id = junit_name(record);
    test.outcome = record.outcome;
    test.seconds = record.time;
    test.started = cursor;
    test.ended = cursor + record.time;
    test.message = record.message;
    cursor = test.ended;
    group.tests.push_back(std::move(test));
  }
  group.tests_approximate = true;
}

std::string percent(double value) {
  return fmt::format("{:.3f}%", std::clamp(value, 0.0, 100.0));
}

std::string seconds_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  if (seconds < 0.0001) return "<0.1 ms";
  if (seconds < 0.01) return fmt::format("{:.1f} ms", seconds * 1000);
  if (seconds < 1) return fmt::format("{:.0f} ms", seconds * 1000);
  return util::format_duration(seconds);
}

std::string utc_time(double epoch) {
  auto whole = static_cast<std::time_t>(epoch);
  std::tm parts{};
  if (::gmtime_r(&whole, &parts) == nullptr) return "?";
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return buffer;
}

std::string_view outcome_class(const TimedTest& test) {
  if (test.unfinished) return "unfinished";
  switch (test.outcome) {
    case reports::Outcome::kPassed:
      return "pass";
    case reports::Outcome::kFailed:
      return "fail";
    case reports::Outcome::kError:
      return "error";
    case reports::Outcome::kSkipped:
    case reports::Outcome::kNotRun:
      return "skip";
  }
  return "pass";
}

std::string_view outcome_word(reports::Outcome outcome) {
  switch (outcome) {
    case reports::Outcome::kPassed:
      return "passed";
    case reports::Outcome::kFailed:
      return "failed";
    case reports::Outcome::kError:
      return "error";
    case reports::Outcome::kSkipped:
      return "skipped";
    case reports::Outcome::kNotRun:
      return "not run";
  }
  return "?";
}

std::string verdict(int exit_code) {
  switch (exit_code) {
    case 0:
      return "passed";
    case 1:
      return "failed";
    case 2:
      return "usage error";
    case 3:
      return "infrastructure error";
    case 129:
      return "interrupted (SIGHUP)";
    case 130:
      return "interrupted (SIGINT)";
    case 143:
      return "interrupted (SIGTERM)";
    default:
      return fmt::format("exit {}", exit_code);
  }
}

bool group_passed(const GroupRecord& group) {
  return !group.provision_error && group.status == "exit 0" && !group.timed_out;
}

// A step of 1, 2 or 5 times a power of ten giving about eight ticks over `span` seconds.
double tick_step(double span) {
  double raw = span / 8;
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= factor * power) return factor * power;
  }
  return 10 * power;
}

std::string tick_label(double seconds, double step) {
  if (step < 1) return fmt::format("{:.{}f}s", seconds, step < 0.1 ? 2 : 1);
  if (seconds < 60) return fmt::format("{:.0f}s", seconds);
  auto total = static_cast<long long>(std::llround(seconds));
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
}

// Where the report links a file: relative when it lies in the reports directory, so the link still works
// from a downloaded artifact.
std::optional<std::string> relative_link(const fs::path& dir, const fs::path& file) {
  std::error_code error;
  fs::path relative = fs::relative(file, dir, error);
  if (error || relative.empty() || *relative.begin() == "..") return std::nullopt;
  return relative.generic_string();
}

// Escapes a path for an href: percent-encodes everything but unreserved characters and '/'.
std::string url_path(std::string_view path) {
  std::string out;
  for (char c : path) {
    auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned>(byte));
    }
  }
  return out;
}

constexpr const char* kStyle = R"css(
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d2430;--muted:#667085;--line:#e4e7ec;--grid:#eef0f3;
--pass:#2f9e61;--fail:#d9433b;--error:#e8862f;--skip:#a3abb7;--prov:#5b8def;--proc:#e6ecf5;--down:#9b7fd1;
--plan:#98a2b3;--ideal:#111827;--code:#f2f4f7}
@media (prefers-color-scheme:dark){:root{--bg:#0f1218;--card:#171b23;--ink:#e6e9ef;--muted:#98a2b3;
--line:#2a303b;--grid:#202632;--proc:#243043;--ideal:#f2f4f7;--code:#11151c}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Noto Sans",sans-serif}
main{max-width:1400px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 12px}
.muted{color:var(--muted)}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
pre{background:var(--code);border:1px solid var(--line);border-radius:6px;padding:10px;margin:8px 0;
white-space:pre-wrap;overflow-wrap:anywhere;max-height:480px;overflow:auto}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;margin:16px 0;
box-shadow:0 1px 2px rgba(16,24,40,.05)}
.head{display:flex;gap:16px;align-items:center;flex-wrap:wrap}
.pill{display:inline-block;border-radius:999px;padding:1px 10px;font-weight:600;font-size:12px;color:#fff;
background:var(--muted);white-space:nowrap}
.pill.pass{background:var(--pass)}.pill.fail{background:var(--fail)}.pill.error{background:var(--error)}
.pill.skip{background:var(--skip)}.pill.big{font-size:15px;padding:3px 14px}
.stats{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.stat{border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.stat b{display:block;font-size:20px}.stat span{color:var(--muted);font-size:12px}
.stat.fail b{color:var(--fail)}.stat.error b{color:var(--error)}.stat.pass b{color:var(--pass)}
.tl{margin-top:6px}
.tl-row{display:flex;align-items:stretch;border-bottom:1px solid var(--line)}
.tl-label{flex:0 0 150px;padding:4px 8px 4px 0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tl-label small{display:block;color:var(--muted);font-size:11px}
.tl-track{position:relative;flex:1;min-height:34px;
background-image:linear-gradient(to right,var(--grid) 1px,transparent 1px);background-repeat:repeat-x}
.tl-axis .tl-track{min-height:22px;background:none}
.tick{position:absolute;top:3px;font-size:11px;color:var(--muted);transform:translateX(-50%);white-space:nowrap}
.seg{position:absolute;top:4px;bottom:4px;border-radius:3px;min-width:1px;overflow:hidden;white-space:nowrap;
font-size:11px;line-height:26px;padding-left:4px;color:#fff}
.seg.proc{background:var(--proc);top:2px;bottom:2px;color:var(--muted)}
.seg.prov{background:var(--prov)}.seg.prov.failed{background:repeating-linear-gradient(45deg,var(--prov) 0 6px,var(--fail) 6px 12px)}
.seg.down{background:var(--down)}.seg.plan{background:var(--plan)}.seg.merge{background:var(--plan)}
.seg.exec{background:var(--pass)}
.seg.t{top:9px;bottom:9px;border-radius:1px;padding:0;border-right:1px solid var(--card)}
.seg.t.pass{background:var(--pass)}.seg.t.fail{background:var(--fail);top:6px;bottom:6px}
.seg.t.error{background:var(--error);top:6px;bottom:6px}.seg.t.skip{background:var(--skip)}
.seg.t.unfinished{background:repeating-linear-gradient(45deg,var(--fail) 0 4px,transparent 4px 8px);
top:6px;bottom:6px;border:1px solid var(--fail)}
.mark{position:absolute;top:0;bottom:0;border-left:2px dashed var(--ideal);opacity:.55}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin-top:10px;color:var(--muted);font-size:12px}
.legend i{display:inline-block;width:14px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;white-space:nowrap}
td.id{overflow-wrap:anywhere;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
.meter{height:8px;background:var(--grid);border-radius:4px;min-width:80px}
.meter>div{height:8px;border-radius:4px;background:var(--prov)}
details{border:1px solid var(--line);border-radius:8px;margin:8px 0;padding:0 12px}
details[open]{padding-bottom:8px}
summary{cursor:pointer;padding:8px 0;overflow-wrap:anywhere}
.failure summary .nm{font-weight:600;font-family:ui-monospace,Menlo,Consolas,monospace}
.failure .cls{display:block;color:var(--muted);font-size:12px;margin-left:4px;overflow-wrap:anywhere}
.msg{font-weight:600;overflow-wrap:anywhere;white-space:pre-wrap}
.note{border-left:4px solid var(--error);padding:6px 10px;background:var(--code);margin:6px 0}
footer{color:var(--muted);font-size:12px;text-align:center;margin:24px 0}
a{color:var(--prov)}
)css";

// How well the groups were balanced: the makespan against the groups' work spread evenly.
struct Balance {
  std::size_t groups_run = 0;
  double first_start = 0;  // seconds since the epoch
  double last_end = 0;
  double work = 0;       // the groups' seconds from start to end, summed
  double test_time = 0;  // the tests' own seconds, summed
  double longest = 0;    // the longest test: no split can end before it
  double makespan() const { return last_end - first_start; }
  double ideal() const {
    return std::max(work / static_cast<double>(std::max<std::size_t>(groups_run, 1)), longest);
  }
};

Balance measure(const RunRecord& run) {
  Balance b;
  for (const GroupRecord& g : run.groups) {
    for (const TimedTest& test : g.tests) {
      b.test_time += test.seconds;
      b.longest = std::max(b.longest, test.seconds);
    }
    if (!g.started || !g.ended) continue;
    b.first_start = b.groups_run == 0 ? *g.started : std::min(b.first_start, *g.started);
    b.last_end = std::max(b.last_end, *g.ended);
    b.work += *g.ended - *g.started;
    ++b.groups_run;
  }
  return b;
}

class Page {
 public:
  explicit Page(const RunRecord& run) : run_(run), balance_(measure(run)) {
    std::size_t planned = 0;
    for (const GroupRecord& g : run.groups) planned += g.planned_tests;
    // Without a single past duration the plan counted one second a test: no estimate to show.
    estimates_known_ = !run.estimated_tests || *run.estimated_tests < planned;
  }
  std::string render(const std::string& generated_by);

 private:
  void header();
  void summary();
  void timeline();
  void timeline_group(const GroupRecord& group);
  void groups();
  void failures();
  void slowest();
  void segment(double from, double to, std::string_view classes, const std::string& title,
               const std::string& label = "");
  double position(double time) const { return (time - origin_) / span_ * 100; }

  const RunRecord& run_;
  Balance balance_;
  bool estimates_known_ = true;
  std::string out_;
  // The timeline's scale: its start (seconds since the epoch), its length, its grid step as a share.
  double origin_ = 0;
  double span_ = 1;
  std::string grid_;
  double ideal_end_ = 0;  // where every group would end if the work were spread evenly
};

void Page::segment(double from, double to, std::string_view classes, const std::string& title,
                   const std::string& label) {
  if (to < from) to = from;
  out_ += fmt::format(R"(<div class="seg {}" style="left:{};width:{}" title="{}">{}</div>)", classes,
                      percent(position(from)), percent(position(to) - position(from)), html_escape(title),
                      html_escape(label));
}

void Page::header() {
  std::string state = run_.exit_code == 0 ? "pass" : run_.exit_code == 1 ? "fail" : "error";
  out_ += "<section class=\"card\"><div class=\"head\">";
  out_ += fmt::format(
      "<div><h1>testfleet run {}</h1><div class=\"muted\">{} &middot; <span class=\"mono\">{}"
      "</span> &middot; {}{} groups &middot; {} split</div></div>",
      html_escape(run_.run_id), run_.run_started > 0 ? utc_time(run_.run_started) : "?",
      html_escape(run_.cwd), run_.shard.empty() ? "" : "shard " + html_escape(run_.shard) + " &middot; ",
      run_.groups.size(), html_escape(run_.algorithm));
  out_ += fmt::format("<div style=\"margin-left:auto\"><span class=\"pill big {}\">{}</span></div></div>",
                      state, html_escape(verdict(run_.exit_code)));
  for (const std::string& note : run_.notes) out_ += "<div class=\"note\">" + html_escape(note) + "</div>";
  out_ += "</section>\n";
}

void Page::summary() {
  const reports::Totals& t = run_.totals;
  std::size_t bad = t.failures + t.errors + t.skipped;
  std::size_t passed = t.tests > bad ? t.tests - bad : 0;
  auto stat = [&](std::string_view classes, const std::string& value, std::string_view label,
                  const std::string& title = "") {
    out_ += fmt::format("<div class=\"stat {}\" title=\"{}\"><b>{}</b><span>{}</span></div>", classes,
                        html_escape(title), html_escape(value), label);
  };
  out_ += "<section class=\"card\"><h2>Summary</h2><div class=\"stats\">";
  stat("", std::to_string(t.tests), "tests");
  stat("pass", std::to_string(passed), "passed");
  stat(t.failures > 0 ? "fail" : "", std::to_string(t.failures), "failed");
  stat(t.errors > 0 ? "error" : "", std::to_string(t.errors), "errors");
  stat("", std::to_string(t.skipped), "skipped");
  if (run_.not_reported > 0) {
    stat("error", std::to_string(run_.not_reported), "not reported",
         "planned tests no group reported: counted as errors in the merged JUnit");
  }
  stat("", seconds_text(run_.wall_seconds), "wall time", "from the start of testfleet to the merged report");
  const Balance& b = balance_;
  if (b.groups_run > 0) {
    double makespan = b.makespan();
    double ideal = b.ideal();
    stat("", seconds_text(makespan), "makespan", "from the first group's start to the last group's end");
    stat("", seconds_text(ideal), "ideal",
         fmt::format("the groups' {} of work spread evenly over {} groups (never less than the longest test)",
                     seconds_text(b.work), b.groups_run));
    stat(makespan > 0 && ideal / makespan < 0.8 ? "error" : "",
         fmt::format("{:.0f}%", makespan > 0 ? std::min(100.0, ideal / makespan * 100) : 100.0), "balance",
         "ideal / makespan: 100% when every group ends at the same time");
    stat("", seconds_text(b.test_time), "time in tests",
         fmt::format("the rest of the groups' {} went to start-up, collection and fixtures",
                     seconds_text(b.work)));
  }
  if (run_.lower_bound_seconds > 0 && estimates_known_) {
    stat("", seconds_text(run_.lower_bound_seconds), "planned lower bound",
         "the best makespan the plan expected from past durations");
  }
  out_ += "</div>";
  if (!run_.merged_junit.empty()) {
    out_ += fmt::format("<p class=\"muted\">Merged JUnit: <span class=\"mono\">{}</span></p>",
                        html_escape(run_.merged_junit));
  }
  out_ += "</section>\n";
}

void Page::timeline_group(const GroupRecord& g) {
  std::string took = g.started && g.ended ? seconds_text(*g.ended - *g.started) : "not run";
  std::string status = g.provision_error ? "environment failed" : g.status.empty() ? "not run" : g.status;
  if (g.timed_out) status += ", timed out";
  out_ += fmt::format(
      "<div class=\"tl-row\"><div class=\"tl-label\"><a href=\"#group-{0}\">group {0}</a>{1}"
      "<small>{2} &middot; {3}</small></div><div class=\"tl-track\" style=\"background-size:{4} 100%\">",
      g.index,
      g.tests_approximate ? " <span title=\"placed by JUnit times: no progress stream\">&asymp;</span>" : "",
      html_escape(status), html_escape(took), grid_);
  if (g.provision_seconds && run_.provision_started > 0) {
    double end = run_.provision_started + *g.provision_seconds;
    std::string title = g.provision_error ? "provisioning failed after " +
                                                seconds_text(*g.provision_seconds) + ": " + *g.provision_error
                                          : "provisioning: " + seconds_text(*g.provision_seconds);
    segment(run_.provision_started, end, g.provision_error ? "prov failed" : "prov", title);
  }
  if (g.started && g.ended) {
    segment(*g.started, *g.ended, "proc",
            fmt::format("group {}: {} in {} ({} tests planned)", g.index, status, took, g.planned_tests),
            g.tests.empty() ? status : "");
  }
  // Runs of tiny passing (or skipped) tests become one bar; anything else keeps its own.
  std::size_t i = 0;
  while (i < g.tests.size()) {
    const TimedTest& first = g.tests[i];
    bool mergeable = !first.unfinished && !is_failure(first.outcome);
    std::size_t j = i + 1;
    if (mergeable) {
      while (j < g.tests.size() &&
             position(g.tests[j - 1].ended) - position(first.started) < kMinBarPercent &&
             !g.tests[j].unfinished && g.tests[j].outcome == first.outcome) {
        ++j;
      }
    }
    const TimedTest& last = g.tests[j - 1];
    std::string title;
    if (j - i == 1) {
      title = fmt::format("{}\n{}{}, {} at +{}", first.id, outcome_word(first.outcome),
                          first.unfinished ? " (unfinished)" : "", seconds_text(first.seconds),
                          seconds_text(first.started - origin_));
      if (!first.message.empty() && is_failure(first.outcome)) title += "\n" + first.message.substr(0, 600);
    } else {
      double seconds = 0;
      for (std::size_t k = i; k < j; ++k) seconds += g.tests[k].seconds;
      title = fmt::format("{} tests {}, {} in all, from +{}\n{}\n...\n{}", j - i, outcome_word(first.outcome),
                          seconds_text(seconds), seconds_text(first.started - origin_), first.id, last.id);
    }
    segment(first.started, std::max(last.ended, first.started),
            std::string("t ") + std::string(outcome_class(first)), title);
    i = j;
  }
  if (run_.teardown_started > 0 && run_.teardown_ended >= run_.teardown_started) {
    double seconds = g.teardown_seconds.value_or(run_.teardown_ended - run_.teardown_started);
    segment(run_.teardown_started, run_.teardown_started + seconds, "down",
            "teardown of its environment: " + seconds_text(seconds));
  }
  if (ideal_end_ > 0) {
    out_ += fmt::format("<div class=\"mark\" style=\"left:{}\" title=\"ideal end: {}\"></div>",
                        percent(position(ideal_end_)), html_escape(seconds_text(ideal_end_ - origin_)));
  }
  out_ += "</div></div>\n";
}

void Page::timeline() {
  // The scale: from the run's start to the last thing that happened.
  origin_ = run_.run_started;
  double end = std::max({run_.teardown_ended, run_.run_started + run_.wall_seconds, run_.teardown_started});
  for (const GroupRecord& g : run_.groups) {
    if (g.started && g.ended) {
      origin_ = origin_ > 0 ? std::min(origin_, *g.started) : *g.started;
      end = std::max(end, *g.ended);
    }
    for (const TimedTest& test : g.tests) end = std::max(end, test.ended);
  }
  if (origin_ <= 0) origin_ = end;
  span_ = end - origin_ > 0 ? end - origin_ : 1;
  double step = tick_step(span_);
  grid_ = fmt::format("{:.4f}%", step / span_ * 100);
  if (balance_.groups_run > 0) ideal_end_ = balance_.first_start + balance_.ideal();

  out_ += "<section class=\"card\"><h2>Timeline</h2><div class=\"tl\">";
  out_ += "<div class=\"tl-row tl-axis\"><div class=\"tl-label\"></div><div class=\"tl-track\">";
  for (int k = 0; static_cast<double>(k) * step <= span_ * 1.0001; ++k) {
    double at = static_cast<double>(k) * step;
    out_ += fmt::format("<span class=\"tick\" style=\"left:{}\">{}</span>", percent(at / span_ * 100),
                        tick_label(at, step));
  }
  out_ += "</div></div>\n";

  // The run's phases, as testfleet went through them.
  out_ += fmt::format(
      "<div class=\"tl-row\"><div class=\"tl-label\">testfleet<small>phases</small></div>"
      "<div class=\"tl-track\" style=\"background-size:{} 100%\">",
      grid_);
  double run_end = run_.run_started + run_.wall_seconds;
  struct Phase {
    double from;
    double to;
    const char* classes;
    const char* name;
  };
  double prepared = run_.run_started + run_.prepare_seconds;
  const Phase phases[] = {
      {run_.run_started, prepared, "prov", "prepare"},
      {prepared, run_.provision_started, "plan", "collect and plan"},
      {run_.provision_started, run_.execute_started, "prov", "provision"},
      {run_.execute_started, run_.teardown_started, "exec", "run the groups"},
      {run_.teardown_started, run_.teardown_ended, "down", "teardown"},
      {run_.teardown_ended, run_end, "merge", "merge and publish"},
  };
  for (const Phase& phase : phases) {
    if (phase.from <= 0 || phase.to <= phase.from) continue;
    std::string title = fmt::format("{}: {}", phase.name, seconds_text(phase.to - phase.from));
    segment(phase.from, phase.to, phase.classes, title, title);
  }
  out_ += "</div></div>\n";
  for (const GroupRecord& g : run_.groups) timeline_group(g);
  out_ += "</div>";
  out_ +=
      R"html(<div class="legend"><span><i style="background:var(--prov)"></i>provisioning</span>)html"
      R"html(<span><i style="background:var(--proc)"></i>group process</span>)html"
      R"html(<span><i style="background:var(--pass)"></i>passed</span>)html"
      R"html(<span><i style="background:var(--fail)"></i>failed</span>)html"
      R"html(<span><i style="background:var(--error)"></i>error</span>)html"
      R"html(<span><i style="background:var(--skip)"></i>skipped</span>)html"
      R"html(<span><i style="background:repeating-linear-gradient(45deg,var(--fail) 0 3px,transparent 3px 6px)">)html"
      R"html(</i>running when the group ended</span>)html"
      R"html(<span><i style="background:var(--down)"></i>teardown</span>)html"
      R"html(<span><i style="border-left:2px dashed var(--ideal);border-radius:0;width:2px"></i>ideal end</span>)html"
      R"html(<span>hover a bar for its test; &asymp;: placed by JUnit times</span></div>)html";
  out_ += "</section>\n";
}

void Page::groups() {
  out_ +=
      "<section class=\"card\"><h2>Groups</h2><table><thead><tr><th>group</th><th>status</th>"
      "<th class=\"num\">tests</th><th class=\"num\">estimate</th><th class=\"num\">took</th>"
      "<th class=\"num\">provisioning</th><th class=\"num\">in tests</th><th>output</th></tr></thead><tbody>";
  for (const GroupRecord& g : run_.groups) {
    std::size_t failed = 0;
    double in_tests = 0;
    for (const TimedTest& test : g.tests) {
      if (is_failure(test.outcome) || test.unfinished) ++failed;
      in_tests += test.seconds;
    }
    std::string status = g.provision_error ? "environment failed" : g.status.empty() ? "not run" : g.status;
    if (g.timed_out) status += ", timed out";
    if (g.runners.size() > 1 && !g.runners.front().starts_with("batch"))
      status += fmt::format(", {} runners", g.runners.size());
    std::string log_link = html_escape(g.log.filename().string());
    if (std::optional<std::string> link = relative_link(run_.dir, g.log)) {
      log_link = fmt::format("<a href=\"{}\">{}</a>", html_escape(url_path(*link)), html_escape(*link));
    }
    out_ += fmt::format(
        "<tr><td><a href=\"#group-{0}\">group {0}</a></td><td><span class=\"pill {1}\">{2}</span></td>"
        "<td class=\"num\">{3}{4}</td><td class=\"num\">{5}</td><td class=\"num\">{6}</td><td "
        "class=\"num\">{7}</td>"
        "<td class=\"num\">{8}</td><td class=\"mono\">{9}</td></tr>",
        g.index, group_passed(g) ? "pass" : "fail", html_escape(status), g.planned_tests,
        failed > 0 ? fmt::format(" <span class=\"muted\">({} failed)</span>", failed) : "",
        estimates_known_ && g.estimate_seconds > 0 ? seconds_text(g.estimate_seconds) : "&ndash;",
        g.started && g.ended ? seconds_text(*g.ended - *g.started) : "&ndash;",
        g.provision_seconds ? seconds_text(*g.provision_seconds) : "&ndash;",
        g.tests.empty() ? "&ndash;" : seconds_text(in_tests), log_link);
  }
  out_ += "</tbody></table>\n";
  if (!run_.moves.empty()) {
    out_ += "<div class=\"muted\">tests moved between workers (dynamic schedule, lost workers)</div><ul>";
    for (const std::string& move : run_.moves) out_ += "<li>" + html_escape(move) + "</li>";
    out_ += "</ul>\n";
  }
  for (const GroupRecord& g : run_.groups) {
    out_ += fmt::format(
        "<details id=\"group-{0}\"><summary><b>group {0}</b> &middot; command and output "
        "<span class=\"muted\">({1} bytes of output)</span></summary>",
        g.index, g.output_bytes);
    out_ += "<div class=\"muted\">command</div>";
    out_ += "<pre class=\"cmd\">" +
            html_escape(g.command.empty() ? "(never started)" : util::shell_join(g.command)) + "</pre>";
    if (g.provision_error) {
      out_ +=
          "<div class=\"note\">its environment could not be provisioned: " + html_escape(*g.provision_error) +
          "</div>";
    }
    if (g.lost) out_ += "<div class=\"note\">left the run: " + html_escape(*g.lost) + "</div>";
    if (g.runners.size() > 1) {
      out_ += "<div class=\"muted\">runners</div><ul>";
      for (const std::string& runner : g.runners) out_ += "<li>" + html_escape(runner) + "</li>";
      out_ += "</ul>";
    }
    out_ += fmt::format(
        "<div class=\"muted\">output: <span class=\"mono\">{}</span>{}</div>", html_escape(g.log.string()),
        g.output.size() < g.output_bytes ? fmt::format(" (its last {} bytes below)", g.output.size()) : "");
    out_ +=
        "<pre class=\"log\">" + html_escape(g.output.empty() ? "(empty)" : g.output) + "</pre></details>\n";
  }
  out_ += "</section>\n";
}

void Page::failures() {
  if (run_.failures.empty()) return;
  out_ += fmt::format("<section class=\"card\" id=\"failures\"><h2>Failures ({})</h2>", run_.failures.size());
  for (std::size_t i = 0; i < run_.failures.size(); ++i) {
    const Failure& failure = run_.failures[i];
    const reports::TestCaseRecord& r = failure.record;
    bool error = r.outcome == reports::Outcome::kError;
    std::string where =
        failure.group > 0 ? fmt::format("<a href=\"#group-{0}\">group {0}</a>", failure.group) : "";
    std::string heading = fmt::format(
        "<span class=\"pill {}\">{}</span> <span class=\"nm\">{}</span> <span class=\"muted\">{}</span>"
        "<span class=\"cls\">{}</span>",
        error ? "error" : "fail", error ? "error" : "failed", html_escape(r.name), where,
        html_escape(r.classname));
    if (i >= kDetailedFailures) {
      out_ += "<div class=\"failure\" style=\"padding:4px 0\">" + heading + "</div>";
      continue;
    }
    out_ += fmt::format("<details class=\"failure\"{}><summary>{}</summary>",
                        i < kOpenFailures ? " open" : "", heading);
    if (!r.message.empty()) out_ += "<div class=\"msg\">" + html_escape(r.message) + "</div>";
    if (!r.text.empty() && r.text != r.message) {
      out_ += "<pre>" + html_escape(tail_bytes(r.text, kMaxFailureBytes)) + "</pre>";
    }
    out_ += "</details>\n";
  }
  if (run_.failures.size() > kDetailedFailures) {
    out_ += fmt::format(
        "<p class=\"muted\">Only the first {} failures are shown with their output; the merged "
        "JUnit has every one.</p>",
        kDetailedFailures);
  }
  out_ += "</section>\n";
}

void Page::slowest() {
  std::vector<std::pair<const TimedTest*, int>> tests;
  for (const GroupRecord& g : run_.groups) {
    for (const TimedTest& test : g.tests) tests.emplace_back(&test, g.index);
  }
  if (tests.empty()) return;
  std::size_t count = std::min(kSlowestTests, tests.size());
  std::partial_sort(tests.begin(), tests.begin() + static_cast<std::ptrdiff_t>(count), tests.end(),
                    [](const auto& a, const auto& b) { return a.first->seconds > b.first->seconds; });
  double slowest = std::max(tests.front().first->seconds, 1e-9);
  out_ += fmt::format(
      "<section class=\"card\"><h2>Slowest tests</h2><table><thead><tr><th>test</th><th>group</th>"
      "<th>outcome</th><th class=\"num\">time</th><th style=\"width:22%\"></th></tr></thead><tbody>");
  for (std::size_t i = 0; i < count; ++i) {
    const TimedTest& test = *tests[i].first;
    out_ += fmt::format(
        "<tr><td class=\"id\">{0}</td><td><a href=\"#group-{1}\">group&nbsp;{1}</a></td><td><span "
        "class=\"pill {2}\">"
        "{3}</span></td><td class=\"num\">{4}</td><td><div class=\"meter\"><div "
        "style=\"width:{5}\"></div></div>"
        "</td></tr>",
        html_escape(test.id), tests[i].second, outcome_class(test),
        test.unfinished ? "unfinished" : outcome_word(test.outcome), seconds_text(test.seconds),
        percent(test.seconds / slowest * 100));
  }
  out_ += "</tbody></table></section>\n";
}

std::string Page::render(const std::string& generated_by) {
  std::string title = fmt::format("testfleet {}: {}", run_.run_id, verdict(run_.exit_code));
  out_ += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  // Nothing may be fetched: the page is read from disk or from a CI artifact store, often offline.
  out_ +=
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
      "img-src data:\">\n";
  out_ += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out_ += "<title>" + html_escape(title) + "</title>\n<style>" + kStyle + "</style></head>\n<body><main>\n";
  header();
  summary();
  timeline();
  failures();
  groups();
  slowest();
  out_ += fmt::format("<footer>Made by {} from {} on {}.</footer>\n", html_escape(generated_by),
                      html_escape(run_.dir.string()), utc_time(static_cast<double>(std::time(nullptr))));
  out_ += "</main></body></html>\n";
  return std::move(out_);
}

}  // namespace

std::string html_escape(std::string_view input) {
  std::string out;
  out.reserve(input.size() + input.size() / 8);
  for (std::size_t i = 0; i < input.size();) {
    auto byte = static_cast<unsigned char>(input[i]);
    if (byte == 0x1b) {
      // Terminal escape sequences: CSI (ESC [ ... final byte), OSC (ESC ] ... BEL or ESC \), or ESC + one.
      std::size_t end = i + 1;
      if (end < input.size() && input[end] == '[') {
        ++end;
        while (end < input.size() && (static_cast<unsigned char>(input[end]) < 0x40 || input[end] > 0x7E))
          ++end;
        ++end;
      } else if (end < input.size() && input[end] == ']') {
        while (end < input.size() && input[end] != '\a' &&
               !(input[end] == '\x1b' && end + 1 < input.size() && input[end + 1] == '\\')) {
          ++end;
        }
        end += end < input.size() && input[end] == '\x1b' ? 2 : 1;
      } else {
        ++end;
      }
      i = std::min(end, input.size());
      continue;
    }
    if (byte < 0x80) {
      switch (byte) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&#39;";
          break;
        case '\t':
        case '\n':
          out += static_cast<char>(byte);
          break;
        case '\r':
          // A CRLF ends a line once; a lone CR (a progress bar redrawing itself) starts a new one.
          if (i + 1 >= input.size() || input[i + 1] != '\n') out += '\n';
          break;
        default:
          if (byte < 0x20) {
            out += fmt::format("&#x{:X};", 0x2400 + byte);  // the control's visible symbol
          } else if (byte == 0x7F) {
            out += "&#x2421;";
          } else {
            out += static_cast<char>(byte);
          }
      }
      ++i;
      continue;
    }
    // A multi-byte character, checked: overlong forms, surrogates and values past U+10FFFF are invalid.
    std::size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    if (byte >= 0xC2 && byte <= 0xDF) {
      length = 2;
    } else if (byte >= 0xE0 && byte <= 0xEF) {
      length = 3;
      if (byte == 0xE0) low = 0xA0;
      if (byte == 0xED) high = 0x9F;
    } else if (byte >= 0xF0 && byte <= 0xF4) {
      length = 4;
      if (byte == 0xF0) low = 0x90;
      if (byte == 0xF4) high = 0x8F;
    }
    bool valid = length > 0 && i + length <= input.size();
    for (std::size_t k = 1; valid && k < length; ++k) {
      auto next = static_cast<unsigned char>(input[i + k]);
      valid = k == 1 ? next >= low && next <= high : (next & 0xC0) == 0x80;
    }
    if (!valid) {
      out += "\uFFFD";
      ++i;
      continue;
    }
    if (length == 2 && byte == 0xC2 && static_cast<unsigned char>(input[i + 1]) < 0xA0) {
      out += "\uFFFD";  // a C1 control character
    } else {
      out.append(input.substr(i, length));
    }
    i += length;
  }
  return out;
}

RunRecord load_run(const fs::path& reports_dir) {
  RunRecord run;
  run.dir = reports_dir;
  fs::path record_path = reports_dir / "run.json";
  if (!fs::exists(record_path)) {
    throw UsageError(
        fmt::format("{}: no run.json, so not a testfleet reports directory (testfleet run writes it "
                    "when a run ends)",
                    reports_dir.string()));
  }
  json record;
  try {
    record = json::parse(util::read_file(record_path));
  } catch (const json::exception& e) {
    throw UsageError(fmt::format("{}: {}", record_path.string(), e.what()));
  }
  if (!record.is_object()) throw UsageError(fmt::format("{}: not a JSON object", record_path.string()));

  run.run_id = text(record, "run_id");
  run.cwd = text(record, "cwd");
  run.algorithm = text(record, "algorithm");
  if (auto shard = record.find("shard"); shard != record.end() && shard->is_object()) {
    run.shard = fmt::format("{}/{}", static_cast<long long>(number(*shard, "index")),
                            static_cast<long long>(number(*shard, "count")));
  }
  run.exit_code = static_cast<int>(number(record, "exit_code"));
  run.wall_seconds = number(record, "wall_seconds");
  run.lower_bound_seconds = number(record, "lower_bound_seconds");
  run.merged_junit = text(record, "merged_junit");
  if (record.contains("estimated_tests"))
    run.estimated_tests = static_cast<std::size_t>(number(record, "estimated_tests"));
  if (auto times = record.find("times"); times != record.end() && times->is_object()) {
    run.run_started = number(*times, "run_started");
    run.prepare_seconds = number(*times, "prepare_seconds");
    run.provision_started = number(*times, "provision_started");
    run.execute_started = number(*times, "execute_started");
    run.teardown_started = number(*times, "teardown_started");
    run.teardown_ended = number(*times, "teardown_ended");
  }
  if (auto totals = record.find("totals"); totals != record.end() && totals->is_object()) {
    run.totals.tests = static_cast<std::size_t>(number(*totals, "tests"));
    run.totals.failures = static_cast<std::size_t>(number(*totals, "failures"));
    run.totals.errors = static_cast<std::size_t>(number(*totals, "errors"));
    run.totals.skipped = static_cast<std::size_t>(number(*totals, "skipped"));
    run.not_reported = static_cast<std::size_t>(number(*totals, "not_reported"));
  }

  if (auto steals = record.find("steals"); steals != record.end() && steals->is_array()) {
    for (const json& steal : *steals) {
      if (!steal.is_object()) continue;
      auto from = steal.find("from");
      std::string source = from != steal.end() && from->is_number()
                               ? fmt::format("worker {}", from->get<long long>())
                               : std::string("workers that left the run");
      run.moves.push_back(fmt::format(
          "{} tests (~{}) from {} to worker {} at {}", static_cast<long long>(number(steal, "tests")),
          util::format_duration(number(steal, "seconds")), source,
          static_cast<long long>(number(steal, "to")),
          util::format_duration(std::max(0.0, number(steal, "at") - run.execute_started))));
    }
  }

  // Which group reported a testcase, by its JUnit key, to say where each failure ran.
  std::map<std::pair<std::string, std::string>, int> group_of;
  std::vector<std::vector<reports::TestCaseRecord>> group_cases;
  auto groups = record.find("groups");
  if (groups != record.end() && groups->is_array()) {
    for (const json& entry : *groups) {
      if (!entry.is_object()) continue;
      GroupRecord g;
      g.index = static_cast<int>(number(entry, "group"));
      g.planned_tests = static_cast<std::size_t>(number(entry, "tests"));
      g.estimate_seconds = number(entry, "estimate_seconds");
      if (auto command = entry.find("command"); command != entry.end() && command->is_array()) {
        for (const json& word : *command) {
          if (word.is_string()) g.command.push_back(word.get<std::string>());
        }
      }
      if (entry.contains("provision_seconds")) g.provision_seconds = number(entry, "provision_seconds");
      if (entry.contains("provision_error")) g.provision_error = text(entry, "provision_error");
      if (entry.contains("teardown_seconds")) g.teardown_seconds = number(entry, "teardown_seconds");
      if (entry.contains("started")) g.started = number(entry, "started");
      if (entry.contains("ended")) g.ended = number(entry, "ended");
      g.status = text(entry, "status");
      g.timed_out = entry.value("timed_out", false);
      if (entry.contains("lost")) g.lost = text(entry, "lost");
      if (auto runs = entry.find("runs"); runs != entry.end() && runs->is_array()) {
        for (const json& r : *runs) {
          if (!r.is_object()) continue;
          g.runners.push_back(fmt::format(
              "{} {}: {} tests, {}{}", r.value("batch", false) ? "batch" : "runner",
              static_cast<long long>(number(r, "number")), static_cast<long long>(number(r, "tests")),
              text(r, "status"), r.value("died", false) ? " (died)" : ""));
        }
      }

      // The group's own directory first: the reports directory may have moved since the run (an artifact).
      fs::path dir = reports_dir / fmt::format("group-{}", g.index);
      g.log = dir / "output.log";
      if (!fs::exists(g.log) && !text(entry, "log").empty()) g.log = text(entry, "log");
      if (fs::exists(g.log)) {
        try {
          g.output = read_tail(g.log, kMaxLogBytes, g.output_bytes);
        } catch (const Error& e) {
          run.notes.push_back(e.what());
        }
      }

      std::vector<reports::TestCaseRecord> cases;
      fs::path junit = dir / "junit.xml";
      if (fs::exists(junit)) {
        try {
          cases = reports::read_testcases(junit);
        } catch (const Error& e) {
          run.notes.push_back(fmt::format("group {}'s JUnit is unreadable: {}", g.index, e.what()));
        }
      }
      for (const reports::TestCaseRecord& c : cases)
        group_of.emplace(std::make_pair(c.classname, c.name), g.index);
      if (!read_progress(dir / "progress.jsonl", g) && !cases.empty()) {
        place_by_junit(cases, g.started.value_or(run.execute_started), g);
      }
      group_cases.push_back(std::move(cases));
      run.groups.push_back(std::move(g));
    }
  }

  // Failures as the merged JUnit has them (with the tests no group reported); without it, as each group's
  // JUnit or, for a group that wrote none, its progress stream has them.
  std::vector<reports::TestCaseRecord> merged;
  bool have_merged = false;
  if (!run.merged_junit.empty()) {
    fs::path path = run.merged_junit;
    // Moved with the directory (a CI artifact): under its own name, or as the copy every run keeps there.
    for (const fs::path& moved : {reports_dir / path.filename(), reports_dir / "junit.xml"}) {
      if (!fs::exists(path) && fs::exists(moved)) path = moved;
    }
    if (fs::exists(path)) {
      try {
        merged = reports::read_testcases(path);
        have_merged = true;
      } catch (const Error& e) {
        run.notes.push_back(fmt::format("the merged JUnit is unreadable: {}", e.what()));
      }
    } else {
      run.notes.push_back(fmt::format(
          "the merged JUnit {} is gone: failures are taken from the groups' reports", run.merged_junit));
    }
  }
  if (have_merged) {
    for (reports::TestCaseRecord& r : merged) {
      if (!is_failure(r.outcome)) continue;
      auto it = group_of.find({r.classname, r.name});
      run.failures.push_back({std::move(r), it != group_of.end() ? it->second : 0});
    }
  } else {
    for (std::size_t g = 0; g < run.groups.size(); ++g) {
      if (!group_cases[g].empty()) {
        for (reports::TestCaseRecord& r : group_cases[g]) {
          if (is_failure(r.outcome)) run.failures.push_back({std::move(r), run.groups[g].index});
        }
        continue;
      }
      for (const TimedTest& test : run.groups[g].tests) {
        if (!is_failure(test.outcome)) continue;
        reports::TestCaseRecord r;
        r.name = test.id;
        r.outcome = test.outcome;
        r.message = test.message;
        run.failures.push_back({std::move(r), run.groups[g].index});
      }
    }
  }
  return run;
}

std::string render_html_report(const RunRecord& run, const std::string& generated_by) {
  return Page(run).render(generated_by);
}

fs::path write_html_report(const fs::path& reports_dir, const std::string& generated_by) {
  fs::path out = reports_dir / "report.html";
  util::write_file_atomic(out, render_html_report(load_run(reports_dir), generated_by));
  return out;
}

}  // namespace testfleet::ui
