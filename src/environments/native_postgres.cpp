#include "environments/native_postgres.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "environments/native_postgres_session.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/scram.hpp"
#include "util/secrets.hpp"
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

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

[[noreturn]] void fail(const std::filesystem::path& path, const char* step) {
  throw InfrastructureError(
      fmt::format("cannot copy {}: {} failed: {}", path.string(), step, std::strerror(errno)));
}

void copy_contents(int in, int out, off_t size, const std::filesystem::path& path) {
  off_t left = size;
  while (left > 0) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, static_cast<std::size_t>(left), 0);
    if (n > 0) {
      left -= n;
      continue;
    }
    if (n == 0) return;  // the file shrank under us; a template does not change
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) fail(path, "copy");
    break;  // a file system without copy_file_range: plain reads and writes from where it stopped
  }
  char buffer[65536];
  while (left > 0) {
    ssize_t n = ::read(in, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(path, "read");
    if (n == 0) return;
    for (ssize_t done = 0; done < n;) {
      ssize_t written = ::write(out, buffer + done, static_cast<std::size_t>(n - done));
      if (written < 0 && errno == EINTR) continue;
      if (written < 0) fail(path, "write");
      done += written;
    }
    left -= n;
  }
}

// Copies the entries of one directory into another through directory descriptors: about a thousand files
// for a fresh cluster, so each saved path lookup and syscall counts (the copy is most of a group's
// provisioning time).
void copy_tree(int from_dir, int to_dir, const std::filesystem::path& from_path, const ServerUser& user) {
  int listing = ::dup(from_dir);
  DIR* dir = listing < 0 ? nullptr : ::fdopendir(listing);
  if (dir == nullptr) {
    if (listing >= 0) ::close(listing);
    fail(from_path, "opendir");
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, ::closedir);
  uid_t uid = user.uid.value_or(static_cast<uid_t>(-1));
  gid_t gid = user.gid.value_or(static_cast<gid_t>(-1));
  while (true) {
    errno = 0;
    struct dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) fail(from_path, "readdir");
      return;
    }
    const char* name = entry->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
    std::filesystem::path path = from_path / name;
    struct stat st {};
    if (::fstatat(from_dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) fail(path, "stat");
    if (S_ISDIR(st.st_mode)) {
      if (::mkdirat(to_dir, name, 0700) != 0) fail(path, "mkdir");
      if (::fchmodat(to_dir, name, st.st_mode & 07777, 0) != 0) fail(path, "chmod");
      if (user.uid && ::fchownat(to_dir, name, uid, gid, 0) != 0) fail(path, "chown");
      Fd from_child(::openat(from_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      Fd to_child(::openat(to_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (from_child.get() < 0 || to_child.get() < 0) fail(path, "open");
      copy_tree(from_child.get(), to_child.get(), path, user);
    } else if (S_ISREG(st.st_mode)) {
      Fd in(::openat(from_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (in.get() < 0) fail(path, "open");
      Fd out(::openat(to_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777));
      if (out.get() < 0) fail(path, "create");
      // The umask may have taken bits the server expects (0600 files of a 0700 cluster).
      if (::fchmod(out.get(), st.st_mode & 07777) != 0) fail(path, "chmod");
      if (user.uid && ::fchown(out.get(), uid, gid) != 0) fail(path, "chown");
      copy_contents(in.get(), out.get(), st.st_size, path);
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
      ssize_t length = ::readlinkat(from_dir, name, target.data(), target.size());
      if (length < 0) fail(path, "readlink");
      target.resize(static_cast<std::size_t>(length));
      if (::symlinkat(target.c_str(), to_dir, name) != 0) fail(path, "symlink");
      if (user.uid && ::fchownat(to_dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) fail(path, "chown");
    }
    // Sockets and fifos are the server's own, made again when it starts.
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
                            const ServerUser& user, const std::string& password,
                            const std::atomic<bool>& cancel) {
  if (cancel.load()) throw InfrastructureError("postgres: cancelled before initdb");
  make_owned_dir(data_dir, user, 0700);
  std::filesystem::path password_file = data_dir.parent_path() / (data_dir.filename().string() + ".password");
  util::write_private_file(password_file, password + "\n", user.uid, user.gid);

  util::SpawnSpec spec;
  spec.argv = {(bindir / "initdb").string(),
               "-D",
               data_dir.string(),
               "-U",
               "postgres",
               "--auth=scram-sha-256",
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
    throw InfrastructureError(
        util::redact(fmt::format("postgres: {} {}{}; its output ends with:\n{}", util::shell_join(spec.argv),
                                 result.timed_out ? "timed out" : result.status.describe(),
                                 user.name.empty() ? "" : fmt::format(" (as user {})", user.name),
                                 util::tail_lines(result.output, 20)),
                     {password}));
  }
  // initdb's own file also lets in ::1 and replication; the servers listen on 127.0.0.1 or their socket.
  util::write_private_file(data_dir / "pg_hba.conf",
                           "# Written by testfleet: a password (SCRAM-SHA-256) for every connection.\n"
                           "local all all scram-sha-256\n"
                           "host  all all 127.0.0.1/32 scram-sha-256\n",
                           user.uid, user.gid);
}

std::string postgres_scram_verifier(std::string_view password, std::string_view salt, unsigned iterations) {
  util::ScramKeys keys = util::scram_sha256_keys(password, salt, iterations);
  return fmt::format("SCRAM-SHA-256${}:{}${}:{}", iterations, util::base64_encode(salt),
                     util::base64_encode(keys.stored_key), util::base64_encode(keys.server_key));
}

void replace_postgres_password(const ServerAddress& address, const std::string& current,
                               const std::string& next, util::Clock::time_point deadline) {
  {
    PostgresSession session = PostgresSession::open(address, "postgres", current, "postgres", deadline);
    // Base64 and `$:` only: nothing to quote in the literal.
    session.execute(fmt::format("ALTER ROLE postgres PASSWORD '{}'",
                                postgres_scram_verifier(next, util::random_bytes(16), 4096)));
  }
  PostgresSession::open(address, "postgres", next, "postgres", deadline);
}

void copy_data_dir(const std::filesystem::path& from, const std::filesystem::path& to,
                   const ServerUser& user) {
  struct stat root {};
  if (::stat(from.c_str(), &root) != 0) {
    throw InfrastructureError(fmt::format("cannot read {}: {}", from.string(), std::strerror(errno)));
  }
  make_owned_dir(to, user, root.st_mode & 07777);
  Fd source(::open(from.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (source.get() < 0) fail(from, "open");
  Fd target(::open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (target.get() < 0) fail(to, "open");
  copy_tree(source.get(), target.get(), from, user);
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
