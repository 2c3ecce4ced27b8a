#include "reports/coverage_data.hpp"

#include <fmt/format.h>
#if TESTFLEET_HAVE_SQLITE
#include <sqlite3.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>

#include "util/error.hpp"
#include "util/strings.hpp"

namespace testfleet::reports {

#if !TESTFLEET_HAVE_SQLITE
// The static build leaves SQLite out: it alone would take the shipped file over 5 MB.
constexpr const char* kWithoutSqlite =
    "this testfleet was built without SQLite (the static build leaves it out); combine coverage.py data "
    "with `coverage combine`, or with a testfleet built against libsqlite3";
#endif

namespace {

constexpr int kSchemaVersion = 7;

// coverage.py's own SCHEMA for version 7, so that its readers (and `sqlite3 .schema`) see what they expect.
constexpr const char* kSchema = R"sql(
CREATE TABLE coverage_schema (
    -- One row, to record the version of the schema in this db.
    version integer
);
CREATE TABLE meta (
    -- Key-value pairs, to record metadata about the data
    key text,
    value text,
    unique (key)
);
CREATE TABLE file (
    -- A row per file measured.
    id integer primary key,
    path text,
    unique (path)
);
CREATE TABLE context (
    -- A row per context measured.
    id integer primary key,
    context text,
    unique (context)
);
CREATE TABLE line_bits (
    -- If recording lines, a row per context per file executed.
    -- All of the line numbers for that file/context are in one numbits.
    file_id integer,            -- foreign key to `file`.
    context_id integer,         -- foreign key to `context`.
    numbits blob,               -- see the numbits functions in coverage.numbits
    foreign key (file_id) references file (id),
    foreign key (context_id) references context (id),
    unique (file_id, context_id)
);
CREATE TABLE arc (
    -- If recording branches, a row per context per from/to line transition executed.
    file_id integer,            -- foreign key to `file`.
    context_id integer,         -- foreign key to `context`.
    fromno integer,             -- line number jumped from.
    tono integer,               -- line number jumped to.
    foreign key (file_id) references file (id),
    foreign key (context_id) references context (id),
    unique (file_id, context_id, fromno, tono)
);
CREATE TABLE tracer (
    -- A row per file indicating the tracer used for that file.
    file_id integer primary key,
    tracer text,
    foreign key (file_id) references file (id)
);
)sql";

#if TESTFLEET_HAVE_SQLITE
// Which error an SQLite failure is: a bad input is the user's (exit 2), an output we cannot write is the
// machine's (exit 3).
enum class Role { kInput, kOutput };

class Database {
 public:
  Database(const std::filesystem::path& path, Role role) : path_(path), role_(role) {
    // An absolute path never starts with "file:", so SQLite cannot take it for a URI with options.
    std::string name = std::filesystem::absolute(path).string();
    // One thread per connection: without SQLite's locks, which were a sixth of a combine's time.
    static std::once_flag configured;
    std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
    int flags = (role == Role::kInput ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(name.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      // A failed open still gives a handle to close; no destructor runs for a throwing constructor.
      std::string what = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      fail(what);
    }
    sqlite3_extended_result_codes(db_, 1);
    if (role == Role::kInput) {
      // The schema of a file from elsewhere may hold views and triggers: none of them may call functions
      // with side effects, and no write may reach the file through a quirk.
      sqlite3_db_config(db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
      sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
      // A group's pytest may still be closing its file when we start.
      sqlite3_busy_timeout(db_, 5000);
      // Pages read from the mapped file rather than copied in by pread.
      execute("PRAGMA mmap_size = 268435456");
    }
  }
  ~Database() { sqlite3_close_v2(db_); }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sqlite3* handle() const { return db_; }
  const std::filesystem::path& path() const { return path_; }

  void execute(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message != nullptr ? message : sqlite3_errmsg(db_);
      sqlite3_free(message);
      fail(text);
    }
  }

  [[noreturn]] void fail(std::string_view what) const {
    if (role_ == Role::kInput) {
      throw UsageError(fmt::format("{}: not a readable coverage.py data file: {}", path_.string(), what));
    }
    throw InfrastructureError(fmt::format("cannot write {}: {}", path_.string(), what));
  }

 private:
  std::filesystem::path path_;
  Role role_;
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement(Database& db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db.handle(), sql, -1, &statement_, nullptr) != SQLITE_OK) {
      db.fail(sqlite3_errmsg(db.handle()));
    }
  }
  ~Statement() { sqlite3_finalize(statement_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // True with a row to read, false at the end.
  bool step() {
    int rc = sqlite3_step(statement_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_.fail(sqlite3_errmsg(db_.handle()));
  }

  // Runs an INSERT with the values bound so far, then makes the statement ready for the next ones (every
  // value bound again: bindings are kept).
  void insert() {
    step();
    sqlite3_reset(statement_);
  }

  void bind(int index, std::int64_t value) { check(sqlite3_bind_int64(statement_, index, value)); }
  void bind_text(int index, std::string_view value) {
    check(sqlite3_bind_text64(statement_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  void bind_blob(int index, std::string_view value) {
    check(sqlite3_bind_blob64(statement_, index, value.data(), value.size(), SQLITE_STATIC));
  }

  int type(int column) const { return sqlite3_column_type(statement_, column); }

  std::int64_t integer(int column, const char* what) const {
    // Through the column's value: one call into the statement, where sqlite3_column_type and
    // sqlite3_column_int64 are two (a fifth of reading a file's arcs).
    sqlite3_value* value = sqlite3_column_value(statement_, column);
    if (sqlite3_value_type(value) != SQLITE_INTEGER) bad_value(column, what, "an integer");
    return sqlite3_value_int64(value);
  }

  std::string text(int column, const char* what) const {
    std::string out;
    text(column, what, out);
    return out;
  }
  // The same into `out`, whose buffer is reused from row to row.
  void text(int column, const char* what, std::string& out) const {
    if (type(column) != SQLITE_TEXT) bad_value(column, what, "text");
    const unsigned char* data = sqlite3_column_text(statement_, column);
    std::size_t size = static_cast<std::size_t>(sqlite3_column_bytes(statement_, column));
    out.assign(reinterpret_cast<const char*>(data), size);
  }

  std::string blob(int column, const char* what) const {
    if (type(column) != SQLITE_BLOB) bad_value(column, what, "a blob");
    const void* data = sqlite3_column_blob(statement_, column);
    std::size_t size = static_cast<std::size_t>(sqlite3_column_bytes(statement_, column));
    return size == 0 ? std::string() : std::string(static_cast<const char*>(data), size);
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) db_.fail(sqlite3_errstr(rc));
  }

  [[noreturn]] void bad_value(int column, const char* what, const char* expected) const {
    // Indexed by SQLITE_INTEGER (1) to SQLITE_NULL (5).
    static constexpr const char* kTypes[] = {"?", "an integer", "a real", "text", "a blob", "null"};
    throw UsageError(fmt::format("{}: not a coverage.py data file: {} is {}, not {}", db_.path().string(),
                                 what, kTypes[std::clamp(type(column), 0, 5)], expected));
  }

  Database& db_;
  sqlite3_stmt* statement_ = nullptr;
};

// Inserts `count` rows of `columns` values into "table (columns...)", 128 rows per statement: a statement run
// per row cost more than the rows. bind(statement, first parameter, row) binds one row's values.
template <class Bind>
void insert_rows(Database& db, std::string_view table, int columns, std::size_t count, Bind&& bind) {
  constexpr std::size_t kRowsPerInsert = 128;
  std::string values = "(?";
  for (int c = 1; c < columns; ++c) values += ", ?";
  values += ')';
  std::string one = fmt::format("INSERT INTO {} VALUES {}", table, values);
  std::size_t row = 0;
  if (count >= kRowsPerInsert) {
    std::string many = one;
    for (std::size_t r = 1; r < kRowsPerInsert; ++r) many += ", " + values;
    Statement insert(db, many.c_str());
    for (; row + kRowsPerInsert <= count; row += kRowsPerInsert) {
      for (std::size_t r = 0; r < kRowsPerInsert; ++r)
        bind(insert, static_cast<int>(r) * columns + 1, row + r);
      insert.insert();
    }
  }
  if (row < count) {
    Statement insert(db, one.c_str());
    for (; row < count; ++row) {
      bind(insert, 1, row);
      insert.insert();
    }
  }
}

// A temporary file beside the target, removed unless it was renamed onto the target.
class TempFile {
 public:
  explicit TempFile(const std::filesystem::path& target) {
    std::string pattern = target.string() + ".tmp-XXXXXX";
    int fd = ::mkstemp(pattern.data());
    if (fd < 0) {
      throw InfrastructureError(fmt::format("cannot write {}: {}", target.string(), std::strerror(errno)));
    }
    // mkstemp's 0600 would hide the data from a CI step running as another user; coverage.py's own
    // files are 0644 under the usual umask.
    ::fchmod(fd, 0644);
    ::close(fd);
    path_ = pattern;
  }
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::filesystem::path& path() const { return path_; }

  void rename_to(const std::filesystem::path& target) {
    if (::rename(path_.c_str(), target.c_str()) != 0) {
      throw InfrastructureError(fmt::format("cannot write {}: {}", target.string(), std::strerror(errno)));
    }
    path_.clear();
  }

 private:
  std::filesystem::path path_;
};

#endif  // TESTFLEET_HAVE_SQLITE

bool is_separator(char c) {
  return c == '/' || c == '\\';
}

std::string or_numbits(const std::string& a, const std::string& b) {
  std::string out = a.size() >= b.size() ? a : b;
  const std::string& shorter = a.size() >= b.size() ? b : a;
  for (std::size_t i = 0; i < shorter.size(); ++i) out[i] = static_cast<char>(out[i] | shorter[i]);
  return out;
}

// Calls add(line) for every line number set in coverage.py's numbits.
template <class Add>
void for_each_numbits_line(const std::string& numbits, Add&& add) {
  for (std::size_t byte = 0; byte < numbits.size(); ++byte) {
    unsigned bits = static_cast<unsigned char>(numbits[byte]);
    for (unsigned bit = 0; bit < 8; ++bit) {
      if (bits & (1u << bit)) add(static_cast<std::int64_t>(byte * 8 + bit));
    }
  }
}

#if TESTFLEET_HAVE_SQLITE
// Reads the first bytes, to tell an empty file, a coverage.py 4 JSON file and other files from SQLite
// before SQLite opens them.
void check_header(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw UsageError(fmt::format("{}: no such coverage data file", path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
  char header[16] = {};
  in.read(header, sizeof header);
  std::string_view start(header, static_cast<std::size_t>(in.gcount()));
  if (start.empty())
    throw UsageError(fmt::format("{}: not a coverage.py data file: it is empty", path.string()));
  if (util::starts_with(start, "!coverage.py")) {
    throw UsageError(
        fmt::format("{}: a coverage.py 4 data file (JSON); testfleet reads the SQLite data of coverage.py 5 "
                    "and later",
                    path.string()));
  }
  if (start != std::string_view("SQLite format 3\0", 16)) {
    throw UsageError(fmt::format("{}: not a coverage.py data file: not an SQLite database", path.string()));
  }
}
#endif  // TESTFLEET_HAVE_SQLITE

}  // namespace

PathRemap parse_path_remap(std::string_view text) {
  std::size_t equals = text.find('=');
  if (equals == std::string_view::npos || equals == 0 || equals + 1 == text.size()) {
    throw UsageError(fmt::format("--remap '{}': expected FROM=TO, two path prefixes", text));
  }
  return PathRemap{std::string(text.substr(0, equals)), std::string(text.substr(equals + 1))};
}

std::string remap_path(const std::string& path, const std::vector<PathRemap>& remaps) {
  for (const PathRemap& remap : remaps) {
    std::string_view from = remap.from;
    while (from.size() > 1 && is_separator(from.back())) from.remove_suffix(1);
    if (!util::starts_with(path, from)) continue;
    std::string_view rest = std::string_view(path).substr(from.size());
    // "/src/app" must not take "/src/application/x.py".
    if (!rest.empty() && !is_separator(rest.front()) && !is_separator(from.back())) continue;
    while (!rest.empty() && is_separator(rest.front())) rest.remove_prefix(1);
    std::string to = remap.to;
    char separator = to.find('\\') != std::string::npos && to.find('/') == std::string::npos ? '\\' : '/';
    while (to.size() > 1 && is_separator(to.back())) to.pop_back();
    std::string out = to;
    if (!rest.empty()) {
      if (!is_separator(out.back())) out += separator;
      for (char c : rest) out += is_separator(c) ? separator : c;
    }
    return out;
  }
  return path;
}

std::uint32_t CoverageData::file_index(const std::string& path) {
  // Looked up before inserting: every input names the same files, and an emplace builds a node first.
  auto found = path_indexes_.find(path);
  if (found != path_indexes_.end()) return found->second;
  auto index = static_cast<std::uint32_t>(paths_.size());
  paths_.push_back(path);
  path_indexes_.emplace(paths_.back(), index);
  tracers_.emplace_back();
  return index;
}

std::uint32_t CoverageData::context_index(const std::string& context) {
  auto [it, inserted] = context_indexes_.emplace(context, static_cast<std::uint32_t>(contexts_.size()));
  if (inserted) contexts_.push_back(context);
  return it->second;
}

#if TESTFLEET_HAVE_SQLITE
CoverageData CoverageData::read(const std::filesystem::path& path, const std::vector<PathRemap>& remaps) {
  check_header(path);
  Database db(path, Role::kInput);
  CoverageData data;

  std::set<std::string> tables;
  Statement list(db, "SELECT name FROM sqlite_master WHERE type = 'table'");
  while (list.step()) {
    if (list.type(0) == SQLITE_TEXT) tables.insert(list.text(0, "a table name"));
  }
  for (const char* table : {"coverage_schema", "meta", "file", "context", "line_bits", "arc", "tracer"}) {
    if (!tables.count(table)) {
      throw UsageError(
          fmt::format("{}: an SQLite database but not a coverage.py data file (it has no table {})",
                      path.string(), table));
    }
  }

  Statement schema(db, "SELECT version FROM coverage_schema");
  if (!schema.step()) {
    throw UsageError(
        fmt::format("{}: not a coverage.py data file: its coverage_schema table is empty", path.string()));
  }
  std::int64_t version = schema.integer(0, "the schema version");
  if (version != kSchemaVersion) {
    throw UsageError(fmt::format(
        "{}: coverage.py data of schema version {}; testfleet reads version {} (coverage.py 5 and later)",
        path.string(), version, kSchemaVersion));
  }

  bool meta_arcs = false;
  bool meta_lines = false;
  Statement meta(db, "SELECT key, value FROM meta WHERE key IN ('has_arcs', 'version')");
  while (meta.step()) {
    std::string key = meta.text(0, "a meta key");
    if (key == "version") {
      if (meta.type(1) == SQLITE_TEXT) data.version_ = meta.text(1, "meta version");
      continue;
    }
    // coverage.py stores str(int(bool)) and reads bool(int(value)).
    std::string value = meta.type(1) == SQLITE_INTEGER ? std::to_string(meta.integer(1, "meta has_arcs"))
                                                       : meta.text(1, "meta has_arcs");
    if (value != "0" && value != "1") {
      throw UsageError(fmt::format("{}: not a coverage.py data file: meta has_arcs is '{}', not 0 or 1",
                                   path.string(), value));
    }
    (value == "1" ? meta_arcs : meta_lines) = true;
  }

  // The file's own ids to ours; rows naming an id that is not there are dropped, as coverage.py's inner
  // joins drop them.
  std::unordered_map<std::int64_t, std::uint32_t> files;
  // In id order, so that the arcs below (in the same order) come out sorted by our indexes.
  Statement file_rows(db, "SELECT id, path FROM file ORDER BY id");
  std::string path_text;
  while (file_rows.step()) {
    std::int64_t id = file_rows.integer(0, "a file id");
    file_rows.text(1, "a file path", path_text);
    files[id] = remaps.empty() ? data.file_index(path_text) : data.file_index(remap_path(path_text, remaps));
  }
  std::unordered_map<std::int64_t, std::uint32_t> contexts;
  Statement context_rows(db, "SELECT id, context FROM context ORDER BY id");
  while (context_rows.step()) {
    contexts[context_rows.integer(0, "a context id")] = data.context_index(context_rows.text(1, "a context"));
  }

  bool any_lines = false;
  Statement line_rows(db, "SELECT file_id, context_id, numbits FROM line_bits");
  while (line_rows.step()) {
    auto file = files.find(line_rows.integer(0, "a line_bits file_id"));
    auto context = contexts.find(line_rows.integer(1, "a line_bits context_id"));
    if (file == files.end() || context == contexts.end()) continue;
    std::string numbits = line_rows.blob(2, "a numbits");
    std::string& into = data.line_bits_[{file->second, context->second}];
    into = or_numbits(into, numbits);
    any_lines = true;
  }
  // How many there are, from the b-tree's own count: the vector is allocated once.
  Statement arc_count(db, "SELECT count(*) FROM arc");
  if (arc_count.step())
    data.arcs_.reserve(
        static_cast<std::size_t>(std::max<std::int64_t>(0, arc_count.integer(0, "the number of arcs"))));
  // The order of arc's unique index: read from the index alone, and usually sorted already. A file's arcs
  // come together, so its ids are looked up again only when they change.
  Statement arc_rows(
      db, "SELECT file_id, context_id, fromno, tono FROM arc ORDER BY file_id, context_id, fromno, tono");
  // The (file_id, context_id) last looked up, and our indexes for them when both are known.
  std::optional<std::pair<std::int64_t, std::int64_t>> ids;
  std::optional<std::pair<std::uint32_t, std::uint32_t>> ours;
  while (arc_rows.step()) {
    std::pair<std::int64_t, std::int64_t> row{arc_rows.integer(0, "an arc file_id"),
                                              arc_rows.integer(1, "an arc context_id")};
    if (row != ids) {
      ids = row;
      auto file = files.find(row.first);
      auto context = contexts.find(row.second);
      ours.reset();
      if (file != files.end() && context != contexts.end()) ours.emplace(file->second, context->second);
    }
    if (!ours) continue;
    data.arcs_.push_back({ours->first, ours->second, arc_rows.integer(2, "an arc fromno"),
                          arc_rows.integer(3, "an arc tono")});
  }
  if (!std::is_sorted(data.arcs_.begin(), data.arcs_.end())) std::sort(data.arcs_.begin(), data.arcs_.end());
  data.arcs_.erase(std::unique(data.arcs_.begin(), data.arcs_.end()), data.arcs_.end());

  Statement tracer_rows(db, "SELECT file_id, tracer FROM tracer");
  while (tracer_rows.step()) {
    auto file = files.find(tracer_rows.integer(0, "a tracer file_id"));
    if (file == files.end()) continue;
    // coverage.py writes NULL for no plugin in some versions and '' in others.
    if (tracer_rows.type(1) != SQLITE_NULL) data.tracers_[file->second] = tracer_rows.text(1, "a tracer");
  }

  bool arcs = meta_arcs || !data.arcs_.empty();
  bool lines = meta_lines || any_lines;
  if (arcs && lines) {
    throw UsageError(fmt::format(
        "{}: not a coverage.py data file: it holds both line data and arc (branch) data", path.string()));
  }
  if (arcs) data.arcs_from_ = path.string();
  if (lines) data.lines_from_ = path.string();
  return data;
}
#else
CoverageData CoverageData::read(const std::filesystem::path& path, const std::vector<PathRemap>&) {
  throw UsageError(fmt::format("cannot read {}: {}", path.string(), kWithoutSqlite));
}
#endif  // TESTFLEET_HAVE_SQLITE

void CoverageData::update(const CoverageData& other) {
  // Every check first: a refused update leaves this data as it was.
  if (has_lines() && other.has_arcs()) {
    throw UsageError(fmt::format(
        "cannot combine the line data of {} with the arc (branch) data of {}: coverage.py refuses to mix "
        "them; measure every group with --cov-branch or every group without",
        lines_from_, other.arcs_from_));
  }
  if (has_arcs() && other.has_lines()) {
    throw UsageError(fmt::format(
        "cannot combine the arc (branch) data of {} with the line data of {}: coverage.py refuses to mix "
        "them; measure every group with --cov-branch or every group without",
        arcs_from_, other.lines_from_));
  }
  // Each of its files' index here, when this data has it already.
  constexpr std::uint32_t kNew = UINT32_MAX;
  std::vector<std::uint32_t> files(other.paths_.size(), kNew);
  for (std::size_t i = 0; i < other.paths_.size(); ++i) {
    auto it = path_indexes_.find(other.paths_[i]);
    if (it != path_indexes_.end()) files[i] = it->second;
    if (it != path_indexes_.end() && tracers_[it->second] != other.tracers_[i]) {
      throw UsageError(fmt::format(
          "cannot combine {} into the data of {}: {} was measured by tracer '{}' there and by '{}' before",
          other.has_arcs() ? other.arcs_from_ : other.lines_from_, has_arcs() ? arcs_from_ : lines_from_,
          other.paths_[i], other.tracers_[i], tracers_[it->second]));
    }
  }

  for (std::size_t i = 0; i < other.paths_.size(); ++i) {
    if (files[i] == kNew) files[i] = file_index(other.paths_[i]);
    tracers_[files[i]] = other.tracers_[i];
  }
  std::vector<std::uint32_t> contexts(other.contexts_.size());
  for (std::size_t i = 0; i < other.contexts_.size(); ++i) contexts[i] = context_index(other.contexts_[i]);

  for (const auto& [key, numbits] : other.line_bits_) {
    std::string& into = line_bits_[{files[key.first], contexts[key.second]}];
    into = or_numbits(into, numbits);
  }
  std::size_t before = arcs_.size();
  for (const Arc& arc : other.arcs_)
    arcs_.push_back({files[arc.file], contexts[arc.context], arc.from, arc.to});
  // Files and contexts of one project keep their order from part to part: the new arcs are sorted already.
  if (!std::is_sorted(arcs_.begin() + static_cast<std::ptrdiff_t>(before), arcs_.end()))
    std::sort(arcs_.begin() + static_cast<std::ptrdiff_t>(before), arcs_.end());
  std::inplace_merge(arcs_.begin(), arcs_.begin() + static_cast<std::ptrdiff_t>(before), arcs_.end());
  arcs_.erase(std::unique(arcs_.begin(), arcs_.end()), arcs_.end());

  if (lines_from_.empty()) lines_from_ = other.lines_from_;
  if (arcs_from_.empty()) arcs_from_ = other.arcs_from_;
  if (version_.empty()) version_ = other.version_;
}

#if TESTFLEET_HAVE_SQLITE
void CoverageData::write(const std::filesystem::path& path) const {
  TempFile temp(path);
  {
    Database db(temp.path(), Role::kOutput);
    // The file is renamed into place only once complete: a journal would buy nothing.
    db.execute(
        "PRAGMA page_size = 65536; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; "
        "PRAGMA locking_mode = EXCLUSIVE; PRAGMA cache_size = -65536; BEGIN");
    db.execute(kSchema);
    Statement schema(db, "INSERT INTO coverage_schema (version) VALUES (?)");
    schema.bind(1, kSchemaVersion);
    schema.insert();

    Statement meta(db, "INSERT INTO meta (key, value) VALUES (?, ?)");
    std::vector<std::pair<std::string, std::string>> entries = {{"sys_argv", "testfleet: combined natively"}};
    if (!version_.empty()) entries.emplace_back("version", version_);
    // Data with no measurement at all says neither, as coverage.py leaves it undecided.
    if (has_arcs() || has_lines()) entries.emplace_back("has_arcs", has_arcs() ? "1" : "0");
    for (const auto& [key, value] : entries) {
      meta.bind_text(1, key);
      meta.bind_text(2, value);
      meta.insert();
    }
    Statement when(db, "INSERT INTO meta (key, value) VALUES ('when', datetime('now', 'localtime'))");
    when.insert();

    // Ids are our indexes plus one (SQLite's rowids start at 1).
    auto id = [](std::size_t index) { return static_cast<std::int64_t>(index) + 1; };
    insert_rows(db, "file (id, path)", 2, paths_.size(), [&](Statement& insert, int at, std::size_t i) {
      insert.bind(at, id(i));
      insert.bind_text(at + 1, paths_[i]);
    });
    insert_rows(db, "tracer (file_id, tracer)", 2, paths_.size(),
                [&](Statement& insert, int at, std::size_t i) {
                  insert.bind(at, id(i));
                  insert.bind_text(at + 1, tracers_[i]);
                });
    insert_rows(db, "context (id, context)", 2, contexts_.size(),
                [&](Statement& insert, int at, std::size_t i) {
                  insert.bind(at, id(i));
                  insert.bind_text(at + 1, contexts_[i]);
                });
    std::vector<const std::pair<const FileContext, std::string>*> bits;
    bits.reserve(line_bits_.size());
    for (const auto& entry : line_bits_) bits.push_back(&entry);
    insert_rows(db, "line_bits (file_id, context_id, numbits)", 3, bits.size(),
                [&](Statement& insert, int at, std::size_t i) {
                  insert.bind(at, id(bits[i]->first.first));
                  insert.bind(at + 1, id(bits[i]->first.second));
                  insert.bind_blob(at + 2, bits[i]->second);
                });
    insert_rows(db, "arc (file_id, context_id, fromno, tono)", 4, arcs_.size(),
                [&](Statement& insert, int at, std::size_t i) {
                  insert.bind(at, id(arcs_[i].file));
                  insert.bind(at + 1, id(arcs_[i].context));
                  insert.bind(at + 2, arcs_[i].from);
                  insert.bind(at + 3, arcs_[i].to);
                });
    db.execute("COMMIT");
  }
  temp.rename_to(path);
}
#else
void CoverageData::write(const std::filesystem::path& path) const {
  throw UsageError(fmt::format("cannot write {}: {}", path.string(), kWithoutSqlite));
}
#endif  // TESTFLEET_HAVE_SQLITE

std::vector<std::string> CoverageData::files() const {
  std::vector<std::string> out(paths_.begin(), paths_.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> CoverageData::contexts() const {
  std::vector<std::string> out = contexts_;
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::int64_t> CoverageData::lines(const std::string& path) const {
  auto it = path_indexes_.find(path);
  if (it == path_indexes_.end()) return {};
  std::set<std::int64_t> lines;
  for (auto bits = line_bits_.lower_bound({it->second, 0});
       bits != line_bits_.end() && bits->first.first == it->second; ++bits) {
    for_each_numbits_line(bits->second, [&](std::int64_t line) { lines.insert(line); });
  }
  auto arc = std::lower_bound(arcs_.begin(), arcs_.end(), Arc{it->second, 0, INT64_MIN, INT64_MIN});
  for (; arc != arcs_.end() && arc->file == it->second; ++arc) {
    if (arc->from > 0) lines.insert(arc->from);
    if (arc->to > 0) lines.insert(arc->to);
  }
  return {lines.begin(), lines.end()};
}

std::size_t CoverageData::executed_lines() const {
  std::vector<std::pair<std::uint32_t, std::int64_t>> lines;
  for (const auto& entry : line_bits_) {
    std::uint32_t file = entry.first.first;
    for_each_numbits_line(entry.second, [&](std::int64_t line) { lines.emplace_back(file, line); });
  }
  for (const Arc& arc : arcs_) {
    if (arc.from > 0) lines.emplace_back(arc.file, arc.from);
    if (arc.to > 0) lines.emplace_back(arc.file, arc.to);
  }
  std::sort(lines.begin(), lines.end());
  return static_cast<std::size_t>(std::unique(lines.begin(), lines.end()) - lines.begin());
}

std::vector<std::pair<std::int64_t, std::int64_t>> CoverageData::arcs(const std::string& path) const {
  auto it = path_indexes_.find(path);
  if (it == path_indexes_.end()) return {};
  std::set<std::pair<std::int64_t, std::int64_t>> arcs;
  auto arc = std::lower_bound(arcs_.begin(), arcs_.end(), Arc{it->second, 0, INT64_MIN, INT64_MIN});
  for (; arc != arcs_.end() && arc->file == it->second; ++arc) arcs.emplace(arc->from, arc->to);
  return {arcs.begin(), arcs.end()};
}

CoverageCombineResult combine_coverage_data(const std::vector<std::filesystem::path>& inputs,
                                            const std::filesystem::path& out,
                                            const std::vector<PathRemap>& remaps) {
  CoverageCombineResult result;
  CoverageData combined;
  // Inputs are read on as many threads as there are cores (each its own SQLite connection), a few files
  // ahead at most, and combined in their order on this thread as they come: reading is most of the work.
  struct Slot {
    std::optional<CoverageData> data;
    std::optional<std::string> failed;
    bool done = false;
  };
  const std::size_t readers = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 8);
  const std::size_t ahead = readers * 2;
  std::vector<Slot> slots(inputs.size());
  std::mutex mutex;
  std::condition_variable changed;
  std::size_t next_to_read = 0;
  std::size_t next_to_combine = 0;
  bool stop = false;
  auto read_inputs = [&] {
    while (true) {
      std::size_t i = 0;
      {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] {
          return stop || next_to_read >= inputs.size() || next_to_read < next_to_combine + ahead;
        });
        if (stop || next_to_read >= inputs.size()) return;
        i = next_to_read++;
      }
      Slot slot;
      const std::filesystem::path& input = inputs[i];
      std::error_code ec;
      if (!std::filesystem::equivalent(input, out, ec)) {
        try {
          slot.data = CoverageData::read(input, remaps);
        } catch (const UsageError& e) {
          slot.failed = e.what();
        } catch (const std::exception& e) {
          slot.failed = fmt::format("{}: {}", input.string(), e.what());
        }
      }
      slot.done = true;
      {
        std::lock_guard lock(mutex);
        slots[i] = std::move(slot);
      }
      changed.notify_all();
    }
  };
  std::vector<std::thread> threads;
  auto finish = [&] {
    {
      std::lock_guard lock(mutex);
      stop = true;
    }
    changed.notify_all();
    for (std::thread& thread : threads) thread.join();
    threads.clear();
  };
  for (std::size_t i = 0; i < readers; ++i) threads.emplace_back(read_inputs);
  try {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      Slot slot;
      {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return slots[i].done; });
        slot = std::move(slots[i]);
        next_to_combine = i + 1;
      }
      changed.notify_all();
      if (slot.failed) result.problems.push_back({inputs[i], *slot.failed});
      if (!slot.data) continue;
      // Mixed line and arc data spoil the whole result: this throws, as coverage.py stops there too.
      combined.update(*slot.data);
      ++result.combined;
    }
  } catch (...) {
    finish();
    throw;
  }
  finish();
  if (result.combined == 0) {
    std::vector<std::string> why;
    for (const InputProblem& problem : result.problems) why.push_back(problem.message);
    throw UsageError(fmt::format("no usable coverage data to combine into {}{}{}", out.string(),
                                 why.empty() ? "" : ": ", util::join(why, "; ")));
  }
  combined.write(out);
  result.files = combined.file_count();
  result.contexts = combined.context_count();
  result.has_arcs = combined.has_arcs();
  result.lines = combined.executed_lines();
  return result;
}

}  // namespace testfleet::reports
