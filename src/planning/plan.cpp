#include "planning/plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <queue>
#include <string_view>
#include <utility>

#include "util/error.hpp"

namespace testfleet::planning {
namespace {

// Indices of `tests` sorted by ID: the canonical order every machine agrees on. The views of the IDs are
// sorted beside their indices, so that each of the ~20 million comparisons a million tests take reads the
// two IDs and nothing else (sorting bare indices also loads each Test: half again as many cache misses).
std::vector<std::size_t> canonical_order(const std::vector<Test>& tests) {
  std::vector<std::pair<std::string_view, std::size_t>> keyed(tests.size());
  for (std::size_t i = 0; i < tests.size(); ++i) keyed[i] = {tests[i].id, i};
  std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::size_t> order(tests.size());
  for (std::size_t i = 0; i < keyed.size(); ++i) order[i] = keyed[i].second;
  return order;
}

// Longest processing time first: each test, longest first (ties by ID), into the group with the least load
// (ties by lowest index). Within 4/3 of the optimum, and in practice much closer for many small tests.
std::vector<std::vector<std::size_t>> split_lpt(const std::vector<Test>& tests,
                                                const std::vector<std::size_t>& order, int groups) {
  // Longest first, ties in canonical order: sorted as (seconds, canonical rank) pairs, which is the stable
  // sort of the canonical order by duration without its indirect loads.
  std::vector<std::pair<double, std::size_t>> by_length(order.size());
  for (std::size_t rank = 0; rank < order.size(); ++rank)
    by_length[rank] = {tests[order[rank]].seconds, rank};
  std::sort(by_length.begin(), by_length.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  using Load = std::pair<double, int>;
  std::priority_queue<Load, std::vector<Load>, std::greater<>> least_loaded;
  for (int g = 0; g < groups; ++g) least_loaded.emplace(0.0, g);
  std::vector<std::vector<std::size_t>> members(static_cast<std::size_t>(groups));
  for (const auto& [seconds, rank] : by_length) {
    auto [load, g] = least_loaded.top();
    least_loaded.pop();
    members[static_cast<std::size_t>(g)].push_back(order[rank]);
    least_loaded.emplace(load + seconds, g);
  }
  return members;
}

// Contiguous chunks of the canonical order minimising the largest chunk: binary search on the capacity,
// greedy fill, then the largest chunks split until there are exactly `groups` (never an empty one).
std::vector<std::vector<std::size_t>> split_chunks(const std::vector<Test>& tests,
                                                   const std::vector<std::size_t>& order, int groups) {
  // The search only needs to know whether a capacity fits in `groups` chunks: count, build nothing.
  auto fits = [&](double capacity) {
    std::size_t chunks = 1;
    std::size_t in_chunk = 0;
    double sum = 0;
    for (std::size_t test : order) {
      double d = tests[test].seconds;
      if (in_chunk > 0 && sum + d > capacity) {
        if (++chunks > static_cast<std::size_t>(groups)) return false;
        in_chunk = 0;
        sum = 0;
      }
      ++in_chunk;
      sum += d;
    }
    return true;
  };
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
    if (fits(mid)) {
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
    while (cut < whole.size() - 1 && sum + tests[whole[cut]].seconds <= half)
      sum += tests[whole[cut++]].seconds;
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

std::string_view to_string(Algorithm algorithm) {
  return algorithm == Algorithm::kLpt ? "lpt" : "chunks";
}

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
  return static_cast<std::size_t>(
      std::count_if(tests.begin(), tests.end(), [](const Test& t) { return t.estimated; }));
}

Plan make_plan(std::vector<Test> tests, int groups, Algorithm algorithm) {
  if (groups < 1) throw UsageError(fmt::format("the number of groups must be at least 1 (got {})", groups));
  std::vector<std::size_t> order = canonical_order(tests);
  // Sorted, a duplicated ID sits next to itself.
  for (std::size_t i = 1; i < order.size(); ++i) {
    const std::string& id = tests[order[i]].id;
    if (id == tests[order[i - 1]].id) {
      throw UsageError(
          fmt::format("the test ID '{}' was collected twice; every test must have a unique ID", id));
    }
  }
  Plan plan;
  plan.requested_groups = groups;
  plan.algorithm = algorithm;
  plan.tests = std::move(tests);
  int used = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(groups), plan.tests.size()));
  if (used == 0) return plan;
  std::vector<std::vector<std::size_t>> members = algorithm == Algorithm::kLpt
                                                      ? split_lpt(plan.tests, order, used)
                                                      : split_chunks(plan.tests, order, used);
  // Groups are numbered by their smallest test ID, so the numbering too is independent of collection order:
  // the smallest ID of a group is its member of lowest canonical rank.
  std::vector<std::size_t> rank(order.size());
  for (std::size_t r = 0; r < order.size(); ++r) rank[order[r]] = r;
  std::vector<std::pair<std::size_t, std::size_t>> numbering;  // (lowest rank, index into members)
  for (std::size_t m = 0; m < members.size(); ++m) {
    std::size_t lowest = order.size();
    for (std::size_t t : members[m]) lowest = std::min(lowest, rank[t]);
    numbering.emplace_back(lowest, m);
  }
  std::sort(numbering.begin(), numbering.end());
  // Each group's tests back in collection order: one pass over the tests rather than a sort per group.
  std::vector<std::size_t> group_of(plan.tests.size());
  plan.groups.resize(members.size());
  for (std::size_t g = 0; g < numbering.size(); ++g) {
    const std::vector<std::size_t>& m = members[numbering[g].second];
    for (std::size_t t : m) group_of[t] = g;
    plan.groups[g].index = static_cast<int>(g) + 1;
    plan.groups[g].tests.reserve(m.size());
  }
  for (std::size_t t = 0; t < plan.tests.size(); ++t) {
    Group& group = plan.groups[group_of[t]];
    group.tests.push_back(t);
    group.seconds += plan.tests[t].seconds;
  }
  return plan;
}

std::vector<Test> shard_tests(const std::vector<Test>& tests, int index, int count) {
  if (count < 1 || index < 1 || index > count) {
    throw UsageError(
        fmt::format("shard {}/{} is out of range: the index runs from 1 to the count", index, count));
  }
  Plan shards = make_plan(tests, count, Algorithm::kLpt);
  std::vector<Test> mine;
  if (static_cast<std::size_t>(index) > shards.groups.size()) return mine;
  for (std::size_t t : shards.groups[static_cast<std::size_t>(index) - 1].tests)
    mine.push_back(shards.tests[t]);
  return mine;
}

}  // namespace testfleet::planning
