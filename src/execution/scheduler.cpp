#include "execution/scheduler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "util/error.hpp"

namespace testfleet::execution {

Schedule parse_schedule(const std::string& name) {
  if (name == "dynamic") return Schedule::kDynamic;
  if (name == "static") return Schedule::kStatic;
  throw UsageError(fmt::format("unknown schedule '{}' (expected dynamic or static)", name));
}

const char* to_string(Schedule schedule) {
  return schedule == Schedule::kDynamic ? "dynamic" : "static";
}

Scheduler::Scheduler(std::vector<double> estimates, std::vector<std::vector<std::size_t>> assignment,
                     Schedule schedule, std::size_t lookahead)
    : estimates_(std::move(estimates)),
      workers_(assignment.size()),
      schedule_(schedule),
      lookahead_(std::max<std::size_t>(lookahead, 1)) {
  for (std::size_t w = 0; w < assignment.size(); ++w) {
    workers_[w].queue.assign(assignment[w].begin(), assignment[w].end());
    unfinished_ += assignment[w].size();
  }
}

double Scheduler::sum(const std::deque<std::size_t>& tests) const {
  double total = 0;
  for (std::size_t t : tests) total += estimates_[t];
  return total;
}

double Scheduler::estimated_left(std::size_t w) const {
  return sum(workers_[w].queue) + sum(workers_[w].in_flight);
}

std::size_t Scheduler::held(std::size_t w) const {
  const WorkerState& worker = workers_[w];
  return worker.finished + worker.queue.size() + worker.in_flight.size();
}

void Scheduler::refill(std::size_t w, double now) {
  WorkerState& thief = workers_[w];
  if (!pool_.empty()) {
    Steal steal{Steal::kPool, w, pool_.size(), sum(pool_), now};
    thief.queue.insert(thief.queue.end(), pool_.begin(), pool_.end());
    pool_.clear();
    steals_.push_back(steal);
    return;
  }
  if (schedule_ != Schedule::kDynamic) return;
  std::optional<std::size_t> victim;
  double most = 0;
  for (std::size_t v = 0; v < workers_.size(); ++v) {
    if (v == w || !workers_[v].alive || workers_[v].queue.empty()) continue;
    double left = estimated_left(v);
    if (!victim || left > most) {
      victim = v;
      most = left;
    }
  }
  if (!victim) return;
  std::deque<std::size_t>& from = workers_[*victim].queue;
  // The tail worth half of what the victim has left, at least one test.
  std::size_t take = 0;
  double taken = 0;
  while (take < from.size()) {
    double next = estimates_[from[from.size() - 1 - take]];
    if (take > 0 && taken + next > most / 2) break;
    taken += next;
    ++take;
  }
  auto first = from.end() - static_cast<std::ptrdiff_t>(take);
  thief.queue.insert(thief.queue.end(), first, from.end());
  from.erase(first, from.end());
  steals_.push_back({*victim, w, take, taken, now});
}

Order Scheduler::take(std::size_t w, double now, std::size_t max_in_flight, double min_seconds) {
  WorkerState& worker = workers_[w];
  Order order;
  if (!worker.alive) {
    order.shutdown = true;
    return order;
  }
  if (worker.queue.empty()) refill(w, now);
  double taken = 0;
  while (!worker.queue.empty() && worker.in_flight.size() < max_in_flight &&
         (order.run.empty() || taken < min_seconds)) {
    taken += estimates_[worker.queue.front()];
    order.run.push_back(worker.queue.front());
    worker.in_flight.push_back(worker.queue.front());
    worker.queue.pop_front();
  }
  if (worker.queue.empty()) {
    // Nothing more to send this worker now; once the whole run is done, nothing ever.
    order.drain = true;
    order.shutdown = unfinished_ == 0;
  }
  return order;
}

Order Scheduler::next(std::size_t w, double now) {
  return take(w, now, lookahead_, std::numeric_limits<double>::infinity());
}

Order Scheduler::next_batch(std::size_t w, double now, double seconds) {
  if (workers_[w].alive && !workers_[w].in_flight.empty()) return {};
  return take(w, now, std::numeric_limits<std::size_t>::max(), seconds);
}

bool Scheduler::finished(std::size_t w, std::size_t t) {
  WorkerState& worker = workers_[w];
  auto it = std::find(worker.in_flight.begin(), worker.in_flight.end(), t);
  if (it == worker.in_flight.end()) return false;  // not this worker's: already given up
  worker.in_flight.erase(it);
  ++worker.finished;
  --unfinished_;
  return true;
}

void Scheduler::runner_lost(std::size_t w, std::optional<std::size_t> running) {
  WorkerState& worker = workers_[w];
  if (running) {
    auto it = std::find(worker.in_flight.begin(), worker.in_flight.end(), *running);
    if (it != worker.in_flight.end()) {
      worker.in_flight.erase(it);
      ++worker.finished;
      --unfinished_;
    }
  }
  worker.queue.insert(worker.queue.begin(), worker.in_flight.begin(), worker.in_flight.end());
  worker.in_flight.clear();
}

std::size_t Scheduler::worker_lost(std::size_t w) {
  WorkerState& worker = workers_[w];
  if (!worker.alive) return 0;
  worker.alive = false;
  std::size_t moved = worker.queue.size() + worker.in_flight.size();
  pool_.insert(pool_.end(), worker.in_flight.begin(), worker.in_flight.end());
  pool_.insert(pool_.end(), worker.queue.begin(), worker.queue.end());
  std::sort(pool_.begin(), pool_.end());  // collection order
  worker.queue.clear();
  worker.in_flight.clear();
  return moved;
}

std::vector<std::size_t> Scheduler::stranded() const {
  bool any_alive =
      std::any_of(workers_.begin(), workers_.end(), [](const WorkerState& w) { return w.alive; });
  if (any_alive) return {};
  return {pool_.begin(), pool_.end()};
}

}  // namespace testfleet::execution
