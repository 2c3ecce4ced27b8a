#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "execution/worker_channel.hpp"

using testfleet::execution::ChannelReader;
using testfleet::execution::parse_event;
using testfleet::execution::WorkerEvent;

TEST(WorkerChannel, SplitsEventsFromOtherOutputHoweverTheBytesArrive) {
  ChannelReader reader;
  std::string other;
  std::string stream =
      "a warning printed before the plugin took stdout over\n"
      "@testfleet {\"event\": \"collected\", \"ids\": [\"a.py::t1\", \"a.py::t[\\u00e9]\"], \"errors\": 0}\n"
      "@testfleet {\"event\": \"start\", \"id\": \"a.py::t1\", \"file\": \"a.py\", \"line\": 3}\n"
      "@testfleet {\"event\":\"test\",\"id\":\"a.py::t1\",\"outcome\":\"failed\",\"seconds\":0.5,"
      "\"message\":\"boom\"}\n";
  std::vector<WorkerEvent> events;
  for (char c : stream) {  // one byte at a time: a line is an event only once it is whole
    for (WorkerEvent& event : reader.feed(std::string_view(&c, 1), &other))
      events.push_back(std::move(event));
  }
  EXPECT_EQ(other, "a warning printed before the plugin took stdout over\n");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kind, WorkerEvent::Kind::kCollected);
  EXPECT_EQ(events[0].ids, (std::vector<std::string>{"a.py::t1", "a.py::t[\xc3\xa9]"}));
  EXPECT_EQ(events[1].kind, WorkerEvent::Kind::kStart);
  EXPECT_EQ(events[1].file, "a.py");
  EXPECT_EQ(events[1].line, 3);
  EXPECT_EQ(events[2].kind, WorkerEvent::Kind::kTest);
  EXPECT_EQ(events[2].outcome, "failed");
  EXPECT_DOUBLE_EQ(events[2].seconds, 0.5);
  EXPECT_EQ(events[2].message, "boom");
  // The event as it came is what the progress stream keeps.
  EXPECT_EQ(nlohmann::json::parse(events[2].json).at("id"), "a.py::t1");
}

TEST(WorkerChannel, ALineCutByADyingRunnerIsNotAnEvent) {
  ChannelReader reader;
  std::string other;
  EXPECT_TRUE(reader.feed("@testfleet {\"event\": \"test\", \"id\": \"a.py::t2\", \"outc", &other).empty());
  EXPECT_EQ(reader.rest(), "@testfleet {\"event\": \"test\", \"id\": \"a.py::t2\", \"outc");
  EXPECT_TRUE(other.empty());
}

TEST(WorkerChannel, IgnoresWhatIsNotOurs) {
  EXPECT_FALSE(parse_event("@testfleet not json"));
  EXPECT_FALSE(parse_event("@testfleet {\"event\": \"unknown\"}"));
  EXPECT_FALSE(parse_event("@testfleet [1, 2]"));
  EXPECT_FALSE(parse_event("{\"event\": \"test\"}"));  // no marker: a test printed it
  ASSERT_TRUE(parse_event("@testfleet {\"event\": \"finish\"}"));
}

TEST(WorkerChannel, OrdersAreOneJsonLineEach) {
  std::string order = testfleet::execution::run_order({"a.py::t[\"x\"]", "b.py::t\nnewline"});
  ASSERT_EQ(order.back(), '\n');
  EXPECT_EQ(order.find('\n'), order.size() - 1);
  nlohmann::json parsed = nlohmann::json::parse(order);
  EXPECT_EQ(parsed.at("run").at(1), "b.py::t\nnewline");
  EXPECT_EQ(nlohmann::json::parse(testfleet::execution::drain_order()).at("drain"), true);
  EXPECT_EQ(nlohmann::json::parse(testfleet::execution::shutdown_order()).at("shutdown"), true);
}

TEST(WorkerChannel, AFileComesBackDecodedAndOnlyUnderAPlainName) {
  std::optional<WorkerEvent> file = parse_event(
      "@testfleet {\"event\": \"file\", \"name\": \"junit.xml\", \"data\": \"PHRlc3RzdWl0ZS8+\"}");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->kind, WorkerEvent::Kind::kFile);
  EXPECT_EQ(file->file, "junit.xml");
  EXPECT_EQ(file->data, "<testsuite/>");
  // A container does not choose where on this machine its files go, and broken data is no file.
  EXPECT_FALSE(
      parse_event("@testfleet {\"event\": \"file\", \"name\": \"../../etc/x\", \"data\": \"YQ==\"}"));
  EXPECT_FALSE(parse_event("@testfleet {\"event\": \"file\", \"name\": \"..\", \"data\": \"YQ==\"}"));
  EXPECT_FALSE(parse_event("@testfleet {\"event\": \"file\", \"name\": \"x\", \"data\": \"not base64!\"}"));
}

TEST(WorkerChannel, CollectionSkipsAreKeptForTheReport) {
  std::optional<WorkerEvent> collected = parse_event(
      "@testfleet {\"event\": \"collected\", \"ids\": [], \"errors\": 0, \"skips\": [{\"id\": "
      "\"t/test_np.py\", "
      "\"message\": \"could not import 'numpy'\", \"text\": \"t/test_np.py:3: could not import 'numpy'\"}]}");
  ASSERT_TRUE(collected);
  ASSERT_EQ(collected->skips.size(), 1u);
  EXPECT_EQ(collected->skips[0].id, "t/test_np.py");
  EXPECT_EQ(collected->skips[0].message, "could not import 'numpy'");
}
