#include "planning/plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <queue>
#include <unordered_set>

#include "util/error.hpp"

namespace testfleet::planning {
namespace {

// Indices of `tests` sorted by ID: the canonical order every machine agrees on.
std::vector<std::size_t> canonical_order(const std::vector<Test>& tests) {
  std::vector<std::size_t> order(tests.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return tests[a].id < tests[b].id; });
  return order;
}

// Longest processing time first: each test, longest first (ties by ID), into the group with the least load
// (ties by lowest index). Within 4/3 of the optimum, and in practice much closer for many small tests.
std::vector<std::vector<std::size_t>> split_lpt(const std::vector<Test>& tests, int groups) {
  std::vector<std::size_t> order = canonical_order(tests);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return tests[a].seconds > tests[b].seconds; });
  using Load = std::pair<double, int>;
  std::priority_queue<Load, std::vector<Load>, std::greater<>> least_loaded;
  for (int g = 0; g < groups; ++g) least_loaded.emplace(0.0, g);
  std::vector<std::vector<std::size_t>> members(static_cast<std::size_t>(groups));
  for (std::size_t test : order) {
    auto [load, g] = least_loaded.top();
    least_loaded.pop();
    members[static_cast<std::size_t>(g)].push_back(test);
    least_loaded.emplace(load + tests[test].seconds, g);
  }
  return members;
}

// Contiguous chunks of the canonical order minimising the largest chunk: binary search on the capacity,
// greedy fill, then the largest chunks split until there are exactly `groups` (never an empty one).
std::vector<std::vector<std::size_t>> split_chunks(const std::vector<Test>& tests, int groups) {
  std::vector<std::size_t> order = canonical_order(tests);
  auto greedy = [&](double capacity) {
    std::vector<std::vector<std::size_t>> chunks(1);
    double sum = 0;
    for (std::size_t test : order) {
      double d = tests[test].seconds;
      if (!chunks.back().empty() && sum + d > capacity) {
        chunks.emplace_back();
        sum = 0;
      }
      chunks.back().push_back(test);
      sum += d;
    }
    return chunks;
  };
  double longest = 0;
  double total = 0;
  for (const Test& t : tests) {
    longest = std::max(longest, t.seconds);
    total += t.seconds;
  }
  double low = std::max(longest, total / groups);
  double high = std::max(total, low);
  for (int i = 0; i < 60 && high - low > 1e-9 * std::max(1.0, high); ++i) {
    double mid = (low + high) / 2;
    if (greedy(mid).size() <= static_cast<std::size_t>(groups)) {
      high = mid;
    } else {
      low = mid;
    }
  }
  std::vector<std::vector<std::size_t>> chunks = greedy(high);
  auto chunk_seconds = [&](const std::vector<std::size_t>& chunk) {
    double s = 0;
    for (std::size_t t : chunk) s += tests[t].seconds;
    return s;
  };
  while (chunks.size() < static_cast<std::size_t>(groups)) {
    // Split the chunk with the most time among those with two or more tests, at its midpoint by time.
    std::size_t best = chunks.size();
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      if (chunks[c].size() < 2) continue;
      if (best == chunks.size() || chunk_seconds(chunks[c]) > chunk_seconds(chunks[best])) best = c;
    }
    const std::vector<std::size_t> whole = chunks[best];
    double half = chunk_seconds(whole) / 2;
    std::size_t cut = 1;
    double sum = tests[whole[0]].seconds;
    while (cut < whole.size() - 1 && sum + tests[whole[cut]].seconds <= half) sum += tests[whole[cut++]].seconds;
    chunks[best].assign(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut));
    chunks.insert(chunks.begin() + static_cast<std::ptrdiff_t>(best) + 1,
                  std::vector<std::size_t>(whole.begin() + static_cast<std::ptrdiff_t>(cut), whole.end()));
  }
  return chunks;
}

}  // namespace

Algorithm parse_algorithm(std::string_view name) {
  if (name == "lpt") return Algorithm::kLpt;
  if (name == "chunks") return Algorithm::kChunks;
  throw UsageError(fmt::format("unknown splitting algorithm '{}' (expected lpt or chunks)", name));
}

std::string_view to_string(Algorithm algorithm) { return algorithm == Algorithm::kLpt ? "lpt" : "chunks"; }

double Plan::total_seconds() const {
  double total = 0;
  for (const Test& t : tests) total += t.seconds;
  return total;
}

double Plan::makespan_seconds() const {
  double makespan = 0;
  for (const Group& g : groups) makespan = std::max(makespan, g.seconds);
  return makespan;
}

double Plan::lower_bound_seconds() const {
  if (groups.empty()) return 0;
  double longest = 0;
  for (const Test& t : tests) longest = std::max(longest, t.seconds);
  return std::max(total_seconds() / static_cast<double>(groups.size()), longest);
}

std::size_t Plan::estimated_count() const {
  return static_cast<std::size_t>(std::count_if(tests.begin(), tests.end(), [](const Test& t) { return t.estimated; }));
}

Plan make_plan(std::vector<Test> tests, int groups, Algorithm algorithm) {
  if (groups < 1) throw UsageError(fmt::format("the number of groups must be at least 1 (got {})", groups));
  std::unordered_set<std::string_view> seen;
  for (const Test& t : tests) {
    if (!seen.insert(t.id).second) {
      throw UsageError(fmt::format("the test ID '{}' was collected twice; every test must have a unique ID", t.id));
    }
  }
  Plan plan;
  plan.requested_groups = groups;
  plan.algorithm = algorithm;
  plan.tests = std::move(tests);
  int used = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(groups), plan.tests.size()));
  if (used == 0) return plan;
  std::vector<std::vector<std::size_t>> members =
      algorithm == Algorithm::kLpt ? split_lpt(plan.tests, used) : split_chunks(plan.tests, used);
  // Groups are numbered by their smallest test ID, so the numbering too is independent of collection order.
  std::sort(members.begin(), members.end(), [&](const auto& a, const auto& b) {
    auto smallest = [&](const std::vector<std::size_t>& m) {
      return std::min_element(m.begin(), m.end(), [&](std::size_t x, std::size_t y) {
        return plan.tests[x].id < plan.tests[y].id;
      });
    };
    return plan.tests[*smallest(a)].id < plan.tests[*smallest(b)].id;
  });
  for (std::size_t g = 0; g < members.size(); ++g) {
    Group group;
    group.index = static_cast<int>(g) + 1;
    group.tests = std::move(members[g]);
    std::sort(group.tests.begin(), group.tests.end());  // back into collection order
    for (std::size_t t : group.tests) group.seconds += plan.tests[t].seconds;
    plan.groups.push_back(std::move(group));
  }
  return plan;
}

std::vector<Test> shard_tests(const std::vector<Test>& tests, int index, int count) {
  if (count < 1 || index < 1 || index > count) {
    throw UsageError(fmt::format("shard {}/{} is out of range: the index runs from 1 to the count", index, count));
  }
  Plan shards = make_plan(tests, count, Algorithm::kLpt);
  std::vector<Test> mine;
  if (static_cast<std::size_t>(index) > shards.groups.size()) return mine;
  for (std::size_t t : shards.groups[static_cast<std::size_t>(index) - 1].tests) mine.push_back(shards.tests[t]);
  return mine;
}

}  // namespace testfleet::planning
