#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "reports/durations.hpp"
#include "util/error.hpp"
#include "util/files.hpp"

using testfleet::UsageError;
using testfleet::reports::DurationStore;
using testfleet::reports::JUnitKey;
using testfleet::util::TempDir;
using testfleet::util::write_file_atomic;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(DurationStore, ReadsPytestSplitFilesAndWritesThemBackSorted) {
  TempDir dir("tf-durations-");
  write_file_atomic(dir.path() / ".test_durations", R"({"b.py::t": 2.5, "a.py::t[x y]": 0.25})");
  DurationStore store;
  store.load_test_durations(dir.path() / ".test_durations");
  EXPECT_EQ(store.size(), 2u);
  EXPECT_DOUBLE_EQ(*store.lookup("b.py::t"), 2.5);
  EXPECT_FALSE(store.lookup("c.py::t"));
  store.set("c.py::t", 1);
  std::string text = store.to_test_durations_json();
  EXPECT_EQ(text, "{\n    \"a.py::t[x y]\": 0.25,\n    \"b.py::t\": 2.5,\n    \"c.py::t\": 1.0\n}\n");
}

TEST(DurationStore, HostileFilesAreClearErrors) {
  TempDir dir("tf-durations-");
  auto load = [&](const std::string& content) {
    write_file_atomic(dir.path() / "d.json", content);
    return error_of([&] { DurationStore().load_test_durations(dir.path() / "d.json"); });
  };
  EXPECT_NE(load("{\n  \"a\": 1,\n  oops\n}").find("d.json:3:"), std::string::npos);
  EXPECT_NE(load("[1, 2]").find("JSON object"), std::string::npos);
  EXPECT_NE(load(R"({"a": -1})").find("'a'"), std::string::npos);
  EXPECT_NE(load(R"({"a": "fast"})").find("must be a number"), std::string::npos);
  EXPECT_NE(load(R"({"a": 1e300})").find("between 0 and"), std::string::npos);
  EXPECT_NE(load("NaN").find("d.json:1:"), std::string::npos);
  EXPECT_NE(load("").find("d.json"), std::string::npos);
  EXPECT_NE(error_of([&] {
              DurationStore().load_test_durations(dir.path() / "missing.json");
            }).find("missing.json"),
            std::string::npos);
}

TEST(DurationStore, OnlyAFlatObjectOfNumbersIsADurationsFile) {
  TempDir dir("tf-durations-");
  auto load = [&](const std::string& content) {
    write_file_atomic(dir.path() / "d.json", content);
    return error_of([&] { DurationStore().load_test_durations(dir.path() / "d.json"); });
  };
  EXPECT_NE(load(R"({"a": {"b": 1}})").find("'a' must be a number of seconds, not an object"),
            std::string::npos);
  EXPECT_NE(load(R"({"a": [1]})").find("'a' must be a number of seconds, not an array"), std::string::npos);
  EXPECT_NE(load(R"({"a": null})").find("not null"), std::string::npos);
  EXPECT_NE(load(R"({"a": true})").find("not true"), std::string::npos);
  EXPECT_NE(load("42").find("JSON object of test ID to seconds, not a number"), std::string::npos);
  EXPECT_NE(load(R"("x")").find("JSON object"), std::string::npos);
  EXPECT_NE(load(R"({"a": 1} {"b": 2})").find("d.json:1:"), std::string::npos);
  EXPECT_NE(load(std::string(100000, '[')).find("JSON object"), std::string::npos);
  EXPECT_NE(load(R"({"a": 1e400})").find("d.json:1:"), std::string::npos);  // overflows: not a number
  EXPECT_EQ(load("{}"), "");
}

TEST(DurationStore, AKeyGivenTwiceTakesItsLastValueAndLaterFilesWin) {
  TempDir dir("tf-durations-");
  write_file_atomic(dir.path() / "one.json", R"({"t": 1, "u": 2, "t": 3})");
  write_file_atomic(dir.path() / "two.json", R"({"u": 5, "v": 0})");
  DurationStore store;
  store.load_test_durations(dir.path() / "one.json");
  EXPECT_DOUBLE_EQ(*store.lookup("t"), 3);
  store.load_test_durations(dir.path() / "two.json");
  EXPECT_EQ(store.size(), 3u);
  EXPECT_DOUBLE_EQ(*store.lookup("u"), 5);
  EXPECT_DOUBLE_EQ(*store.lookup("v"), 0);
}

TEST(DurationStore, JUnitTimesAnswerByKey) {
  TempDir dir("tf-durations-");
  write_file_atomic(
      dir.path() / "unit.xml",
      "<testsuites><testsuite name='pytest'>"
      "<testcase classname='tests.test_a.TestX' name='test_y[p]' time='1.5'/>"
      "<testcase classname='tests.test_a' name='test_z' time='0.5'><failure message='m'/></testcase>"
      "<testcase classname='tests.test_a' name='test_z' time='0.75'><error message='teardown'/></testcase>"
      "</testsuite></testsuites>");
  DurationStore store;
  store.load_junit(dir.path() / "unit.xml");
  JUnitKey key{"tests.test_a.TestX", "test_y[p]"};
  EXPECT_DOUBLE_EQ(*store.lookup("tests/test_a.py::TestX::test_y[p]", &key), 1.5);
  JUnitKey twice{"tests.test_a", "test_z"};
  EXPECT_DOUBLE_EQ(*store.lookup("tests/test_a.py::test_z", &twice), 0.75);
  JUnitKey unknown{"x", "y"};
  EXPECT_FALSE(store.lookup("x.py::y", &unknown));
}
