// The one owner of the terminal while groups run. On a smart terminal (stdout a tty, TERM not "dumb") it
// keeps a status area at the bottom, a line per group and a total line, redrawn in place: a redraw moves
// the cursor up over the area, clears to the end of the screen and writes the new area in a single write.
// Every line is elided to the terminal's width (counting neither colour codes nor UTF-8 continuation
// bytes, and East Asian wide characters as two columns), because a line that wraps would make the next
// "cursor up" miss the top of the area; for the same reason the area never grows taller than the screen:
// groups that have passed, then groups still waiting, give way to a summary line. Everything else (events,
// a failed group's output) is printed above the area, which is drawn again at once below it, so child
// output and status never interleave. Elsewhere (CI, a pipe) it prints one plain line per event. NO_COLOR
// and CLICOLOR_FORCE are honoured.
#pragma once

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace testfleet::ui {

enum class GroupState { kWaiting, kProvisioning, kRunning, kMerging, kPassed, kFailed };

struct GroupView {
  int index = 0;
  GroupState state = GroupState::kWaiting;
  std::size_t done = 0;       // tests finished, when the runner reports them
  std::size_t total = 0;      // tests planned
  bool counts_known = false;  // whether `done` comes from the runner (else time is the only measure)
  double elapsed = 0;         // seconds
  double estimate = 0;        // seconds
  std::string detail;         // "exit 1", "timed out", the environment
};

class StatusPrinter {
 public:
  enum class Mode { kAuto, kSmart, kPlain };
  explicit StatusPrinter(Mode mode = Mode::kAuto, std::FILE* out = stdout);
  ~StatusPrinter();
  StatusPrinter(const StatusPrinter&) = delete;
  StatusPrinter& operator=(const StatusPrinter&) = delete;

  bool smart() const { return smart_; }
  bool color() const { return color_; }

  // A line of its own (above the status area on a smart terminal).
  void line(const std::string& text);
  // A block of text such as a failed group's output, printed whole above the status area.
  void block(const std::string& text);
  // Redraws the status area (smart) with the groups' current state; rate-limited by the caller.
  void status(const std::vector<GroupView>& groups, double elapsed);
  // Removes the status area; later output goes below where it was.
  void clear();

  // "FAILED" in red when colour is on.
  std::string red(const std::string& text) const;
  std::string green(const std::string& text) const;
  std::string bold(const std::string& text) const;

 private:
  struct Size {
    std::size_t columns = 80;
    std::size_t rows = 24;
  };
  Size size() const;
  // The status area's lines for this terminal size, each already elided.
  std::vector<std::string> layout(const std::vector<GroupView>& groups, double elapsed, Size size) const;
  std::string erase_sequence();
  void print_above(const std::string& text);
  void write(const std::string& text) const;

  std::FILE* out_;
  bool smart_ = false;
  bool color_ = false;
  std::size_t drawn_lines_ = 0;
  std::string drawn_;  // the area as last drawn, drawn again below anything printed above it
};

std::string_view to_string(GroupState state);

// Columns `text` takes on a terminal: escape sequences take none, East Asian wide characters and most emoji
// take two, every other character one.
std::size_t display_width(std::string_view text);
// `text` cut to at most `columns` columns, its last visible character replaced by an ellipsis when cut;
// escape sequences are kept, and a reset is added after a cut one so that no colour runs on.
std::string elide(std::string_view text, std::size_t columns);

// The seconds left until every group is done: for a group whose runner reports counts, its pace so far
// over the tests it has left, else its estimate minus its elapsed time; the largest over the groups.
// Nothing when a group has neither (no durations were known and its runner does not count).
std::optional<double> remaining_seconds(const std::vector<GroupView>& groups);

}  // namespace testfleet::ui
