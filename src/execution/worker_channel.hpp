// The worker protocol, as testfleet's side speaks it: orders out on the runner's stdin, events in on its
// stdout. Both are JSON, one object a line; an event line starts with "@testfleet " so that anything else
// the runner prints to stdout before its plugin took the stream over is told apart (and logged). The
// runner's side is src/runners/pytest_plugin.py, whose header describes the messages.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace testfleet::execution {

// A part of the suite the runner skipped as it collected (a module's importorskip): reported once a run.
struct CollectionSkip {
  std::string id;
  std::string message;
  std::string text;
};

struct WorkerEvent {
  enum class Kind { kCollected, kStart, kTest, kMissing, kFinish, kFile };
  Kind kind = Kind::kFinish;
  std::string id;                // start, test, missing
  std::vector<std::string> ids;  // collected, in collection order
  std::size_t collection_errors = 0;
  std::vector<CollectionSkip> skips;  // collected
  std::string outcome;                // test: passed, failed, error, skipped
  double seconds = 0;                 // test: setup + call + teardown
  std::string message;                // test
  std::string teardown_error;         // test: a teardown error after a failed call (a second JUnit testcase)
  std::string file;                   // start: the test's file, as pytest names it; file: its name
  std::string data;                   // file: its content, decoded
  long line = 0;                      // start: its line (0-based, as pytest's location)
  double time = 0;                    // when, in seconds since the epoch, on the runner's clock
  std::string json;                   // the event as it came, for the progress stream
};

// Splits a runner's stdout into events and other lines, however the bytes arrive.
class ChannelReader {
 public:
  // Takes the next bytes; returns the complete lines' events. Lines that are not events go to `other`.
  std::vector<WorkerEvent> feed(std::string_view bytes, std::string* other);
  // At end of file: a last line without its newline (a runner that died mid-write) is not an event.
  std::string rest() const { return partial_; }

 private:
  std::string partial_;
};

// Parses one line; nothing when it is not an event of ours.
std::optional<WorkerEvent> parse_event(std::string_view line);

std::string run_order(const std::vector<std::string>& ids);
std::string drain_order();
std::string shutdown_order();

// A "test" event as the progress stream holds it, for results that came another way (a batch's JUnit).
std::string test_event(const std::string& id, const std::string& outcome, double seconds);

}  // namespace testfleet::execution
