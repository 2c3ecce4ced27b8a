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

bool env_set(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0';
}

// Cuts a line to `width` terminal columns, counting UTF-8 continuation bytes as no column.
std::string elide(const std::string& text, std::size_t width) {
  std::size_t columns = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto byte = static_cast<unsigned char>(text[i]);
    if ((byte & 0xC0) == 0x80) continue;
    if (++columns > width) {
      std::string cut = text.substr(0, i);
      if (width >= 3) {
        // Replace the last character with an ellipsis.
        std::size_t back = cut.size();
        while (back > 0 && (static_cast<unsigned char>(cut[back - 1]) & 0xC0) == 0x80) --back;
        if (back > 0) cut.resize(back - 1);
        cut += "\u2026";
      }
      return cut;
    }
  }
  return text;
}

std::string bar(double fraction, std::size_t cells) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  auto filled = static_cast<std::size_t>(fraction * static_cast<double>(cells) + 0.5);
  return std::string(filled, '#') + std::string(cells - filled, '.');
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

StatusPrinter::StatusPrinter(Mode mode, std::FILE* out) : out_(out) {
  const char* term = std::getenv("TERM");
  bool tty = ::isatty(::fileno(out)) == 1 && term != nullptr && std::strcmp(term, "dumb") != 0;
  smart_ = mode == Mode::kSmart || (mode == Mode::kAuto && tty);
  color_ = !env_set("NO_COLOR") && (tty || env_set("CLICOLOR_FORCE"));
}

StatusPrinter::~StatusPrinter() { clear(); }

void StatusPrinter::write(const std::string& text) const {
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

std::size_t StatusPrinter::width() const {
  struct winsize size {};
  if (::ioctl(::fileno(out_), TIOCGWINSZ, &size) == 0 && size.ws_col > 10) return size.ws_col;
  return 80;
}

void StatusPrinter::erase_status() {
  if (drawn_lines_ == 0) return;
  // Up to the first status line, then clear to the end of the screen.
  write(fmt::format("\r\x1b[{}A\x1b[J", drawn_lines_));
  drawn_lines_ = 0;
}

void StatusPrinter::line(const std::string& text) {
  erase_status();
  write(text + "\n");
}

void StatusPrinter::block(const std::string& text) {
  erase_status();
  write(text.empty() || text.back() == '\n' ? text : text + "\n");
}

void StatusPrinter::clear() { erase_status(); }

void StatusPrinter::status(const std::vector<GroupView>& groups, double elapsed) {
  if (!smart_) return;
  std::size_t columns = width() - 1;
  std::string screen;
  std::size_t done = 0;
  std::size_t total = 0;
  std::size_t finished_groups = 0;
  double estimate = 0;
  for (const GroupView& g : groups) {
    done += g.done;
    total += g.total;
    estimate = std::max(estimate, g.estimate);
    bool ended = g.state == GroupState::kPassed || g.state == GroupState::kFailed;
    if (ended) ++finished_groups;
    double fraction = g.counts_known && g.total > 0 ? static_cast<double>(g.done) / static_cast<double>(g.total)
                      : g.estimate > 0 ? g.elapsed / g.estimate
                                       : 0.0;
    if (ended) fraction = 1.0;
    std::string counts = g.counts_known || ended ? fmt::format("{}/{} tests", g.done, g.total)
                                                 : fmt::format("{} tests", g.total);
    std::string state(to_string(g.state));
    if (color_ && g.state == GroupState::kFailed) state = red(state);
    if (color_ && g.state == GroupState::kPassed) state = green(state);
    std::string text = fmt::format("  group {:>2} [{}] {:<12} {:>16}  {} / ~{}{}", g.index, bar(fraction, 20),
                                   state, counts, util::format_duration(g.elapsed),
                                   util::format_duration(g.estimate), g.detail.empty() ? "" : "  " + g.detail);
    // Colour codes take no columns: elide the plain width, generously.
    screen += (color_ ? text : elide(text, columns)) + "\n";
  }
  double eta = std::max(0.0, estimate - elapsed);
  std::string total_line =
      fmt::format("{} {}/{} groups done, {}/{} tests, {} elapsed{}", bold("testfleet:"), finished_groups,
                  groups.size(), done, total, util::format_duration(elapsed),
                  finished_groups < groups.size() ? ", ETA ~" + util::format_duration(eta) : "");
  screen += total_line + "\n";
  erase_status();
  write(screen);
  drawn_lines_ = groups.size() + 1;
}

std::string StatusPrinter::red(const std::string& text) const { return color_ ? "\x1b[31m" + text + "\x1b[0m" : text; }
std::string StatusPrinter::green(const std::string& text) const {
  return color_ ? "\x1b[32m" + text + "\x1b[0m" : text;
}
std::string StatusPrinter::bold(const std::string& text) const { return color_ ? "\x1b[1m" + text + "\x1b[0m" : text; }

}  // namespace testfleet::ui
