// PostgreSQL's once-per-run part: find the server programs, initdb a template data directory, and copy it
// for each group. initdb takes about a second; a copy of its ~30 MB a fraction of that, which is what
// keeps a group's database ready in well under a second.
#pragma once

#include <atomic>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "environments/native_server.hpp"

namespace testfleet::environments {

// The directory holding both `postgres` and `initdb`: the newest <root>/<version>/bin for each root (Debian's
// /usr/lib/postgresql/15/bin), else `pg_config --bindir`, else the directory of `postgres` on
// `path_variable`. Nothing when none of them has both.
std::optional<std::filesystem::path> find_postgres_bindir(const std::vector<std::filesystem::path>& roots,
                                                          const std::string& path_variable);

// Runs initdb as `user` into `data_dir` (which must not exist; its parent must): superuser `postgres` with
// password `postgres`, trust authentication, UTF8 with the C locale, no fsync, 1 MB WAL segments (less to
// copy). Throws InfrastructureError with initdb's output when it fails.
void make_postgres_template(const std::filesystem::path& bindir, const std::filesystem::path& data_dir,
                            const ServerUser& user, const std::atomic<bool>& cancel);

// Copies a data directory (files, directories, symlinks, modes) to `to` (created) and hands every entry to
// `user`. Throws InfrastructureError naming the file that failed.
void copy_data_dir(const std::filesystem::path& from, const std::filesystem::path& to,
                   const ServerUser& user);

// When we are root and servers run as `user`, every directory above `dir` must let that user through;
// throws InfrastructureError naming the first that does not (a TMPDIR under /root, say).
void check_reachable(const std::filesystem::path& dir, const ServerUser& user);

}  // namespace testfleet::environments
