#include "ui/status_printer.hpp"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "util/strings.hpp"

namespace testfleet::ui {
namespace {

constexpr std::size_t kBarCells = 20;
constexpr const char* kReset = "\x1b[0m";

bool env_set(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0';
}

// The character at text[i] and its length in bytes; a stray byte counts as one character of its own.
std::pair<char32_t, std::size_t> decode(std::string_view text, std::size_t i) {
  auto byte = static_cast<unsigned char>(text[i]);
  std::size_t length = byte < 0x80             ? 1
                       : (byte & 0xE0) == 0xC0 ? 2
                       : (byte & 0xF0) == 0xE0 ? 3
                       : (byte & 0xF8) == 0xF0 ? 4
                                               : 1;
  if (i + length > text.size()) length = 1;
  char32_t code = length == 1 ? byte : byte & (0x7F >> length);
  for (std::size_t k = 1; k < length; ++k) {
    auto next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xC0) != 0x80) return {byte, 1};
    code = (code << 6) | (next & 0x3F);
  }
  return {code, length};
}

// East Asian Wide and Fullwidth ranges, and the emoji blocks terminals draw two columns wide.
bool wide(char32_t c) {
  return (c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0x303E) || (c >= 0x3041 && c <= 0x33FF) ||
         (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xA000 && c <= 0xA4CF) ||
         (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFE30 && c <= 0xFE4F) ||
         (c >= 0xFF00 && c <= 0xFF60) || (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1F64F) ||
         (c >= 0x1F900 && c <= 0x1F9FF) || (c >= 0x20000 && c <= 0x3FFFD);
}

// Bytes of the escape sequence starting at text[i] (ESC [ ... final byte, or ESC and one character).
std::size_t escape_length(std::string_view text, std::size_t i) {
  if (i + 1 >= text.size()) return 1;
  if (text[i + 1] != '[') return 2;
  std::size_t end = i + 2;
  while (end < text.size() && (static_cast<unsigned char>(text[end]) < 0x40 || text[end] > 0x7E)) ++end;
  return std::min(end + 1, text.size()) - i;
}

std::string bar(double fraction, std::size_t cells) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  auto filled = static_cast<std::size_t>(fraction * static_cast<double>(cells) + 0.5);
  return std::string(filled, '#') + std::string(cells - filled, '.');
}

// A merging group has run to its end: only its reports are still being read.
bool ended(const GroupView& group) {
  return group.state == GroupState::kPassed || group.state == GroupState::kFailed ||
         group.state == GroupState::kMerging;
}

// Which groups get a line when not all fit: those that are doing something or failed, then those
// still waiting, then those that passed (their line says nothing the total line does not).
int display_priority(const GroupView& group) {
  if (group.state == GroupState::kPassed) return 2;
  if (group.state == GroupState::kWaiting) return 1;
  return 0;
}

}  // namespace

std::string_view to_string(GroupState state) {
  switch (state) {
    case GroupState::kWaiting:
      return "waiting";
    case GroupState::kProvisioning:
      return "provisioning";
    case GroupState::kRunning:
      return "running";
    case GroupState::kMerging:
      return "merging";
    case GroupState::kPassed:
      return "done";
    case GroupState::kFailed:
      return "failed";
  }
  return "?";
}

std::size_t display_width(std::string_view text) {
  std::size_t columns = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == '\x1b') {
      i += escape_length(text, i);
      continue;
    }
    auto [code, length] = decode(text, i);
    columns += wide(code) ? 2 : 1;
    i += length;
  }
  return columns;
}

std::string elide(std::string_view text, std::size_t columns) {
  if (display_width(text) <= columns) return std::string(text);
  if (columns == 0) return "";
  // Room for the ellipsis, which takes one column.
  std::size_t budget = columns - 1;
  std::string out;
  std::size_t used = 0;
  bool escapes = false;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == '\x1b') {
      std::size_t length = escape_length(text, i);
      out.append(text.substr(i, length));
      escapes = true;
      i += length;
      continue;
    }
    auto [code, length] = decode(text, i);
    std::size_t cells = wide(code) ? 2 : 1;
    if (used + cells > budget) break;
    out.append(text.substr(i, length));
    used += cells;
    i += length;
  }
  out += "\u2026";
  if (escapes) out += kReset;
  return out;
}

std::optional<double> remaining_seconds(const std::vector<GroupView>& groups) {
  double remaining = 0;
  for (const GroupView& g : groups) {
    if (ended(g)) continue;
    if (g.state == GroupState::kRunning && g.counts_known && g.done > 0) {
      std::size_t to_do = g.total > g.done ? g.total - g.done : 0;
      remaining = std::max(remaining, g.elapsed * static_cast<double>(to_do) / static_cast<double>(g.done));
    } else if (g.estimate > 0) {
      remaining = std::max(remaining, std::max(0.0, g.estimate - g.elapsed));
    } else {
      return std::nullopt;
    }
  }
  return remaining;
}

StatusPrinter::StatusPrinter(Mode mode, std::FILE* out) : out_(out) {
  const char* term = std::getenv("TERM");
  bool tty = ::isatty(::fileno(out)) == 1 && term != nullptr && std::strcmp(term, "dumb") != 0;
  smart_ = mode == Mode::kSmart || (mode == Mode::kAuto && tty);
  color_ = !env_set("NO_COLOR") && (tty || env_set("CLICOLOR_FORCE"));
}

StatusPrinter::~StatusPrinter() {
  clear();
}

void StatusPrinter::write(const std::string& text) const {
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

StatusPrinter::Size StatusPrinter::size() const {
  Size result;
  struct winsize window {};
  if (::ioctl(::fileno(out_), TIOCGWINSZ, &window) == 0) {
    if (window.ws_col > 10) result.columns = window.ws_col;
    if (window.ws_row > 2) result.rows = window.ws_row;
  }
  return result;
}

std::string StatusPrinter::erase_sequence() {
  if (drawn_lines_ == 0) return "";
  std::size_t lines = drawn_lines_;
  drawn_lines_ = 0;
  // Up to the first status line, then clear to the end of the screen.
  return fmt::format("\r\x1b[{}A\x1b[J", lines);
}

void StatusPrinter::print_above(const std::string& text) {
  std::string screen = erase_sequence() + text;
  if (smart_ && !drawn_.empty()) {
    screen += drawn_;
    drawn_lines_ = static_cast<std::size_t>(std::count(drawn_.begin(), drawn_.end(), '\n'));
  }
  write(screen);
}

void StatusPrinter::line(const std::string& text) {
  print_above(text + "\n");
}

void StatusPrinter::block(const std::string& text) {
  print_above(text.empty() || text.back() == '\n' ? text : text + "\n");
}

void StatusPrinter::clear() {
  drawn_.clear();
  std::string erase = erase_sequence();
  if (!erase.empty()) write(erase);
}

std::vector<std::string> StatusPrinter::layout(const std::vector<GroupView>& groups, double elapsed,
                                               Size size) const {
  // One column short of the width: a line that fills the last column leaves some terminals' cursor
  // pending at its end, and the newline after it would then count twice.
  std::size_t columns = size.columns - 1;
  // The area and the cursor's line below it fit on the screen with a row of the output above to spare.
  std::size_t max_lines = size.rows > 3 ? size.rows - 2 : 1;

  std::size_t done = 0;
  std::size_t total = 0;
  std::size_t finished_groups = 0;
  bool merging = false;
  for (const GroupView& g : groups) {
    done += g.done;
    total += g.total;
    if (ended(g)) ++finished_groups;
    merging |= g.state == GroupState::kMerging;
  }

  std::vector<std::size_t> shown(groups.size());
  for (std::size_t i = 0; i < groups.size(); ++i) shown[i] = i;
  std::size_t group_lines = max_lines - 1;
  bool summarize = groups.size() > group_lines;
  if (summarize) {
    std::size_t keep = group_lines > 0 ? group_lines - 1 : 0;
    std::stable_sort(shown.begin(), shown.end(), [&](std::size_t a, std::size_t b) {
      return display_priority(groups[a]) < display_priority(groups[b]);
    });
    shown.resize(keep);
    std::sort(shown.begin(), shown.end());
  }

  std::vector<std::string> lines;
  for (std::size_t i : shown) {
    const GroupView& g = groups[i];
    double fraction = g.counts_known && g.total > 0
                          ? static_cast<double>(g.done) / static_cast<double>(g.total)
                      : g.estimate > 0 ? g.elapsed / g.estimate
                                       : 0.0;
    if (ended(g)) fraction = 1.0;
    std::string counts = g.counts_known || ended(g) ? fmt::format("{}/{} tests", g.done, g.total)
                                                    : fmt::format("{} tests", g.total);
    // Padded before colouring: escape codes would count in fmt's width.
    std::string state = fmt::format("{:<12}", to_string(g.state));
    if (g.state == GroupState::kFailed) state = red(state);
    if (g.state == GroupState::kPassed) state = green(state);
    std::string estimate = g.estimate > 0 ? " / ~" + util::format_duration(g.estimate) : "";
    lines.push_back(elide(
        fmt::format("  worker {:>2} [{}] {} {:>16}  {}{}{}", g.index, bar(fraction, kBarCells), state, counts,
                    util::format_duration(g.elapsed), estimate, g.detail.empty() ? "" : "  " + g.detail),
        columns));
  }
  if (summarize && group_lines > 0) {
    // busy, merging, waiting, done
    std::size_t hidden[4] = {0, 0, 0, 0};
    for (std::size_t i = 0; i < groups.size(); ++i) {
      if (std::binary_search(shown.begin(), shown.end(), i)) continue;
      GroupState state = groups[i].state;
      ++hidden[state == GroupState::kMerging   ? 1
               : state == GroupState::kWaiting ? 2
               : state == GroupState::kPassed  ? 3
                                               : 0];
    }
    std::vector<std::string> parts;
    if (hidden[0] > 0) parts.push_back(fmt::format("{} busy", hidden[0]));
    if (hidden[1] > 0) parts.push_back(fmt::format("{} merging", hidden[1]));
    if (hidden[2] > 0) parts.push_back(fmt::format("{} waiting", hidden[2]));
    if (hidden[3] > 0) parts.push_back(fmt::format("{} done", hidden[3]));
    lines.push_back(elide(
        fmt::format("  \u2026 {} more workers: {}", groups.size() - shown.size(), util::join(parts, ", ")),
        columns));
  }
  std::optional<double> remaining = remaining_seconds(groups);
  lines.push_back(
      elide(fmt::format("{} {}/{} workers done, {}/{} tests, {} elapsed{}", bold("testfleet:"),
                        finished_groups, groups.size(), done, total, util::format_duration(elapsed),
                        merging ? std::string(", merging their reports")
                        : finished_groups < groups.size() && remaining
                            ? ", ETA ~" + util::format_duration(*remaining)
                            : ""),
            columns));
  return lines;
}

void StatusPrinter::status(const std::vector<GroupView>& groups, double elapsed) {
  if (!smart_) return;
  std::vector<std::string> lines = layout(groups, elapsed, size());
  drawn_.clear();
  for (const std::string& text : lines) drawn_ += text + "\n";
  // Erase and draw in one write, so that the terminal never shows the area missing.
  std::string screen = erase_sequence() + drawn_;
  drawn_lines_ = lines.size();
  write(screen);
}

std::string StatusPrinter::red(const std::string& text) const {
  return color_ ? "\x1b[31m" + text + kReset : text;
}
std::string StatusPrinter::green(const std::string& text) const {
  return color_ ? "\x1b[32m" + text + kReset : text;
}
std::string StatusPrinter::bold(const std::string& text) const {
  return color_ ? "\x1b[1m" + text + kReset : text;
}

}  // namespace testfleet::ui
