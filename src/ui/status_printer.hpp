// The one owner of the terminal while groups run. On a smart terminal (stdout a tty, TERM not "dumb") it
// keeps a status area at the bottom, a line per group and a total line, redrawn in place and elided to the
// terminal's width; everything else (events, a failed group's output) is printed above it, so child output
// and status never interleave. Elsewhere (CI, a pipe) it prints one plain line per event. NO_COLOR and
// CLICOLOR_FORCE are honoured.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

namespace testfleet::ui {

enum class GroupState { kWaiting, kProvisioning, kRunning, kMerging, kPassed, kFailed };

struct GroupView {
  int index = 0;
  GroupState state = GroupState::kWaiting;
  std::size_t done = 0;        // tests finished, when the runner reports them
  std::size_t total = 0;       // tests planned
  bool counts_known = false;   // whether `done` comes from the runner (else time is the only measure)
  double elapsed = 0;          // seconds
  double estimate = 0;         // seconds
  std::string detail;          // "exit 1", "timed out", the environment
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
  void erase_status();
  std::size_t width() const;

  void write(const std::string& text) const;

  std::FILE* out_;
  bool smart_ = false;
  bool color_ = false;
  std::size_t drawn_lines_ = 0;
};

std::string_view to_string(GroupState state);

}  // namespace testfleet::ui
