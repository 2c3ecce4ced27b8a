// What testfleet needs to know of a compose project, read from `docker compose config` output (or a compose
// file as written): the services, what each builds or runs, what it depends on, which TCP ports it serves.
//
// Every group runs the same compose project under its own project name, at the same time. A compose file
// written for one developer does not survive that as it is: a fixed host port ("5432:5432") or a
// `container_name` collides between projects, and a service that only has `build:` is built once per
// project (compose names the image after the project). render_runtime_compose() therefore rewrites the
// resolved configuration once per run: host port publishing and container names go (tests reach sidecars by
// service name on the project network), and every service that builds gets one fixed image name, so
// that Backend::prepare() builds it once and every project runs that image.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace testfleet::environments {

struct ComposeService {
  std::string name;
  std::string image;  // empty when the file names none
  bool builds = false;
  // A healthcheck written in the compose file; one baked into the image shows only at run time.
  bool declares_healthcheck = false;
  bool healthcheck_disabled = false;
  std::vector<std::string> depends_on;
  // Container-side TCP ports from `ports:` and `expose:`, sorted, without duplicates.
  std::vector<std::uint16_t> tcp_ports;
  std::vector<std::string> profiles;
  std::string container_name;
  std::string network_mode;
};

struct ComposeModel {
  std::string origin;                    // the files it came from, for messages
  std::string version;                   // the top-level `version:`, empty when absent
  std::vector<ComposeService> services;  // in the order of the text

  const ComposeService* find(std::string_view name) const;
  std::vector<std::string> service_names() const;
};

// `config` output read together with compose's stderr, without the warning lines (v1 "WARNING: ...", v2
// "WARN[0000] ..." or "time=... level=warning"). They start in the first column, where a document line
// only ever has a top-level key, and no top-level compose key looks like them.
std::string strip_compose_warnings(std::string_view output);

// Parses a compose file or `config` output: short and long port syntax, port ranges, depends_on as a list
// or a map. Throws UsageError naming `origin` (and the line) when the text is not YAML or not a compose
// project (no `services` map, a service that is not a map, a port that is not a port).
ComposeModel parse_compose_model(std::string_view yaml, const std::string& origin);

// The services to start before the tests: `requested` when given (each must exist); otherwise the test
// service's depends_on, followed transitively; otherwise, when it depends on nothing, every other service
// that has no profile. Throws UsageError naming the file, the unknown service and the services it has.
std::vector<std::string> select_sidecars(const ComposeModel& model, const std::string& service,
                                         const std::vector<std::string>& requested);

// `service` followed by everything it depends on, transitively, without duplicates.
std::vector<std::string> with_dependencies(const ComposeModel& model,
                                           const std::vector<std::string>& services);

// An explicit readiness wait, `--wait db:5432`.
struct WaitTarget {
  std::string service;
  std::uint16_t port = 0;
  bool operator==(const WaitTarget&) const = default;
};

// Parses SERVICE:PORT; throws UsageError naming the text.
WaitTarget parse_wait_target(std::string_view text);

// Compose project names allow [a-z0-9_-] and start with a letter or digit. Lowercases, turns every other
// character into '-'.
std::string sanitize_project_part(std::string_view text);

// "testfleet-<run id>-<suffix>": the one naming scheme `clean` relies on.
std::string compose_project_name(std::string_view run_id, std::string_view suffix);
// "testfleet-" or "testfleet-<run id>-": every project of all runs, or of one run, starts with it.
std::string compose_project_prefix(const std::optional<std::string>& run_id);

// The fixed image name a service that builds gets, the same for every run of the same compose file:
// "testfleet-<folder>-<hash of the file's path>-<service>". Docker's layer cache makes a rebuild cheap.
std::string runtime_image_name(const std::filesystem::path& first_compose_file, const std::string& service);

// The resolved configuration (`config` output) rewritten for parallel projects: `ports` and
// `container_name` removed from every service, `image` set for the services in `images`, and the project
// name that compose v2 bakes into `config` output (top-level `name`, network and volume names derived from
// it) removed so that `-p` decides them again. Scalars quoted in
// the input stay quoted, so strings such as "yes" or "8080" keep their type. Throws UsageError naming
// `origin` when the text is not YAML.
std::string render_runtime_compose(std::string_view config_yaml,
                                   const std::map<std::string, std::string>& images,
                                   const std::string& origin);

}  // namespace testfleet::environments
