#include "execution/worker_channel.hpp"

#include <nlohmann/json.hpp>

#include "util/strings.hpp"

namespace testfleet::execution {
namespace {

constexpr std::string_view kMarker = "@testfleet ";

std::optional<WorkerEvent::Kind> kind_of(const std::string& name) {
  if (name == "collected") return WorkerEvent::Kind::kCollected;
  if (name == "start") return WorkerEvent::Kind::kStart;
  if (name == "test") return WorkerEvent::Kind::kTest;
  if (name == "missing") return WorkerEvent::Kind::kMissing;
  if (name == "finish") return WorkerEvent::Kind::kFinish;
  if (name == "file") return WorkerEvent::Kind::kFile;
  return std::nullopt;
}

}  // namespace

std::optional<WorkerEvent> parse_event(std::string_view line) {
  if (!line.starts_with(kMarker)) return std::nullopt;
  line.remove_prefix(kMarker.size());
  nlohmann::json object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!object.is_object()) return std::nullopt;
  auto name = object.find("event");
  if (name == object.end() || !name->is_string()) return std::nullopt;
  std::optional<WorkerEvent::Kind> kind = kind_of(name->get<std::string>());
  if (!kind) return std::nullopt;
  WorkerEvent event;
  event.kind = *kind;
  auto string_of = [&](const char* key) {
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto number_of = [&](const char* key) {
    auto it = object.find(key);
    return it != object.end() && it->is_number() ? it->get<double>() : 0.0;
  };
  event.id = string_of("id");
  event.outcome = string_of("outcome");
  event.message = string_of("message");
  event.teardown_error = string_of("teardown_error");
  event.file = string_of("file");
  event.seconds = number_of("seconds");
  event.time = number_of("time");
  event.line = static_cast<long>(number_of("line"));
  event.collection_errors = static_cast<std::size_t>(number_of("errors"));
  if (auto ids = object.find("ids"); ids != object.end() && ids->is_array()) {
    event.ids.reserve(ids->size());
    for (const nlohmann::json& id : *ids) {
      if (id.is_string()) event.ids.push_back(id.get<std::string>());
    }
  }
  if (auto skips = object.find("skips"); skips != object.end() && skips->is_array()) {
    for (const nlohmann::json& skip : *skips) {
      if (!skip.is_object()) continue;
      event.skips.push_back({skip.value("id", ""), skip.value("message", ""), skip.value("text", "")});
    }
  }
  if (event.kind == WorkerEvent::Kind::kFile) {
    // A plain file name only: a container does not choose where on this machine its files go.
    event.file = string_of("name");
    std::optional<std::string> data = util::base64_decode(string_of("data"));
    if (!data || event.file.empty() || event.file.find('/') != std::string::npos || event.file == "." ||
        event.file == "..") {
      return std::nullopt;
    }
    event.data = std::move(*data);
    return event;
  }
  if (event.kind != WorkerEvent::Kind::kCollected) event.json = std::string(line);
  return event;
}

std::vector<WorkerEvent> ChannelReader::feed(std::string_view bytes, std::string* other) {
  std::vector<WorkerEvent> events;
  partial_.append(bytes);
  std::size_t start = 0;
  for (std::size_t nl = partial_.find('\n'); nl != std::string::npos; nl = partial_.find('\n', start)) {
    std::string_view line(partial_.data() + start, nl - start);
    if (std::optional<WorkerEvent> event = parse_event(line)) {
      events.push_back(std::move(*event));
    } else if (other != nullptr) {
      other->append(line);
      other->push_back('\n');
    }
    start = nl + 1;
  }
  partial_.erase(0, start);
  return events;
}

std::string run_order(const std::vector<std::string>& ids) {
  return nlohmann::json{{"run", ids}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string drain_order() {
  return "{\"drain\": true}\n";
}

std::string shutdown_order() {
  return "{\"shutdown\": true}\n";
}

std::string test_event(const std::string& id, const std::string& outcome, double seconds) {
  nlohmann::json event = {{"event", "test"}, {"id", id}, {"outcome", outcome}, {"seconds", seconds}};
  return event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace testfleet::execution
