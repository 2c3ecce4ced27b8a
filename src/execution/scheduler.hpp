// Which worker runs which test next. The scheduler holds no processes and reads no clock: it is told what
// the workers did (a test started, a test finished, a runner died, an environment was lost) and answers
// what each worker is sent next, so that its every decision is unit-tested with fake workers.
//
// Each worker has a queue (tests assigned to it, not yet sent) and tests in flight (sent to its runner,
// not yet finished; the first of them may be running). The initial queues are the plan's groups. A runner
// is kept `lookahead` tests ahead (pytest needs to know the next test to tear fixtures down as a serial run
// would), and only queued tests can move: a test in flight stays where it was sent.
//
// Dynamic schedule: a worker whose queue runs dry first takes what lost workers left (the pool), then
// steals from the worker with the most estimated time left (queued plus in flight) the tail of its queue
// worth half that time, at least one test, keeping both queues in collection order. Static: the plan
// exactly; only the pool moves, so that a lost environment's tests still run.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace testfleet::execution {

enum class Schedule { kDynamic, kStatic };

Schedule parse_schedule(const std::string& name);  // throws UsageError naming the value
const char* to_string(Schedule schedule);

// What one worker is to be sent now.
struct Order {
  std::vector<std::size_t> run;  // tests to append to its runner's queue, in order
  bool drain = false;            // nothing more for now: run what you have to its end
  bool shutdown = false;         // nothing more ever: finish and exit
};

// A move of queued tests from one worker to another, for the report's timeline.
struct Steal {
  std::size_t from = 0;  // worker index; kPool when the tests came from lost workers
  std::size_t to = 0;
  std::size_t tests = 0;
  double seconds = 0;  // their estimated time
  double at = 0;       // when, as the caller's clock said
  static constexpr std::size_t kPool = static_cast<std::size_t>(-1);
};

class Scheduler {
 public:
  // `estimates[t]`: test t's estimated seconds; `assignment[w]`: worker w's tests in the order to run.
  Scheduler(std::vector<double> estimates, std::vector<std::vector<std::size_t>> assignment,
            Schedule schedule, std::size_t lookahead = 2);

  std::size_t workers() const { return workers_.size(); }

  // What worker `w` is sent now (called when its runner is ready and after each of its events). Sends
  // nothing twice: once a test is in an order it is in flight.
  Order next(std::size_t w, double now);
  // For runners started once per batch: when worker `w` has nothing in flight, its next batch, tests worth
  // at least `seconds` (at least one test).
  Order next_batch(std::size_t w, double now, double seconds);

  // Worker `w`'s runner reports test t finished (its result is the runner's). False when t was not in
  // flight there (a late report of a test already given up): the caller ignores it.
  bool finished(std::size_t w, std::size_t t);

  // Worker `w`'s runner ended before finishing what it was sent. `running`: the test it had started, if
  // any (the caller reports it as the crash's victim; it is not run again). The rest of its tests in flight
  // go back to the front of its queue, for a restarted runner or for whoever steals them.
  void runner_lost(std::size_t w, std::optional<std::size_t> running);

  // Worker `w` is gone for good (its environment failed, or its restarts ran out): every test it held goes
  // to the pool, for the other workers. Returns how many.
  std::size_t worker_lost(std::size_t w);

  // Tests not yet finished and not given up: nothing more to schedule when 0.
  std::size_t unfinished() const { return unfinished_; }
  // Tests that no live worker can run any more (every worker lost): the caller reports them.
  std::vector<std::size_t> stranded() const;

  bool alive(std::size_t w) const { return workers_[w].alive; }
  std::size_t queued(std::size_t w) const { return workers_[w].queue.size(); }
  std::size_t in_flight(std::size_t w) const { return workers_[w].in_flight.size(); }
  // Tests the worker finished, plus those it holds: what its progress line counts towards.
  std::size_t held(std::size_t w) const;
  double estimated_left(std::size_t w) const;
  const std::vector<Steal>& steals() const { return steals_; }

 private:
  struct WorkerState {
    std::deque<std::size_t> queue;
    std::deque<std::size_t> in_flight;
    std::size_t finished = 0;
    bool alive = true;
  };

  double sum(const std::deque<std::size_t>& tests) const;
  // Moves tests from w's queue (refilled first when empty) into flight, while fewer than `max_in_flight`
  // are there and, past the first, the ones taken are worth less than `min_seconds`.
  Order take(std::size_t w, double now, std::size_t max_in_flight, double min_seconds);
  void refill(std::size_t w, double now);

  std::vector<double> estimates_;
  std::vector<WorkerState> workers_;
  std::deque<std::size_t> pool_;
  Schedule schedule_;
  std::size_t lookahead_;
  std::size_t unfinished_ = 0;
  std::vector<Steal> steals_;
};

}  // namespace testfleet::execution
