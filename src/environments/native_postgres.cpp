#include "environments/native_postgres.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/error.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace testfleet::environments {
namespace {

bool has_server_programs(const std::filesystem::path& bindir) {
  return util::find_executable((bindir / "postgres").string(), "").has_value() &&
         util::find_executable((bindir / "initdb").string(), "").has_value();
}

// "15" -> {15}, "9.6" -> {9, 6}; nothing for a name that is not a version.
std::optional<std::vector<int>> parse_version(const std::string& name) {
  std::vector<int> parts;
  for (const std::string& part : util::split(name, '.')) {
    if (part.empty() || part.size() > 6 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    parts.push_back(std::stoi(part));
  }
  return parts;
}

void chown_entry(const std::filesystem::path& path, const ServerUser& user) {
  if (!user.uid) return;
  if (::lchown(path.c_str(), *user.uid, user.gid.value_or(static_cast<gid_t>(-1))) != 0) {
    throw InfrastructureError(
        fmt::format("cannot give {} to user {}: {}", path.string(), user.name, std::strerror(errno)));
  }
}

}  // namespace

std::optional<std::filesystem::path> find_postgres_bindir(const std::vector<std::filesystem::path>& roots,
                                                          const std::string& path_variable) {
  for (const std::filesystem::path& root : roots) {
    std::vector<std::pair<std::vector<int>, std::filesystem::path>> versions;
    std::error_code ec;
    for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator(root, ec)) {
      if (std::optional<std::vector<int>> version = parse_version(entry.path().filename().string())) {
        versions.emplace_back(*version, entry.path() / "bin");
      }
    }
    std::sort(versions.begin(), versions.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [version, bindir] : versions) {
      if (has_server_programs(bindir)) return bindir;
    }
  }
  if (std::optional<std::filesystem::path> pg_config = util::find_executable("pg_config", path_variable)) {
    util::SpawnSpec spec;
    spec.argv = {pg_config->string(), "--bindir"};
    util::CommandResult result = util::run_command(spec, std::chrono::milliseconds(10000));
    std::filesystem::path bindir{std::string(util::trim(result.output))};
    if (result.status.success() && has_server_programs(bindir)) return bindir;
  }
  if (std::optional<std::filesystem::path> postgres = util::find_executable("postgres", path_variable)) {
    if (has_server_programs(postgres->parent_path())) return postgres->parent_path();
  }
  return std::nullopt;
}

void make_postgres_template(const std::filesystem::path& bindir, const std::filesystem::path& data_dir,
                            const ServerUser& user, const std::atomic<bool>& cancel) {
  if (cancel.load()) throw InfrastructureError("postgres: cancelled before initdb");
  make_owned_dir(data_dir, user, 0700);
  std::filesystem::path password_file = data_dir.parent_path() / (data_dir.filename().string() + ".password");
  util::write_file_atomic(password_file, "postgres\n");
  ::chmod(password_file.c_str(), 0600);
  chown_entry(password_file, user);

  util::SpawnSpec spec;
  spec.argv = {(bindir / "initdb").string(),
               "-D",
               data_dir.string(),
               "-U",
               "postgres",
               "--auth=trust",
               "--pwfile=" + password_file.string(),
               "-E",
               "UTF8",
               "--locale=C",
               "--no-sync",
               "--wal-segsize=1"};
  util::EnvVars env = util::current_environment();
  env.erase("PGDATA");
  spec.env = std::move(env);
  spec.cwd = data_dir;
  spec.uid = user.uid;
  spec.gid = user.gid;
  spec.die_with_parent = true;
  util::CommandResult result = util::run_command(spec, std::chrono::milliseconds(120000));
  std::error_code ignored;
  std::filesystem::remove(password_file, ignored);
  if (!result.status.success() || result.timed_out) {
    throw InfrastructureError(fmt::format("postgres: {} {}{}; its output ends with:\n{}",
                                          util::shell_join(spec.argv),
                                          result.timed_out ? "timed out" : result.status.describe(),
                                          user.name.empty() ? "" : fmt::format(" (as user {})", user.name),
                                          util::tail_lines(result.output, 20)));
  }
}

void copy_data_dir(const std::filesystem::path& from, const std::filesystem::path& to,
                   const ServerUser& user) {
  struct stat root {};
  if (::stat(from.c_str(), &root) != 0) {
    throw InfrastructureError(fmt::format("cannot read {}: {}", from.string(), std::strerror(errno)));
  }
  make_owned_dir(to, user, root.st_mode & 07777);
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(from, ec);
  for (; !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::filesystem::path& source = it->path();
    std::filesystem::path target = to / source.lexically_relative(from);
    std::filesystem::file_status status = it->symlink_status(ec);
    if (ec) break;
    if (std::filesystem::is_directory(status)) {
      make_owned_dir(target, user, static_cast<unsigned>(status.permissions()));
      continue;
    }
    if (std::filesystem::is_symlink(status)) {
      std::filesystem::copy_symlink(source, target, ec);
    } else if (std::filesystem::is_regular_file(status)) {
      std::filesystem::copy_file(source, target, ec);
      if (!ec) std::filesystem::permissions(target, status.permissions(), ec);
    } else {
      continue;  // sockets and fifos are the server's own, recreated when it starts
    }
    if (ec) {
      throw InfrastructureError(
          fmt::format("cannot copy {} to {}: {}", source.string(), target.string(), ec.message()));
    }
    chown_entry(target, user);
  }
  if (ec) throw InfrastructureError(fmt::format("cannot copy {}: {}", from.string(), ec.message()));
}

void check_reachable(const std::filesystem::path& dir, const ServerUser& user) {
  if (!user.uid) return;
  for (std::filesystem::path path = dir; !path.empty(); path = path.parent_path()) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      throw InfrastructureError(fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
    }
    mode_t needed = st.st_uid == *user.uid                 ? S_IXUSR
                    : (user.gid && st.st_gid == *user.gid) ? S_IXGRP
                                                           : S_IXOTH;
    if ((st.st_mode & needed) == 0) {
      throw InfrastructureError(
          fmt::format("servers run as user {} (PostgreSQL refuses root), who cannot enter {} (mode {:04o}); "
                      "use a temporary "
                      "directory it can reach, e.g. TMPDIR=/tmp",
                      user.name, path.string(), st.st_mode & 07777));
    }
    if (path == path.root_path()) break;
  }
}

}  // namespace testfleet::environments
