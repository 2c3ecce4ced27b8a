// The status printer writes to a real pseudo-terminal of a chosen size, and what the terminal would show is
// rebuilt from the bytes by a small emulator (cursor up, clear to end of screen, carriage return, line
// feed with the pty's own CR-LF translation, auto-wrap at the right margin, colours ignored).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "ui/status_printer.hpp"

namespace testfleet::ui {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A pseudo-terminal pair: the printer writes to the terminal side, the test reads the other.
class Pty {
 public:
  Pty(unsigned short columns, unsigned short rows) {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) std::abort();
    int terminal = ::open(::ptsname(master_), O_RDWR | O_NOCTTY);
    if (terminal < 0) std::abort();
    struct winsize size {};
    size.ws_col = columns;
    size.ws_row = rows;
    ::ioctl(terminal, TIOCSWINSZ, &size);
    file_ = ::fdopen(terminal, "w");
  }
  ~Pty() {
    std::fclose(file_);
    ::close(master_);
  }
  Pty(const Pty&) = delete;
  Pty& operator=(const Pty&) = delete;

  std::FILE* file() const { return file_; }

  // Everything written so far.
  std::string read() {
    std::string out;
    char buffer[4096];
    struct pollfd ready {
      master_, POLLIN, 0
    };
    while (::poll(&ready, 1, 50) > 0) {
      ssize_t n = ::read(master_, buffer, sizeof buffer);
      if (n <= 0) break;
      out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
  }

 private:
  int master_ = -1;
  std::FILE* file_ = nullptr;
};

// Just enough of a VT100 to see where a redraw leaves things.
class Screen {
 public:
  Screen(std::size_t columns, std::size_t rows) : columns_(columns), rows_(rows), lines_(1) {}

  void feed(const std::string& bytes) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      char c = bytes[i];
      if (c == '\x1b' && i + 1 < bytes.size() && bytes[i + 1] == '[') {
        std::size_t end = i + 2;
        while (end < bytes.size() && !std::isalpha(static_cast<unsigned char>(bytes[end]))) ++end;
        std::string argument = bytes.substr(i + 2, end - i - 2);
        char command = bytes[end];
        if (command == 'A') {
          std::size_t n = argument.empty() ? 1 : std::stoul(argument);
          row_ = row_ >= top() + n ? row_ - n : top();
        } else if (command == 'J') {
          lines_[row_].resize(std::min(lines_[row_].size(), column_));
          lines_.resize(row_ + 1);
        }
        ++escapes_;
        i = end;
      } else if (c == '\r') {
        column_ = 0;
      } else if (c == '\n') {
        down();
      } else {
        if ((static_cast<unsigned char>(c) & 0xC0) == 0x80 && column_ > 0) {
          lines_[row_][column_ - 1].push_back(c);  // the rest of a UTF-8 character
          continue;
        }
        if (column_ >= columns_) {
          ++wraps_;
          column_ = 0;
          down();
        }
        std::vector<std::string>& cells = lines_[row_];
        if (cells.size() <= column_) cells.resize(column_ + 1, " ");
        cells[column_++] = std::string(1, c);
      }
    }
  }

  // Every line, scrollback included, as text.
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const std::vector<std::string>& cells : lines_) {
      std::string line;
      for (const std::string& cell : cells) line += cell;
      out.push_back(line);
    }
    return out;
  }
  std::size_t cursor_row() const { return row_; }
  std::size_t wraps() const { return wraps_; }
  std::size_t escapes() const { return escapes_; }

 private:
  std::size_t top() const { return lines_.size() > rows_ ? lines_.size() - rows_ : 0; }
  void down() {
    ++row_;
    if (row_ >= lines_.size()) lines_.resize(row_ + 1);
  }

  std::size_t columns_;
  std::size_t rows_;
  std::vector<std::vector<std::string>> lines_;
  std::size_t row_ = 0;
  std::size_t column_ = 0;
  std::size_t wraps_ = 0;
  std::size_t escapes_ = 0;
};

// Sets an environment variable for one test and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

GroupView group(int index, GroupState state, std::size_t done, std::size_t total, double elapsed = 3,
                double estimate = 10) {
  GroupView view;
  view.index = index;
  view.state = state;
  view.done = done;
  view.total = total;
  view.counts_known = true;
  view.elapsed = elapsed;
  view.estimate = estimate;
  return view;
}

class StatusPrinterTest : public ::testing::Test {
 protected:
  ScopedEnv term_{"TERM", "xterm-256color"};
  ScopedEnv no_color_{"NO_COLOR", nullptr};
  ScopedEnv force_{"CLICOLOR_FORCE", nullptr};
};

TEST_F(StatusPrinterTest, RedrawsTheAreaInPlace) {
  Pty pty(100, 30);
  Screen screen(100, 30);
  StatusPrinter printer(StatusPrinter::Mode::kAuto, pty.file());
  ASSERT_TRUE(printer.smart());
  ASSERT_TRUE(printer.color());
  printer.line("testfleet run: 30 tests in 3 groups");
  std::vector<GroupView> views = {group(1, GroupState::kRunning, 2, 10),
                                  group(2, GroupState::kRunning, 5, 10),
                                  group(3, GroupState::kProvisioning, 0, 10)};
  printer.status(views, 3);
  screen.feed(pty.read());
  std::vector<std::string> first = screen.lines();
  ASSERT_EQ(first.size(), 6u);  // the line, three groups, the total, the cursor's empty line
  EXPECT_THAT(first[1], HasSubstr("worker  1 [####"));
  EXPECT_THAT(first[1], HasSubstr("2/10 tests"));
  EXPECT_THAT(first[3], HasSubstr("provisioning"));
  EXPECT_THAT(first[4], StartsWith("testfleet: 0/3 workers done, 7/30 tests, 3.0s elapsed, ETA ~"));

  for (int i = 0; i < 5; ++i) {
    views[0].done = 3 + static_cast<std::size_t>(i);
    printer.status(views, 3.25 + i);
  }
  views[1].state = GroupState::kPassed;
  views[1].done = 10;
  printer.status(views, 9);
  screen.feed(pty.read());
  std::vector<std::string> later = screen.lines();
  ASSERT_EQ(later.size(), first.size());
  EXPECT_EQ(later[0], first[0]);
  EXPECT_THAT(later[1], HasSubstr("7/10 tests"));
  EXPECT_THAT(later[2], HasSubstr("done"));
  EXPECT_THAT(later[4], StartsWith("testfleet: 1/3 workers done, 17/30 tests, 9.0s elapsed"));
  EXPECT_EQ(screen.cursor_row(), 5u);
}

TEST_F(StatusPrinterTest, PrintsAboveTheAreaAndDrawsItAgainBelow) {
  Pty pty(100, 30);
  Screen screen(100, 30);
  StatusPrinter printer(StatusPrinter::Mode::kSmart, pty.file());
  std::vector<GroupView> views = {group(1, GroupState::kRunning, 2, 10),
                                  group(2, GroupState::kRunning, 5, 10)};
  printer.status(views, 3);
  printer.block("FAILED: group 2 [exit 1]\npytest tests\nE   assert 1 == 2\n");
  printer.line("group 1 passed");
  screen.feed(pty.read());
  std::vector<std::string> lines = screen.lines();
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines[0], "FAILED: group 2 [exit 1]");
  EXPECT_EQ(lines[2], "E   assert 1 == 2");
  EXPECT_EQ(lines[3], "group 1 passed");
  EXPECT_THAT(lines[4], HasSubstr("worker  1"));
  EXPECT_THAT(lines[5], HasSubstr("worker  2"));
  EXPECT_THAT(lines[6], StartsWith("testfleet:"));

  // Once cleared, the area is gone and what follows takes its place.
  printer.clear();
  printer.line("testfleet: 20 tests");
  screen.feed(pty.read());
  EXPECT_THAT(screen.lines(), ElementsAre("FAILED: group 2 [exit 1]", "pytest tests", "E   assert 1 == 2",
                                          "group 1 passed", "testfleet: 20 tests", ""));
}

TEST_F(StatusPrinterTest, ElidesEveryLineToTheWidthWithColour) {
  ScopedEnv force("CLICOLOR_FORCE", "1");
  Pty pty(44, 30);
  Screen screen(44, 30);
  StatusPrinter printer(StatusPrinter::Mode::kSmart, pty.file());
  ASSERT_TRUE(printer.color());
  std::vector<GroupView> views = {group(1, GroupState::kFailed, 10, 10),
                                  group(12, GroupState::kPassed, 10, 10),
                                  group(3, GroupState::kRunning, 1, 100000)};
  views[2].detail = "compose project testfleet-20261126-abcdef-3, postgres:15 on 127.0.0.1:55432";
  printer.status(views, 3600);
  printer.status(views, 3601);
  std::string bytes = pty.read();
  EXPECT_THAT(bytes, HasSubstr("\x1b[31m"));  // failed in red
  screen.feed(bytes);
  EXPECT_EQ(screen.wraps(), 0u);
  std::vector<std::string> lines = screen.lines();
  ASSERT_EQ(lines.size(), 5u);
  for (const std::string& line : lines) EXPECT_LE(display_width(line), 43u) << line;
  EXPECT_THAT(lines[2], HasSubstr("\u2026"));
}

TEST_F(StatusPrinterTest, NeverTallerThanTheScreen) {
  Pty pty(100, 8);
  Screen screen(100, 8);
  StatusPrinter printer(StatusPrinter::Mode::kSmart, pty.file());
  std::vector<GroupView> views;
  for (int i = 1; i <= 12; ++i) views.push_back(group(i, GroupState::kPassed, 10, 10));
  views[4].state = GroupState::kRunning;
  views[4].done = 4;
  views[9].state = GroupState::kFailed;
  views[10].state = GroupState::kWaiting;
  views[10].done = 0;
  for (int i = 0; i < 4; ++i) printer.status(views, 10 + i);
  screen.feed(pty.read());
  std::vector<std::string> lines = screen.lines();
  // Six lines of area and the cursor's line fit in eight rows; redraws never scrolled any of it away.
  ASSERT_EQ(lines.size(), 7u);
  // Busy and failed groups first, then waiting ones, then passed ones; shown in their order.
  EXPECT_THAT(lines[0], HasSubstr("worker  1 "));
  EXPECT_THAT(lines[1], HasSubstr("worker  5"));
  EXPECT_THAT(lines[2], HasSubstr("worker 10"));
  EXPECT_THAT(lines[3], HasSubstr("worker 11"));
  EXPECT_THAT(lines[3], HasSubstr("waiting"));
  EXPECT_THAT(lines[4], HasSubstr("8 more workers: 8 done"));
  EXPECT_THAT(lines[5], StartsWith("testfleet: 10/12 workers done"));
}

TEST_F(StatusPrinterTest, MergingGroupsCountAsDoneAndTheTotalLineSaysSo) {
  Pty pty(120, 7);
  Screen screen(120, 7);
  StatusPrinter printer(StatusPrinter::Mode::kSmart, pty.file());
  std::vector<GroupView> views;
  for (int i = 1; i <= 5; ++i) {
    views.push_back(group(i, GroupState::kMerging, 10, 10));
    views.back().detail = "passed";
  }
  views[1].detail = "failed, exit 1";
  printer.status(views, 12);
  screen.feed(pty.read());
  std::vector<std::string> lines = screen.lines();
  ASSERT_EQ(lines.size(), 6u);  // three groups, the summary, the total, the cursor's line
  EXPECT_THAT(lines[0], HasSubstr("[####################] merging "));
  EXPECT_THAT(lines[0], HasSubstr("10/10 tests"));
  EXPECT_THAT(lines[1], HasSubstr("failed, exit 1"));
  EXPECT_THAT(lines[2], HasSubstr("worker  3"));
  EXPECT_THAT(lines[3], HasSubstr("2 more workers: 2 merging"));
  EXPECT_EQ(lines[4], "testfleet: 5/5 workers done, 50/50 tests, 12.0s elapsed, merging their reports");
}

TEST_F(StatusPrinterTest, PlainLinesWithoutATerminal) {
  ScopedEnv term("TERM", "dumb");
  Pty pty(100, 30);
  StatusPrinter printer(StatusPrinter::Mode::kAuto, pty.file());
  EXPECT_FALSE(printer.smart());
  EXPECT_FALSE(printer.color());
  printer.line("group 1 started");
  printer.status({group(1, GroupState::kRunning, 2, 10)}, 1);
  printer.line("group 1 passed");
  printer.clear();
  EXPECT_EQ(pty.read(), "group 1 started\r\ngroup 1 passed\r\n");
}

TEST_F(StatusPrinterTest, NoColorWins) {
  ScopedEnv no_color("NO_COLOR", "1");
  ScopedEnv force("CLICOLOR_FORCE", "1");
  Pty pty(100, 30);
  StatusPrinter printer(StatusPrinter::Mode::kAuto, pty.file());
  EXPECT_TRUE(printer.smart());
  EXPECT_FALSE(printer.color());
  EXPECT_EQ(printer.red("FAILED:"), "FAILED:");
}

TEST(DisplayWidth, CountsColumnsNotBytes) {
  EXPECT_EQ(display_width("group 1"), 7u);
  EXPECT_EQ(display_width("\x1b[31mfailed\x1b[0m"), 6u);
  EXPECT_EQ(display_width("caf\u00e9"), 4u);
  EXPECT_EQ(display_width("\u65e5\u672c\u8a9e"), 6u);
  EXPECT_EQ(display_width("\U0001F600!"), 3u);
  EXPECT_EQ(display_width("\xff\xfe"), 2u);  // stray bytes: one column each, as terminals draw U+FFFD
}

TEST(Elide, CutsToTheColumnsWithAnEllipsis) {
  EXPECT_EQ(elide("abcdef", 6), "abcdef");
  EXPECT_EQ(elide("abcdefg", 6), "abcde\u2026");
  EXPECT_EQ(elide("caf\u00e9 au lait", 5), "caf\u00e9\u2026");
  // A wide character that would straddle the limit goes whole.
  EXPECT_EQ(elide("ab\u65e5\u672c\u8a9e", 5), "ab\u65e5\u2026");
  EXPECT_EQ(display_width(elide("ab\u65e5\u672c\u8a9e", 4)), 3u);
  // Colour codes are kept and closed.
  EXPECT_EQ(elide("\x1b[31mfailed badly\x1b[0m", 7), "\x1b[31mfailed\u2026\x1b[0m");
  EXPECT_EQ(elide("abc", 0), "");
}

TEST(RemainingSeconds, ByPaceWhenCountsAreKnownElseByEstimate) {
  GroupView counted = group(1, GroupState::kRunning, 25, 100, 10, 1000);
  EXPECT_EQ(remaining_seconds({counted}), 30.0);
  GroupView timed = group(2, GroupState::kRunning, 0, 100, 10, 100);
  timed.counts_known = false;
  EXPECT_EQ(remaining_seconds({counted, timed}), 90.0);
  timed.elapsed = 150;  // past its estimate, with no count to go by
  EXPECT_EQ(remaining_seconds({timed}), 0.0);
  GroupView waiting = group(3, GroupState::kWaiting, 0, 10, 0, 40);
  GroupView done = group(4, GroupState::kPassed, 10, 10, 500, 0);
  EXPECT_EQ(remaining_seconds({waiting, done}), 40.0);
  // No durations known and no counts yet: nothing to say.
  GroupView unknown = group(5, GroupState::kRunning, 0, 10, 3, 0);
  EXPECT_EQ(remaining_seconds({counted, unknown}), std::nullopt);
}

TEST_F(StatusPrinterTest, NoEstimateNoETA) {
  Pty pty(100, 30);
  Screen screen(100, 30);
  StatusPrinter printer(StatusPrinter::Mode::kSmart, pty.file());
  std::vector<GroupView> views = {group(1, GroupState::kRunning, 0, 10, 2.5, 0),
                                  group(2, GroupState::kPassed, 10, 10, 2, 0)};
  views[0].counts_known = false;
  printer.status(views, 2.5);
  screen.feed(pty.read());
  std::vector<std::string> lines = screen.lines();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_THAT(lines[0], HasSubstr("10 tests  2.5s"));
  EXPECT_THAT(lines[0], Not(HasSubstr("~")));
  EXPECT_EQ(lines[2], "testfleet: 1/2 workers done, 10/20 tests, 2.5s elapsed");
}

}  // namespace
}  // namespace testfleet::ui
