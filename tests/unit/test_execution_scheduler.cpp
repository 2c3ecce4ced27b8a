#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "execution/scheduler.hpp"
#include "util/error.hpp"

using testfleet::execution::Order;
using testfleet::execution::Schedule;
using testfleet::execution::Scheduler;
using testfleet::execution::Steal;

namespace {

// Fake workers on a fake clock: each runs the tests it was sent one after another, taking `real[t]`
// seconds each, and asks the scheduler for more after every event, as the fleet's loop does.
struct Simulation {
  struct Worker {
    std::deque<std::size_t> sent;
    double busy_until = 0;
    bool running = false;
    bool shut_down = false;
    std::vector<std::size_t> ran;
  };

  Scheduler& scheduler;
  std::vector<double> real;
  std::vector<Worker> workers;
  double now = 0;
  std::map<std::size_t, int> runs;  // test -> how many times it ran

  Simulation(Scheduler& s, std::vector<double> durations)
      : scheduler(s), real(std::move(durations)), workers(s.workers()) {}

  void feed(std::size_t w) {
    if (workers[w].shut_down) return;
    Order order = scheduler.next(w, now);
    workers[w].sent.insert(workers[w].sent.end(), order.run.begin(), order.run.end());
    if (order.shutdown && workers[w].sent.empty() && !workers[w].running) workers[w].shut_down = true;
  }

  void start_next(std::size_t w) {
    Worker& worker = workers[w];
    if (worker.running || worker.sent.empty()) return;
    worker.running = true;
    worker.busy_until = now + real[worker.sent.front()];
  }

  // Runs until every worker shut down; returns the makespan.
  double run() {
    for (std::size_t w = 0; w < workers.size(); ++w) {
      feed(w);
      start_next(w);
    }
    for (int guard = 0; guard < 100000; ++guard) {
      std::optional<std::size_t> soonest;
      for (std::size_t w = 0; w < workers.size(); ++w) {
        if (workers[w].running && (!soonest || workers[w].busy_until < workers[*soonest].busy_until))
          soonest = w;
      }
      if (!soonest) break;
      Worker& worker = workers[*soonest];
      now = worker.busy_until;
      std::size_t t = worker.sent.front();
      worker.sent.pop_front();
      worker.running = false;
      worker.ran.push_back(t);
      ++runs[t];
      scheduler.finished(*soonest, t);
      for (std::size_t w = 0; w < workers.size(); ++w) {
        feed(w);
        start_next(w);
      }
    }
    return now;
  }
};

std::vector<std::vector<std::size_t>> round_robin(std::size_t tests, std::size_t workers) {
  std::vector<std::vector<std::size_t>> out(workers);
  for (std::size_t t = 0; t < tests; ++t) out[t % workers].push_back(t);
  return out;
}

}  // namespace

TEST(Scheduler, SendsTheInitialAssignmentInOrderKeepingTheLookahead) {
  Scheduler scheduler({1, 1, 1, 1, 1, 1}, {{0, 2, 4}, {1, 3, 5}}, Schedule::kDynamic, 2);
  Order first = scheduler.next(0, 0);
  EXPECT_EQ(first.run, (std::vector<std::size_t>{0, 2}));
  EXPECT_FALSE(first.drain);
  // Nothing more while two are in flight.
  EXPECT_TRUE(scheduler.next(0, 0).run.empty());
  scheduler.finished(0, 0);
  Order second = scheduler.next(0, 1);
  EXPECT_EQ(second.run, (std::vector<std::size_t>{4}));
  EXPECT_EQ(scheduler.in_flight(0), 2u);
  EXPECT_EQ(scheduler.queued(1), 3u);
}

TEST(Scheduler, StaticRunsThePlanExactlyAndNeverSteals) {
  std::vector<double> real = {5, 5, 5, 5, 0.1, 0.1, 0.1, 0.1};
  Scheduler scheduler(std::vector<double>(8, 1.0), {{0, 1, 2, 3}, {4, 5, 6, 7}}, Schedule::kStatic);
  Simulation sim(scheduler, real);
  double makespan = sim.run();
  EXPECT_DOUBLE_EQ(makespan, 20.0);
  EXPECT_EQ(sim.workers[0].ran, (std::vector<std::size_t>{0, 1, 2, 3}));
  EXPECT_EQ(sim.workers[1].ran, (std::vector<std::size_t>{4, 5, 6, 7}));
  EXPECT_TRUE(scheduler.steals().empty());
  EXPECT_EQ(scheduler.unfinished(), 0u);
}

TEST(Scheduler, DynamicStealsFromTheWorkerWithTheMostTimeLeft) {
  // The estimates say the groups are even; in reality worker 0's tests are 50 times slower.
  std::vector<double> real = {5, 5, 5, 5, 5, 5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
  Scheduler scheduler(std::vector<double>(12, 1.0), {{0, 1, 2, 3, 4, 5}, {6, 7, 8, 9, 10, 11}},
                      Schedule::kDynamic);
  Simulation sim(scheduler, real);
  double makespan = sim.run();
  EXPECT_LT(makespan, 30.0);  // static would take 30
  EXPECT_LE(makespan, 15.0 + 0.6);
  ASSERT_FALSE(scheduler.steals().empty());
  EXPECT_EQ(scheduler.steals().front().from, 0u);
  EXPECT_EQ(scheduler.steals().front().to, 1u);
  // Every test ran exactly once.
  for (std::size_t t = 0; t < real.size(); ++t) EXPECT_EQ(sim.runs[t], 1) << "test " << t;
  // Stolen tests keep their collection order on the thief.
  EXPECT_TRUE(std::is_sorted(sim.workers[1].ran.begin() + 6, sim.workers[1].ran.end()));
}

TEST(Scheduler, StealsTheTailWorthHalfTheVictimsTimeAndAtLeastOneTest) {
  Scheduler scheduler({1, 1, 1, 1, 1, 1, 1, 1, 1}, {{0, 1, 2, 3, 4, 5, 6, 7}, {8}}, Schedule::kDynamic, 1);
  EXPECT_EQ(scheduler.next(0, 0).run, (std::vector<std::size_t>{0}));
  EXPECT_EQ(scheduler.next(1, 0).run, (std::vector<std::size_t>{8}));
  scheduler.finished(1, 8);
  Order order = scheduler.next(1, 1);
  // Worker 0 has 8 s left (7 queued, 1 in flight): the last 4 of its queue move.
  EXPECT_EQ(order.run, (std::vector<std::size_t>{4}));
  EXPECT_EQ(scheduler.queued(1), 3u);
  EXPECT_EQ(scheduler.queued(0), 3u);
  ASSERT_EQ(scheduler.steals().size(), 1u);
  EXPECT_EQ(scheduler.steals()[0].tests, 4u);
  EXPECT_DOUBLE_EQ(scheduler.steals()[0].at, 1.0);

  // A victim with one queued test still gives it away.
  Scheduler small({10, 1}, {{0, 1}, {}}, Schedule::kDynamic, 1);
  EXPECT_EQ(small.next(0, 0).run, (std::vector<std::size_t>{0}));
  EXPECT_EQ(small.next(1, 0).run, (std::vector<std::size_t>{1}));
}

TEST(Scheduler, DrainsAWorkerWithNothingLeftAndShutsEveryoneDownAtTheEnd) {
  Scheduler scheduler({1, 1}, {{0}, {1}}, Schedule::kDynamic);
  Order a = scheduler.next(0, 0);
  EXPECT_EQ(a.run, (std::vector<std::size_t>{0}));
  EXPECT_TRUE(a.drain);
  EXPECT_FALSE(a.shutdown);
  scheduler.next(1, 0);
  scheduler.finished(0, 0);
  EXPECT_FALSE(scheduler.next(0, 1).shutdown);  // test 1 is still running elsewhere
  scheduler.finished(1, 1);
  EXPECT_TRUE(scheduler.next(0, 2).shutdown);
  EXPECT_TRUE(scheduler.next(1, 2).shutdown);
  EXPECT_EQ(scheduler.unfinished(), 0u);
}

TEST(Scheduler, ACrashedRunnersOtherTestsGoBackToTheFrontOfItsQueue) {
  Scheduler scheduler({1, 1, 1, 1}, {{0, 1, 2, 3}}, Schedule::kStatic);
  EXPECT_EQ(scheduler.next(0, 0).run, (std::vector<std::size_t>{0, 1}));
  scheduler.runner_lost(0, 0);  // died while running test 0
  EXPECT_EQ(scheduler.unfinished(), 3u);
  EXPECT_EQ(scheduler.in_flight(0), 0u);
  // The restarted runner gets test 1 again first, then the rest: nothing lost, test 0 not rerun.
  EXPECT_EQ(scheduler.next(0, 1).run, (std::vector<std::size_t>{1, 2}));
  scheduler.finished(0, 1);
  scheduler.finished(0, 2);
  EXPECT_EQ(scheduler.next(0, 2).run, (std::vector<std::size_t>{3}));
  scheduler.finished(0, 3);
  EXPECT_EQ(scheduler.unfinished(), 0u);
}

TEST(Scheduler, ALostEnvironmentsTestsRunOnTheOthersEvenWhenStatic) {
  Scheduler scheduler({1, 1, 1, 1, 1, 1}, round_robin(6, 3), Schedule::kStatic);
  EXPECT_EQ(scheduler.worker_lost(1), 2u);  // never provisioned: tests 1 and 4
  EXPECT_FALSE(scheduler.alive(1));
  EXPECT_TRUE(scheduler.next(1, 0).shutdown);
  Simulation sim(scheduler, std::vector<double>(6, 1.0));
  sim.workers[1].shut_down = true;
  sim.run();
  for (std::size_t t = 0; t < 6; ++t) EXPECT_EQ(sim.runs[t], 1) << "test " << t;
  EXPECT_TRUE(sim.workers[1].ran.empty());
  ASSERT_EQ(scheduler.steals().size(), 1u);
  EXPECT_EQ(scheduler.steals()[0].from, Steal::kPool);
  EXPECT_EQ(scheduler.steals()[0].tests, 2u);
}

TEST(Scheduler, AWorkerLostMidRunHandsOverWhatItHadInFlight) {
  Scheduler scheduler({1, 1, 1, 1}, {{0, 1, 2}, {3}}, Schedule::kDynamic);
  EXPECT_EQ(scheduler.next(0, 0).run, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(scheduler.next(1, 0).run, (std::vector<std::size_t>{3}));
  scheduler.finished(0, 0);
  scheduler.runner_lost(0, 1);  // test 1 was running: the crash's victim
  scheduler.worker_lost(0);     // and its environment is gone
  scheduler.finished(1, 3);
  EXPECT_EQ(scheduler.next(1, 1).run, (std::vector<std::size_t>{2}));
  scheduler.finished(1, 2);
  EXPECT_EQ(scheduler.unfinished(), 0u);
  EXPECT_TRUE(scheduler.stranded().empty());
}

TEST(Scheduler, TestsNoLiveWorkerCanRunAreStranded) {
  Scheduler scheduler({1, 1, 1}, {{0, 1}, {2}}, Schedule::kDynamic);
  scheduler.worker_lost(0);
  EXPECT_TRUE(scheduler.stranded().empty());
  scheduler.worker_lost(1);
  EXPECT_EQ(scheduler.stranded(), (std::vector<std::size_t>{0, 1, 2}));
}

TEST(Scheduler, AFinishedReportForAGivenUpTestIsIgnored) {
  Scheduler scheduler({1, 1}, {{0, 1}}, Schedule::kStatic);
  scheduler.next(0, 0);
  scheduler.runner_lost(0, 0);
  scheduler.finished(0, 0);  // a late event of the dead runner
  EXPECT_EQ(scheduler.unfinished(), 1u);
}

TEST(Scheduler, DynamicComesCloseToTheLowerBoundWithStaleEstimates) {
  // 200 tests whose real durations are their estimates times 0.3 to 3, 2 workers: dynamic lands within
  // 10% (plus one test) of the lower bound, static does not.
  std::mt19937 random(7);
  std::uniform_real_distribution<double> estimate(0.1, 2.0), factor(0.3, 3.0);
  std::vector<double> estimates, real;
  for (int i = 0; i < 200; ++i) {
    estimates.push_back(estimate(random));
    real.push_back(estimates.back() * factor(random));
  }
  double total = std::accumulate(real.begin(), real.end(), 0.0);
  double longest = *std::max_element(real.begin(), real.end());
  double bound = std::max(total / 2, longest);
  std::vector<std::vector<std::size_t>> assignment(2);
  std::vector<double> loads(2, 0);
  for (std::size_t t = 0; t < estimates.size(); ++t) {  // any even-by-estimate split
    std::size_t w = loads[0] <= loads[1] ? 0 : 1;
    assignment[w].push_back(t);
    loads[w] += estimates[t];
  }
  Scheduler dynamic(estimates, assignment, Schedule::kDynamic);
  Simulation dynamic_sim(dynamic, real);
  double dynamic_makespan = dynamic_sim.run();
  Scheduler fixed(estimates, assignment, Schedule::kStatic);
  Simulation static_sim(fixed, real);
  double static_makespan = static_sim.run();
  EXPECT_LE(dynamic_makespan, bound * 1.10 + longest);
  EXPECT_LE(dynamic_makespan, static_makespan);
  std::set<std::size_t> ran;
  for (const auto& worker : dynamic_sim.workers) ran.insert(worker.ran.begin(), worker.ran.end());
  EXPECT_EQ(ran.size(), 200u);
}

TEST(Scheduler, ParsesItsNames) {
  EXPECT_EQ(testfleet::execution::parse_schedule("dynamic"), Schedule::kDynamic);
  EXPECT_EQ(testfleet::execution::parse_schedule("static"), Schedule::kStatic);
  EXPECT_THROW(testfleet::execution::parse_schedule("fast"), testfleet::UsageError);
}
