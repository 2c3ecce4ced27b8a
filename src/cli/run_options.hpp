#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "environments/service_spec.hpp"

namespace testfleet::cli {

// Everything `run` and `plan` take, from flags and from configuration (flags win).
struct RunOptions {
  int groups = 0;  // 0: one per core
  std::string algorithm = "lpt";
  std::string schedule = "dynamic";  // dynamic (workers take queued tests from each other) or static
  int max_worker_restarts = 3;       // runner restarts for the whole run, after a runner died
  bool allow_no_tests = false;       // a suite that collects nothing exits 0, not 5
  std::vector<std::filesystem::path> durations;        // .test_durations files
  std::vector<std::filesystem::path> durations_junit;  // JUnit files of earlier runs
  bool store_durations = false;
  std::filesystem::path store_durations_path;  // default: the first durations file, else .test_durations
  std::filesystem::path reports_dir = "testfleet-reports";
  std::optional<double> timeout;  // seconds, per group
  double kill_grace = 10;         // seconds between the stop signal and KILL
  bool dry_run = false;
  std::string runner = "auto";        // auto, pytest, generic
  std::string list_command;           // generic runner: the command that lists test IDs
  std::vector<std::string> services;  // --with
  std::string listen = "tcp";         // --listen: where the built-in servers listen, tcp or socket
  // [services.NAME] tables: services of the user's own, or built-ins with other settings.
  std::vector<environments::ServiceConfig> service_configs;
  std::vector<std::filesystem::path> compose_files;  // --compose, repeatable like compose's -f
  std::string compose_service;
  std::vector<std::string> sidecars;      // --sidecar: default the service's depends_on
  std::vector<std::string> docker_hosts;  // --docker-host: engines to spread groups over
  std::string compose_command;            // --compose-command: default docker compose, else docker-compose
  bool no_build = false;
  std::vector<std::string> waits;  // --wait HOST:PORT for compose sidecars
  int ready_timeout = 0;           // --ready-timeout: seconds for a group's sidecars; 0: the default, 180
  std::string shard;               // --shard K/N, "off", or empty: detected from the CI system
  int shards = 0;                  // --shards: the count for a Kubernetes Indexed Job
  std::string ci = "auto";
  std::string progress = "auto";      // auto, smart, plain
  std::string format = "text";        // plan's output
  std::vector<std::string> command;   // the test command, after --
  std::filesystem::path config_file;  // where configuration came from, for messages
};

}  // namespace testfleet::cli
