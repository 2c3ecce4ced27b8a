#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "planning/plan.hpp"
#include "util/error.hpp"

using testfleet::planning::Algorithm;
using testfleet::planning::make_plan;
using testfleet::planning::Plan;
using PlannedTest = testfleet::planning::Test;

namespace {

std::vector<PlannedTest> tests_with(const std::vector<double>& seconds) {
  std::vector<PlannedTest> tests;
  for (std::size_t i = 0; i < seconds.size(); ++i) {
    tests.push_back({"tests/test_" + std::to_string(1000 + i) + ".py::t", seconds[i], false});
  }
  return tests;
}

// Group contents as sets of IDs, comparable across plans made from differently ordered inputs.
std::vector<std::set<std::string>> contents(const Plan& plan) {
  std::vector<std::set<std::string>> out;
  for (const auto& g : plan.groups) {
    std::set<std::string> ids;
    for (std::size_t t : g.tests) ids.insert(plan.tests[t].id);
    out.push_back(ids);
  }
  return out;
}

void expect_partition(const Plan& plan) {
  std::vector<int> seen(plan.tests.size(), 0);
  for (const auto& g : plan.groups) {
    EXPECT_FALSE(g.tests.empty()) << "group " << g.index << " is empty";
    EXPECT_TRUE(std::is_sorted(g.tests.begin(), g.tests.end()))
        << "group " << g.index << " not in collection order";
    for (std::size_t t : g.tests) ++seen[t];
  }
  for (std::size_t t = 0; t < seen.size(); ++t) EXPECT_EQ(seen[t], 1) << plan.tests[t].id;
}

}  // namespace

TEST(Plan, LptBalancesKnownDurations) {
  Plan plan = make_plan(tests_with({5, 4, 3, 3, 2, 2, 1}), 3, Algorithm::kLpt);
  ASSERT_EQ(plan.groups.size(), 3u);
  expect_partition(plan);
  EXPECT_DOUBLE_EQ(plan.total_seconds(), 20);
  EXPECT_LE(plan.makespan_seconds(), 7.0);
  EXPECT_DOUBLE_EQ(plan.lower_bound_seconds(), 20.0 / 3);
}

TEST(Plan, FewerTestsThanGroupsGivesFewerGroupsNeverEmpty) {
  Plan plan = make_plan(tests_with({1, 2}), 8, Algorithm::kLpt);
  EXPECT_EQ(plan.groups.size(), 2u);
  EXPECT_EQ(plan.requested_groups, 8);
  expect_partition(plan);
  Plan chunks = make_plan(tests_with({1, 1, 1, 10}), 3, Algorithm::kChunks);
  EXPECT_EQ(chunks.groups.size(), 3u);
  expect_partition(chunks);
}

TEST(Plan, ChunksTrailingZeroDurationsStillFill) {
  Plan plan = make_plan(tests_with({3, 0, 0, 0, 0}), 4, Algorithm::kChunks);
  EXPECT_EQ(plan.groups.size(), 4u);
  expect_partition(plan);
}

TEST(Plan, ChunksAreContiguousInIdOrder) {
  Plan plan = make_plan(tests_with({1, 2, 3, 4, 5, 6, 7, 8}), 3, Algorithm::kChunks);
  expect_partition(plan);
  std::vector<std::string> flattened;
  for (const auto& g : plan.groups) {
    for (std::size_t t : g.tests) flattened.push_back(plan.tests[t].id);
  }
  EXPECT_TRUE(std::is_sorted(flattened.begin(), flattened.end()));
  EXPECT_LE(plan.makespan_seconds(), 15.0);
}

TEST(Plan, SameGroupsWhateverTheCollectionOrder) {
  std::mt19937 random(42);
  std::lognormal_distribution<double> duration(0.0, 1.0);
  std::vector<PlannedTest> tests;
  for (int i = 0; i < 500; ++i) {
    // Equal durations on purpose: ties must break the same way everywhere.
    tests.push_back({"t/test_" + std::to_string(i) + ".py::x", i % 7 == 0 ? 1.0 : duration(random), false});
  }
  for (Algorithm algorithm : {Algorithm::kLpt, Algorithm::kChunks}) {
    Plan reference = make_plan(tests, 6, algorithm);
    for (int shuffle = 0; shuffle < 5; ++shuffle) {
      std::vector<PlannedTest> shuffled = tests;
      std::shuffle(shuffled.begin(), shuffled.end(), random);
      EXPECT_EQ(contents(make_plan(shuffled, 6, algorithm)), contents(reference));
    }
  }
}

TEST(Plan, LptIsCloseToTheLowerBoundOnManyTests) {
  std::mt19937 random(7);
  std::lognormal_distribution<double> duration(-2.0, 1.0);
  std::vector<PlannedTest> tests;
  for (int i = 0; i < 400; ++i) tests.push_back({"t" + std::to_string(i), duration(random), false});
  Plan plan = make_plan(tests, 4, Algorithm::kLpt);
  EXPECT_LE(plan.makespan_seconds(), plan.lower_bound_seconds() * 1.01);
}

TEST(Plan, DuplicateIdsAreAnError) {
  std::vector<PlannedTest> tests = {{"a", 1, false}, {"a", 1, false}};
  EXPECT_THROW(make_plan(tests, 2, Algorithm::kLpt), testfleet::UsageError);
}

TEST(Plan, NoTestsNoGroups) {
  Plan plan = make_plan({}, 4, Algorithm::kLpt);
  EXPECT_TRUE(plan.groups.empty());
  EXPECT_EQ(plan.lower_bound_seconds(), 0);
}

TEST(Plan, RejectsZeroGroupsAndUnknownAlgorithm) {
  EXPECT_THROW(make_plan(tests_with({1}), 0, Algorithm::kLpt), testfleet::UsageError);
  EXPECT_THROW(testfleet::planning::parse_algorithm("random"), testfleet::UsageError);
}

TEST(Shards, UnionIsTheWholeSuiteWhateverTheOrder) {
  std::mt19937 random(3);
  std::lognormal_distribution<double> duration(0.0, 1.0);
  std::vector<PlannedTest> tests;
  for (int i = 0; i < 300; ++i)
    tests.push_back({"t/test_" + std::to_string(i), duration(random), i % 5 == 0});
  std::multiset<std::string> all;
  for (int k = 1; k <= 4; ++k) {
    std::vector<PlannedTest> shuffled = tests;
    std::shuffle(shuffled.begin(), shuffled.end(), random);
    std::vector<PlannedTest> mine = testfleet::planning::shard_tests(shuffled, k, 4);
    EXPECT_FALSE(mine.empty());
    for (const PlannedTest& t : mine) all.insert(t.id);
  }
  EXPECT_EQ(all.size(), tests.size());
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), tests.size());
}

TEST(Shards, MoreShardsThanTestsAndBadIndices) {
  std::vector<PlannedTest> tests = {{"a", 1, false}, {"b", 2, false}};
  EXPECT_EQ(testfleet::planning::shard_tests(tests, 3, 3).size(), 0u);
  EXPECT_THROW(testfleet::planning::shard_tests(tests, 0, 3), testfleet::UsageError);
  EXPECT_THROW(testfleet::planning::shard_tests(tests, 4, 3), testfleet::UsageError);
}
