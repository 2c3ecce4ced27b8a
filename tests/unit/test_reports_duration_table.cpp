#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>

#include "reports/duration_table.hpp"

using testfleet::reports::DurationTable;

TEST(DurationTable, FindsWhatWasSetAndNothingElse) {
  DurationTable table;
  EXPECT_FALSE(table.find("a"));
  table.insert_or_assign("tests/test_a.py::test_x", 0.5);
  table.insert_or_assign("", 2);  // an empty ID is an ID like any other
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.find("tests/test_a.py::test_x"), 0.5);
  EXPECT_EQ(table.find(""), 2);
  EXPECT_FALSE(table.find("tests/test_a.py::test_y"));
  EXPECT_FALSE(table.find("tests/test_a.py::test_x "));
  table.insert_or_assign("tests/test_a.py::test_x", 1.25);
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.find("tests/test_a.py::test_x"), 1.25);
}

TEST(DurationTable, AgreesWithAMapThroughGrowthAndOverwrites) {
  std::mt19937 random(7);
  std::map<std::string, double> expected;
  DurationTable table;
  for (int i = 0; i < 50000; ++i) {
    // Many IDs share long prefixes, as a real suite's do; some are set twice.
    std::string id =
        "tests/module_" + std::to_string(random() % 300) + ".py::test_" + std::to_string(random() % 40000);
    double seconds = static_cast<double>(random() % 1000) / 100;
    expected[id] = seconds;
    table.insert_or_assign(id, seconds);
  }
  ASSERT_EQ(table.size(), expected.size());
  for (const auto& [id, seconds] : expected) ASSERT_EQ(table.find(id), seconds) << id;
  EXPECT_FALSE(table.find("tests/module_1.py::test_40001"));
  std::vector<std::pair<std::string_view, double>> entries = table.entries();
  std::sort(entries.begin(), entries.end());
  ASSERT_EQ(entries.size(), expected.size());
  auto it = expected.begin();
  for (const auto& [id, seconds] : entries) {
    EXPECT_EQ(id, it->first);
    EXPECT_EQ(seconds, it->second);
    ++it;
  }
}

TEST(DurationTable, ReservedRoomChangesNothingButSpeed) {
  DurationTable table;
  table.reserve(1000, 64000);
  for (int i = 0; i < 3000; ++i) table.insert_or_assign("t" + std::to_string(i), i);
  EXPECT_EQ(table.size(), 3000u);
  for (int i = 0; i < 3000; ++i) ASSERT_EQ(table.find("t" + std::to_string(i)), i);
}
