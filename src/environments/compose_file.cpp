#include "environments/compose_file.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <set>

#include "util/error.hpp"
#include "util/strings.hpp"

namespace testfleet::environments {
namespace {

// A port range wider than this is a passive-FTP style block, not something to wait on port by port.
constexpr int kMaxWaitedRange = 16;

std::string where(const std::string& origin, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.line < 0) return origin;
  return fmt::format("{}:{}", origin, mark.line + 1);
}

std::optional<int> parse_int(std::string_view text) {
  int value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

// "7000-7001" or "5432": the ports of one container-side port specification.
std::vector<std::uint16_t> parse_port_range(std::string_view text, const std::string& context) {
  std::string_view first = text;
  std::string_view last = text;
  std::size_t dash = text.find('-');
  if (dash != std::string_view::npos) {
    first = text.substr(0, dash);
    last = text.substr(dash + 1);
  }
  std::optional<int> low = parse_int(util::trim(first));
  std::optional<int> high = parse_int(util::trim(last));
  if (!low || !high || *low < 1 || *high > 65535 || *low > *high) {
    throw UsageError(fmt::format("{}: '{}' is not a port or a port range", context, text));
  }
  std::vector<std::uint16_t> ports;
  if (*high - *low >= kMaxWaitedRange) return ports;
  for (int port = *low; port <= *high; ++port) ports.push_back(static_cast<std::uint16_t>(port));
  return ports;
}

// Short syntax: [HOST_IP:][HOST_PORTS:]CONTAINER_PORTS[/PROTOCOL]. Only the container side matters here.
std::vector<std::uint16_t> parse_port_spec(std::string_view spec, const std::string& context) {
  std::string_view text = util::trim(spec);
  std::size_t slash = text.rfind('/');
  if (slash != std::string_view::npos) {
    std::string_view protocol = text.substr(slash + 1);
    text = text.substr(0, slash);
    if (protocol != "tcp") return {};
  }
  std::size_t colon = text.rfind(':');
  if (colon != std::string_view::npos) text = text.substr(colon + 1);
  return parse_port_range(text, context);
}

std::vector<std::uint16_t> parse_port_entry(const YAML::Node& entry, const std::string& context) {
  if (entry.IsScalar()) return parse_port_spec(entry.Scalar(), context);
  if (entry.IsMap()) {
    const YAML::Node protocol = entry["protocol"];
    if (protocol && protocol.IsScalar() && protocol.Scalar() != "tcp") return {};
    const YAML::Node target = entry["target"];
    if (!target || !target.IsScalar()) {
      throw UsageError(fmt::format("{}: a port in long syntax needs a `target`", context));
    }
    return parse_port_range(target.Scalar(), context);
  }
  throw UsageError(fmt::format("{}: a port must be a number, a string or a map", context));
}

std::vector<std::string> scalar_list(const YAML::Node& node, const std::string& context) {
  std::vector<std::string> out;
  if (!node || node.IsNull()) return out;
  if (node.IsScalar()) {
    out.push_back(node.Scalar());
    return out;
  }
  if (!node.IsSequence()) throw UsageError(fmt::format("{}: expected a list", context));
  for (const YAML::Node& item : node) {
    if (!item.IsScalar()) throw UsageError(fmt::format("{}: expected a list of strings", context));
    out.push_back(item.Scalar());
  }
  return out;
}

ComposeService parse_service(const std::string& name, const YAML::Node& node, const std::string& origin) {
  ComposeService service;
  service.name = name;
  const std::string context = fmt::format("{}: service '{}'", where(origin, node), name);
  if (node.IsNull()) return service;
  if (!node.IsMap()) throw UsageError(fmt::format("{} is not a map", context));

  if (const YAML::Node image = node["image"]; image && image.IsScalar()) service.image = image.Scalar();
  service.builds = static_cast<bool>(node["build"]) && !node["build"].IsNull();
  if (const YAML::Node name_node = node["container_name"]; name_node && name_node.IsScalar()) {
    service.container_name = name_node.Scalar();
  }
  if (const YAML::Node mode = node["network_mode"]; mode && mode.IsScalar())
    service.network_mode = mode.Scalar();

  if (const YAML::Node health = node["healthcheck"]; health && health.IsMap()) {
    const YAML::Node disable = health["disable"];
    const YAML::Node test = health["test"];
    bool none = false;
    if (test && test.IsSequence() && test.size() > 0 && test[0].IsScalar()) none = test[0].Scalar() == "NONE";
    if (test && test.IsScalar()) none = test.Scalar() == "NONE";
    if ((disable && disable.IsScalar() && disable.as<bool>(false)) || none) {
      service.healthcheck_disabled = true;
    } else if (test) {
      service.declares_healthcheck = true;
    }
  }

  if (const YAML::Node depends = node["depends_on"]; depends && !depends.IsNull()) {
    if (depends.IsMap()) {
      for (const auto& entry : depends) service.depends_on.push_back(entry.first.Scalar());
    } else {
      service.depends_on = scalar_list(depends, context + " depends_on");
    }
  }
  service.profiles = scalar_list(node["profiles"], context + " profiles");

  std::set<std::uint16_t> ports;
  for (const char* key : {"ports", "expose"}) {
    const YAML::Node list = node[key];
    if (!list || list.IsNull()) continue;
    if (!list.IsSequence()) throw UsageError(fmt::format("{}: `{}` must be a list", context, key));
    for (const YAML::Node& entry : list) {
      for (std::uint16_t port : parse_port_entry(entry, fmt::format("{} {}", where(origin, entry), key))) {
        ports.insert(port);
      }
    }
  }
  service.tcp_ports.assign(ports.begin(), ports.end());
  return service;
}

YAML::Node load_yaml(std::string_view yaml, const std::string& origin) {
  try {
    return YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& error) {
    throw UsageError(fmt::format("{}:{}: not valid YAML: {}", origin, error.mark.line + 1, error.msg));
  }
}

// yaml-cpp drops the quotes of a quoted scalar on output; it keeps the tag "!" that marks it non-plain.
void emit_preserving_quotes(YAML::Emitter& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      out << YAML::BeginMap;
      for (const auto& entry : node) {
        out << YAML::Key;
        emit_preserving_quotes(out, entry.first);
        out << YAML::Value;
        emit_preserving_quotes(out, entry.second);
      }
      out << YAML::EndMap;
      break;
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (const YAML::Node& item : node) emit_preserving_quotes(out, item);
      out << YAML::EndSeq;
      break;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") out << YAML::DoubleQuoted;
      out << node.Scalar();
      break;
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out << YAML::Null;
      break;
  }
}

std::string fnv1a_hex(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return fmt::format("{:08x}", static_cast<std::uint32_t>(hash ^ (hash >> 32)));
}

}  // namespace

const ComposeService* ComposeModel::find(std::string_view name) const {
  for (const ComposeService& service : services) {
    if (service.name == name) return &service;
  }
  return nullptr;
}

std::vector<std::string> ComposeModel::service_names() const {
  std::vector<std::string> names;
  for (const ComposeService& service : services) names.push_back(service.name);
  return names;
}

std::string strip_compose_warnings(std::string_view output) {
  std::string yaml;
  for (const std::string& line : util::split_lines(output)) {
    if (util::starts_with(line, "WARNING") || util::starts_with(line, "WARN[") ||
        util::starts_with(line, "time=\"")) {
      continue;
    }
    yaml += line;
    yaml += '\n';
  }
  return yaml;
}

ComposeModel parse_compose_model(std::string_view yaml, const std::string& origin) {
  YAML::Node root = load_yaml(yaml, origin);
  if (!root.IsMap())
    throw UsageError(fmt::format("{}: not a compose file (the top level is not a map)", origin));
  ComposeModel model;
  model.origin = origin;
  if (const YAML::Node version = root["version"]; version && version.IsScalar())
    model.version = version.Scalar();
  const YAML::Node services = root["services"];
  if (!services || !services.IsMap()) {
    throw UsageError(fmt::format("{}: not a compose file (no `services` map)", origin));
  }
  for (const auto& entry : services) {
    model.services.push_back(parse_service(entry.first.Scalar(), entry.second, origin));
  }
  return model;
}

namespace {

void require_service(const ComposeModel& model, const std::string& name, std::string_view role) {
  if (model.find(name) != nullptr) return;
  throw UsageError(fmt::format("{} has no service '{}' ({}); its services: {}", model.origin, name, role,
                               util::join(model.service_names(), ", ")));
}

}  // namespace

std::vector<std::string> with_dependencies(const ComposeModel& model,
                                           const std::vector<std::string>& services) {
  std::vector<std::string> ordered;
  std::set<std::string> seen;
  std::function<void(const std::string&, const std::string&)> visit = [&](const std::string& name,
                                                                          const std::string& needed_by) {
    if (!seen.insert(name).second) return;
    const ComposeService* service = model.find(name);
    if (service == nullptr) {
      require_service(model, name, needed_by.empty() ? "asked for" : "depends_on of " + needed_by);
    }
    for (const std::string& dependency : service->depends_on) visit(dependency, name);
    ordered.push_back(name);
  };
  for (const std::string& name : services) visit(name, "");
  return ordered;
}

std::vector<std::string> select_sidecars(const ComposeModel& model, const std::string& service,
                                         const std::vector<std::string>& requested) {
  require_service(model, service, "the test service");
  std::vector<std::string> roots;
  if (!requested.empty()) {
    for (const std::string& name : requested) require_service(model, name, "a sidecar");
    roots = requested;
  } else {
    // Through the test service itself, so that a missing dependency is named as its depends_on.
    if (!model.find(service)->depends_on.empty()) roots = {service};
    if (roots.empty()) {
      for (const ComposeService& other : model.services) {
        if (other.name == service || !other.profiles.empty()) continue;
        // A service that needs the test service (a proxy in front of it) is no sidecar of the tests.
        std::vector<std::string> needs = with_dependencies(model, {other.name});
        if (std::find(needs.begin(), needs.end(), service) != needs.end()) continue;
        roots.push_back(other.name);
      }
    }
  }
  std::vector<std::string> sidecars = with_dependencies(model, roots);
  std::erase(sidecars, service);
  return sidecars;
}

WaitTarget parse_wait_target(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    throw UsageError(fmt::format("--wait '{}': expected SERVICE:PORT, such as db:5432", text));
  }
  std::optional<int> port = parse_int(text.substr(colon + 1));
  if (!port || *port < 1 || *port > 65535) {
    throw UsageError(fmt::format("--wait '{}': '{}' is not a port (1-65535)", text, text.substr(colon + 1)));
  }
  return WaitTarget{std::string(text.substr(0, colon)), static_cast<std::uint16_t>(*port)};
}

std::string sanitize_project_part(std::string_view text) {
  std::string out;
  for (char c : text) {
    char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    bool allowed =
        (lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9') || lower == '_' || lower == '-';
    out += allowed ? lower : '-';
  }
  std::size_t first = out.find_first_not_of("-_");
  if (first == std::string::npos) return "x";
  std::size_t last = out.find_last_not_of("-_");
  return out.substr(first, last - first + 1);
}

std::string compose_project_name(std::string_view run_id, std::string_view suffix) {
  return fmt::format("testfleet-{}-{}", sanitize_project_part(run_id), sanitize_project_part(suffix));
}

std::string compose_project_prefix(const std::optional<std::string>& run_id) {
  if (!run_id) return "testfleet-";
  return fmt::format("testfleet-{}-", sanitize_project_part(*run_id));
}

std::string runtime_image_name(const std::filesystem::path& first_compose_file, const std::string& service) {
  std::filesystem::path absolute = std::filesystem::absolute(first_compose_file).lexically_normal();
  std::string folder = sanitize_project_part(absolute.parent_path().filename().string());
  return fmt::format("testfleet-{}-{}-{}", folder, fnv1a_hex(absolute.string()),
                     sanitize_project_part(service));
}

std::string render_runtime_compose(std::string_view config_yaml,
                                   const std::map<std::string, std::string>& images,
                                   const std::string& origin) {
  YAML::Node root = load_yaml(config_yaml, origin);
  if (!root.IsMap() || !root["services"] || !root["services"].IsMap()) {
    throw UsageError(fmt::format("{}: not a compose file (no `services` map)", origin));
  }
  YAML::Node services = root["services"];
  for (auto entry : services) {
    YAML::Node service = entry.second;
    if (!service.IsMap()) continue;
    service.remove("ports");
    service.remove("container_name");
    auto image = images.find(entry.first.Scalar());
    if (image != images.end()) service["image"] = image->second;
  }
  // Compose v2 writes the project name it resolved into `config` output, and names every network and
  // volume after it ("shop_default"): kept, all projects would share one network and one volume. Names
  // the user chose (any other name, or external ones) stay.
  if (const YAML::Node project = root["name"]; project && project.IsScalar()) {
    const std::string prefix = project.Scalar() + "_";
    for (const char* section : {"networks", "volumes"}) {
      YAML::Node entries = root[section];
      if (!entries || !entries.IsMap()) continue;
      for (auto entry : entries) {
        YAML::Node definition = entry.second;
        if (!definition.IsMap() || !definition["name"] || !definition["name"].IsScalar()) continue;
        const YAML::Node external = definition["external"];
        if (external && external.IsScalar() && external.as<bool>(false)) continue;
        if (definition["name"].Scalar() == prefix + entry.first.Scalar()) definition.remove("name");
      }
    }
    root.remove("name");
  }
  YAML::Emitter out;
  out.SetOutputCharset(YAML::EmitNonAscii);
  emit_preserving_quotes(out, root);
  return std::string(out.c_str()) + "\n";
}

}  // namespace testfleet::environments
