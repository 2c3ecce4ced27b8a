// PostgreSQL's once-per-run part: find the server programs, initdb a template data directory, and copy it
// for each group. initdb takes about a second; a copy of its ~30 MB a fraction of that, which is what
// keeps a group's database ready in well under a second.
//
// Passwords. Every group's copy of the template must end up with a password of its own, and there must be no
// moment at which anyone but testfleet can log in to it. So:
//   - the template is made with a password of the run's own (64 random hex digits, from a file of mode
//     0600 that only the server's user can read, deleted as soon as initdb is done) and a pg_hba.conf that
//     asks every connection, on the private socket or on 127.0.0.1, for a password by SCRAM-SHA-256: no
//     `trust` line, no other address;
//   - a group's copy starts with that password, which no group and no file knows: the test processes get
//     only their own group's;
//   - once the server answers, testfleet logs in with the run's password and runs ALTER ROLE with the
//     SCRAM verifier of the group's password (a fresh salt; the password itself never travels, so neither
//     the server's log nor pg_stat_activity ever holds it), then logs in with the group's password to
//     prove it; only then is the group ready and its variables handed out.
// Until the ALTER ROLE, only testfleet can log in; after it, only the group. There is no window in which a
// server accepts connections without a password (trust) or with one that another party knows, and nothing
// to restart. The cost is two SCRAM logins (a few milliseconds of PBKDF2) per group.
#pragma once

#include <atomic>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "environments/native_server.hpp"

namespace testfleet::environments {

// The directory holding both `postgres` and `initdb`: the newest <root>/<version>/bin for each root (Debian's
// /usr/lib/postgresql/15/bin), else `pg_config --bindir`, else the directory of `postgres` on
// `path_variable`. Nothing when none of them has both.
std::optional<std::filesystem::path> find_postgres_bindir(const std::vector<std::filesystem::path>& roots,
                                                          const std::string& path_variable);

// Runs initdb as `user` into `data_dir` (which must not exist; its parent must): superuser `postgres` with
// password `password` by SCRAM-SHA-256 for local and 127.0.0.1 connections and nothing else (pg_hba.conf),
// UTF8 with the C locale, no fsync, 1 MB WAL segments (less to copy). Throws InfrastructureError with
// initdb's output when it fails.
void make_postgres_template(const std::filesystem::path& bindir, const std::filesystem::path& data_dir,
                            const ServerUser& user, const std::string& password,
                            const std::atomic<bool>& cancel);

// The hand-over at the top of this file: logs in to the server at `address` as postgres with `current`,
// makes `next` the role's password (its SCRAM-SHA-256 verifier, 4096 rounds, a new random salt), then logs
// in with `next`. Throws InfrastructureError with the server's reason.
void replace_postgres_password(const ServerAddress& address, const std::string& current,
                               const std::string& next, util::Clock::time_point deadline);

// The SCRAM-SHA-256 verifier PostgreSQL stores for `password`:
// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", base64 parts.
std::string postgres_scram_verifier(std::string_view password, std::string_view salt, unsigned iterations);

// Copies a data directory (files, directories, symlinks, modes) to `to` (created) and hands every entry to
// `user`. Throws InfrastructureError naming the file that failed.
void copy_data_dir(const std::filesystem::path& from, const std::filesystem::path& to,
                   const ServerUser& user);

// When we are root and servers run as `user`, every directory above `dir` must let that user through;
// throws InfrastructureError naming the first that does not (a TMPDIR under /root, say).
void check_reachable(const std::filesystem::path& dir, const ServerUser& user);

}  // namespace testfleet::environments
