// The native backend, testfleet's default: no Docker, every group gets its own servers as child processes
// of testfleet (PostgreSQL, Redis, or any command from the configuration) on free ports of 127.0.0.1 (or,
// with --listen socket, on Unix sockets in their private directories), each in a private directory under
// one run directory:
//
//   $TMPDIR/testfleet-native-<run_id>-XXXXXX/       mode 0711: servers running as `postgres` pass through
//     template-postgres/                            initdb's output, once per run (Backend::prepare)
//     group-3-XXXXXX/postgres/data/                 a copy of the template, owned by the server's user
//     group-3-XXXXXX/postgres.log                   the server's stdout and stderr
//     group-3-XXXXXX/redis/redis.conf               mode 0600: its settings and its password
//
// Each server of each group has a secret of its own (native_server.hpp), which only that group's variables
// carry; Environment::secrets() lists them for whoever shows text a group may have printed.
//
// Everything started is stopped and everything created removed on every way out: teardown(), finish(), the
// destructors, a failed provisioning. A SIGKILL of testfleet kills the servers too (PR_SET_PDEATHSIG) and
// leaves a state file behind for clean_native_leftovers() (see native_state.hpp).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "environments/environment.hpp"
#include "environments/native_state.hpp"
#include "environments/service_spec.hpp"

namespace testfleet::environments {

struct NativeOptions {
  std::vector<ServiceSpec>
      services;        // in start order; built-ins from builtin_service() or postgres_service()
  std::string run_id;  // names the run directory and the state file; empty: made up
  std::filesystem::path temp_parent;  // empty: TESTFLEET_SERVER_DIR, TMPDIR, /dev/shm (tmpfs) or /tmp
  std::filesystem::path state_dir;    // empty: default_state_dir()
  // Where the built-in servers listen (with_listen_mode()).
  ListenMode listen = ListenMode::kTcp;
  std::chrono::milliseconds stop_grace{5000};
  int port_attempts = 3;  // starts per server when it loses its port to another process
  // Where programs are looked up (PATH's syntax; empty: our PATH) and where PostgreSQL installations live.
  std::string search_path;
  std::vector<std::filesystem::path> postgres_roots = {"/usr/lib/postgresql"};
  std::filesystem::path passwd_file = "/etc/passwd";
};

// Throws UsageError when two services share a name or a variable (check_services).
std::unique_ptr<Backend> make_native_backend(NativeOptions options);

}  // namespace testfleet::environments
