// Groups in Docker Compose projects: every group gets its own project (`-p testfleet-<run id>-g<N>`), so
// its own network, database and cache, started from the user's compose file; the test command runs in the
// test service with `run --rm`, the run's reports directory bind-mounted into it.
//
// Once per run, prepare() resolves the compose files (`config`), writes the runtime compose file that every
// project uses (see compose_file.hpp: no fixed host ports, no container names, one image name per built
// service) and builds those images once. Each group then only does `up -d` of its sidecars, waits for them,
// runs, and `down -v` in teardown().
//
// Readiness: a container with a healthcheck (from the compose file or the image) is ready when Docker says
// "healthy". One without is ready when its TCP ports (compose `ports`/`expose`, else the image's EXPOSE)
// accept a connection. The connection goes from this host to the container's address on the project
// network, read with `docker inspect`: that works for a local engine (the bridge networks are routed on
// this host), tests the server itself rather than a port forwarder (a published port accepts connections
// before the server listens), and needs nothing installed in the sidecar image. With a remote engine
// (DOCKER_HOST=tcp://...) container addresses are not reachable: give such sidecars healthchecks.
//
// Several engines (`docker_hosts`): one machine's cores run out long before a large suite does, so the
// groups can be spread over other machines' Docker engines. prepare() asks every engine for its CPU count
// (`docker info`) and builds the images on every one of them (in parallel, one build per host); group N of
// a run then goes to its host by assign_groups_to_hosts(), and every docker and compose command of that
// group (`up`, the readiness checks, the wrapped test command, `down`, the sweep by label) carries that
// host's DOCKER_HOST. Discovery and the coverage combine run on the first host. What a remote engine needs:
// the reports directory is bind-mounted by its path, so it must exist at the same path on that machine
// (a shared filesystem such as NFS, or an engine on this machine: another socket, a tcp port here); and
// sidecars need healthchecks, as above. Builds need nothing shared: the client sends the build context.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "environments/environment.hpp"

namespace testfleet::environments {

struct ComposeOptions {
  // --compose FILE, repeatable like compose's own -f; the first one's folder is the project directory.
  std::vector<std::filesystem::path> files;
  // --service: the service the test command runs in.
  std::string service;
  // --sidecar: the services to start first. Empty: the service's depends_on (transitively), or every
  // other service when it depends on nothing.
  std::vector<std::string> sidecars;
  // --wait SERVICE:PORT, waited for on top of healthchecks and ports.
  std::vector<std::string> waits;
  // --compose-command: empty means $TESTFLEET_COMPOSE, then `docker compose`, then `docker-compose`.
  std::vector<std::string> compose_command;
  // --no-build: use the images that exist (from an earlier run) instead of building.
  bool no_build = false;
  // --ready-timeout: how long a group's sidecars may take to become ready, from when `up` has started them.
  std::chrono::seconds ready_timeout{180};
  std::chrono::seconds build_timeout{1800};
  // How long `down` lets a container stop before killing it: sidecars hold throwaway data.
  std::chrono::seconds stop_timeout{1};
  // Where the run's reports directory appears inside the test service.
  std::filesystem::path reports_mount = "/testfleet-reports";
  // --docker-host, repeatable: the engines the groups are spread over (unix://, tcp:// or ssh:// addresses).
  // Empty: the one engine DOCKER_HOST (or the client's default) names.
  std::vector<std::string> docker_hosts;
};

// Which host each of `count` groups runs on: index into `capacities` (one per host, such as its CPU count;
// 0 when unknown) for groups 1..count in order. Every host's share is proportional to its capacity (largest
// remainders round, ties to the earlier host); unknown capacities count as the mean of the known ones, or
// all hosts equal when none is known. A host's groups are consecutive. Throws std::invalid_argument when
// `capacities` is empty.
std::vector<std::size_t> assign_groups_to_hosts(int count, const std::vector<int>& capacities);

// Throws UsageError when the options are incomplete (no file, no service, a bad --wait, a docker host that is
// not a Docker address or given twice). Nothing touches Docker before prepare(), which must run before
// discovery_environment() and create().
std::unique_ptr<Backend> make_compose_backend(ComposeOptions options);

}  // namespace testfleet::environments
