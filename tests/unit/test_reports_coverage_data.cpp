// coverage.py data combined natively against `coverage combine` of the same inputs: real data files are
// measured here by coverage.py (Debian's python3-coverage) from small generated programs, combined both
// ways, and compared through `coverage json`, which reads either result with coverage.py's own code.
// Hostile and hand-made inputs are written with SQLite directly, from the schema's definition.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "reports/coverage_data.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace testfleet::reports {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const char* const kPython = "/usr/bin/python3";

// The program measured: branches, a loop, a function never called, and a second module that only some runs
// import, so that files, lines, arcs and contexts each differ between runs.
const char* const kCalc = R"py(def classify(n):
    if n < 0:
        return "negative"
    elif n == 0:
        return "zero"
    return "positive"


def total(values):
    s = 0
    for v in values:
        if v % 2:
            s += v
    return s


def unused():
    return 42
)py";

const char* const kExtra = R"py(def shout(text):
    return text.upper() if text else ""
)py";

const char* const kMain = R"py(import sys

from app import calc


def test_negative():
    calc.classify(-1)


def test_zero():
    calc.classify(0)


def test_sum():
    calc.total([1, 2, 3])


def test_extra():
    from app import extra
    extra.shout("x")


for name in sys.argv[1:]:
    globals()["test_" + name]()
)py";

// Our environment without COVERAGE_* variables, so that the caller's settings cannot change a measurement.
util::EnvVars clean_environment() {
  util::EnvVars env = util::current_environment();
  for (auto it = env.begin(); it != env.end();) {
    it = util::starts_with(it->first, "COVERAGE_") ? env.erase(it) : std::next(it);
  }
  return env;
}

util::CommandResult run(const std::vector<std::string>& argv, const fs::path& cwd) {
  util::SpawnSpec spec;
  spec.argv = argv;
  spec.cwd = cwd;
  spec.env = clean_environment();
  return util::run_command(spec, std::chrono::seconds(120));
}

void run_ok(const std::vector<std::string>& argv, const fs::path& cwd) {
  util::CommandResult result = run(argv, cwd);
  if (!result.status.success()) {
    throw std::runtime_error(util::shell_join(argv) + ": " + result.status.describe() + "\n" + result.output);
  }
}

// Runs an SQL script on a database file (created when missing), for hand-made and spoiled inputs.
void sql(const fs::path& path, const std::string& script) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open(path.c_str(), &db);
  char* message = nullptr;
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, script.c_str(), nullptr, nullptr, &message);
  std::string text = message != nullptr ? message : (db != nullptr ? sqlite3_errmsg(db) : "");
  sqlite3_free(message);
  sqlite3_close(db);
  if (rc != SQLITE_OK) throw std::runtime_error(path.string() + ": " + text);
}

// Schema version 7 as ../shared/FORMATS.md defines it.
const char* const kSchema7 = R"sql(
CREATE TABLE coverage_schema (version integer);
CREATE TABLE meta (key text, value text, unique (key));
CREATE TABLE file (id integer primary key, path text, unique (path));
CREATE TABLE context (id integer primary key, context text, unique (context));
CREATE TABLE line_bits (file_id integer, context_id integer, numbits blob, unique (file_id, context_id));
CREATE TABLE arc (file_id integer, context_id integer, fromno integer, tono integer,
                  unique (file_id, context_id, fromno, tono));
CREATE TABLE tracer (file_id integer primary key, tracer text);
INSERT INTO coverage_schema VALUES (7);
)sql";

class CoverageDataTest : public ::testing::Test {
 protected:
  // A checkout of the program at `root` (a folder under the test's temporary directory).
  fs::path checkout(const std::string& name) {
    fs::path root = temp_.path() / name;
    fs::create_directories(root / "app");
    util::write_file_atomic(root / "app" / "__init__.py", "");
    util::write_file_atomic(root / "app" / "calc.py", kCalc);
    util::write_file_atomic(root / "app" / "extra.py", kExtra);
    util::write_file_atomic(root / "main.py", kMain);
    return root;
  }

  // `coverage run` of main.py in `root` with `options` and the tests `names`; returns the data file.
  fs::path measure(const fs::path& root, const std::string& data_name,
                   const std::vector<std::string>& options, const std::vector<std::string>& names) {
    fs::path data = temp_.path() / data_name;
    // --source: the project only, not the interpreter's start-up hooks.
    std::vector<std::string> argv = {
        kPython, "-B", "-m", "coverage", "run", "--data-file=" + data.string(), "--source=."};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back("main.py");
    argv.insert(argv.end(), names.begin(), names.end());
    run_ok(argv, root);
    return data;
  }

  // `coverage combine --keep` of `inputs` into `out`, with an rcfile when given.
  void coverage_combine(const std::vector<fs::path>& inputs, const fs::path& out,
                        const fs::path& rcfile = {}) {
    std::vector<std::string> argv = {kPython,   "-B",     "-m", "coverage",
                                     "combine", "--keep", "-q", "--data-file=" + out.string()};
    if (!rcfile.empty()) argv.push_back("--rcfile=" + rcfile.string());
    for (const fs::path& input : inputs) argv.push_back(input.string());
    run_ok(argv, temp_.path());
  }

  // What coverage.py reports from a data file: `coverage json`, per file and in total.
  nlohmann::json report(const fs::path& data, bool show_contexts) {
    fs::path json = data;
    json += ".json";
    std::vector<std::string> argv = {
        kPython, "-B", "-m", "coverage", "json", "-q", "--data-file=" + data.string(), "-o", json.string()};
    if (show_contexts) argv.push_back("--show-contexts");
    run_ok(argv, temp_.path());
    nlohmann::json parsed = nlohmann::json::parse(util::read_file(json));
    // A line's contexts come out in the order of a Python set, which changes with every process.
    for (auto& [path, file] : parsed.at("files").items()) {
      if (!file.contains("contexts")) continue;
      for (auto& [line, contexts] : file.at("contexts").items()) std::sort(contexts.begin(), contexts.end());
    }
    return {{"files", parsed.at("files")}, {"totals", parsed.at("totals")}};
  }

  // Combines natively and with coverage.py, expects the two reports to be the same, and returns ours.
  nlohmann::json expect_same_as_coverage_combine(const std::vector<fs::path>& inputs, bool show_contexts,
                                                 const std::vector<PathRemap>& remaps = {},
                                                 const fs::path& rcfile = {}) {
    fs::path native = temp_.path() / "native.coverage";
    fs::path reference = temp_.path() / "reference.coverage";
    CoverageCombineResult result = combine_coverage_data(inputs, native, remaps);
    EXPECT_TRUE(result.problems.empty()) << result.problems.front().message;
    EXPECT_EQ(result.combined, inputs.size());
    coverage_combine(inputs, reference, rcfile);
    nlohmann::json ours = report(native, show_contexts);
    EXPECT_EQ(ours, report(reference, show_contexts));
    return ours;
  }

  // Executed lines of the file whose path ends with `suffix` in a `coverage json` report.
  static std::set<int> executed(const nlohmann::json& report, const std::string& suffix) {
    for (const auto& [path, file] : report.at("files").items()) {
      if (util::ends_with(path, suffix)) return file.at("executed_lines").get<std::set<int>>();
    }
    return {};
  }

  util::TempDir temp_{"coverage-data-test-"};
};

TEST_F(CoverageDataTest, LineDataEqualsCoverageCombine) {
  fs::path root = checkout("project");
  std::vector<fs::path> inputs = {measure(root, "a.coverage", {}, {"negative"}),
                                  measure(root, "b.coverage", {}, {"zero", "extra"}),
                                  measure(root, "c.coverage", {}, {"sum"})};
  nlohmann::json combined = expect_same_as_coverage_combine(inputs, false);
  // The union is real: every part added lines no other part ran.
  std::set<int> all = executed(combined, "calc.py");
  for (const fs::path& input : inputs) {
    std::set<int> part = executed(report(input, false), "calc.py");
    EXPECT_TRUE(std::includes(all.begin(), all.end(), part.begin(), part.end()));
    EXPECT_LT(part.size(), all.size());
  }
  EXPECT_TRUE(all.count(3) && all.count(5) && all.count(13));  // "negative", "zero", "s += v"
  EXPECT_FALSE(all.count(18));                                 // unused()'s body
  EXPECT_FALSE(executed(combined, "extra.py").empty());
  CoverageData data = CoverageData::read(temp_.path() / "native.coverage");
  EXPECT_TRUE(data.has_lines());
  EXPECT_FALSE(data.has_arcs());
}

TEST_F(CoverageDataTest, BranchDataEqualsCoverageCombine) {
  fs::path root = checkout("project");
  std::vector<fs::path> inputs = {measure(root, "a.coverage", {"--branch"}, {"negative", "sum"}),
                                  measure(root, "b.coverage", {"--branch"}, {"zero"}),
                                  measure(root, "c.coverage", {"--branch"}, {"extra"})};
  nlohmann::json combined = expect_same_as_coverage_combine(inputs, false);
  EXPECT_GT(combined.at("totals").at("covered_branches").get<int>(), 0);
  EXPECT_GT(combined.at("totals").at("missing_branches").get<int>(), 0);
  for (const fs::path& input : inputs) {
    EXPECT_LT(report(input, false).at("totals").at("covered_branches").get<int>(),
              combined.at("totals").at("covered_branches").get<int>());
  }
  CoverageData data = CoverageData::read(temp_.path() / "native.coverage");
  EXPECT_TRUE(data.has_arcs());
  std::string calc = (root / "app" / "calc.py").string();
  // classify's "if n < 0" went both ways, across two inputs.
  std::vector<std::pair<std::int64_t, std::int64_t>> arcs = data.arcs(calc);
  EXPECT_TRUE(std::count(arcs.begin(), arcs.end(), std::make_pair<std::int64_t, std::int64_t>(2, 3)));
  EXPECT_TRUE(std::count(arcs.begin(), arcs.end(), std::make_pair<std::int64_t, std::int64_t>(2, 4)));
}

TEST_F(CoverageDataTest, StaticContextsEqualCoverageCombine) {
  fs::path root = checkout("project");
  std::vector<fs::path> inputs = {
      measure(root, "a.coverage", {"--branch", "--context=group-1"}, {"negative"}),
      measure(root, "b.coverage", {"--branch", "--context=group-2"}, {"negative", "zero"})};
  nlohmann::json combined = expect_same_as_coverage_combine(inputs, true);
  const nlohmann::json* calc = nullptr;
  for (const auto& [path, file] : combined.at("files").items()) {
    if (util::ends_with(path, "calc.py")) calc = &file;
  }
  ASSERT_NE(calc, nullptr);
  EXPECT_EQ(calc->at("contexts").at("3"), nlohmann::json::array({"group-1", "group-2"}));
  EXPECT_EQ(calc->at("contexts").at("5"), nlohmann::json::array({"group-2"}));
  EXPECT_THAT(CoverageData::read(temp_.path() / "native.coverage").contexts(),
              ElementsAre("group-1", "group-2"));
}

TEST_F(CoverageDataTest, DynamicContextsEqualCoverageCombine) {
  fs::path root = checkout("project");
  fs::path rcfile = temp_.path() / "dynamic.rc";
  util::write_file_atomic(rcfile, "[run]\ndynamic_context = test_function\n");
  std::string rc = "--rcfile=" + rcfile.string();
  for (bool branch : {false, true}) {
    std::vector<std::string> options = {rc};
    if (branch) options.push_back("--branch");
    std::string kind = branch ? "arcs" : "lines";
    std::vector<fs::path> inputs = {
        measure(root, kind + "-a.coverage", options, {"negative", "sum"}),
        measure(root, kind + "-b.coverage", options, {"negative", "zero", "extra"})};
    expect_same_as_coverage_combine(inputs, true);
    std::vector<std::string> contexts = CoverageData::read(temp_.path() / "native.coverage").contexts();
    // The module's own lines (context "") and one context per test function, from both inputs.
    EXPECT_EQ(contexts.size(), 5u) << util::join(contexts, ", ");
    EXPECT_THAT(util::join(contexts, " "), AllOf(HasSubstr("test_sum"), HasSubstr("test_extra")));
  }
}

TEST_F(CoverageDataTest, RemappedRootsEqualCoverageCombineWithPaths) {
  // The same project measured in two checkouts, as groups in different directories measure it.
  fs::path first = checkout("checkout-1");
  fs::path second = checkout("checkout-2");
  std::vector<fs::path> inputs = {measure(first, "a.coverage", {"--branch"}, {"negative"}),
                                  measure(second, "b.coverage", {"--branch"}, {"zero", "extra"})};
  fs::path rcfile = temp_.path() / "paths.rc";
  util::write_file_atomic(rcfile,
                          "[paths]\nsource =\n    " + first.string() + "\n    " + second.string() + "\n");
  nlohmann::json combined =
      expect_same_as_coverage_combine(inputs, false, {{second.string() + "/", first.string()}}, rcfile);
  // coverage.py reports paths relative to where it runs, the test's directory.
  for (const auto& [path, file] : combined.at("files").items()) {
    EXPECT_TRUE(util::starts_with(path, "checkout-1/")) << path;
  }
  EXPECT_EQ(combined.at("files").size(), 4u);
  std::set<int> calc = executed(combined, "calc.py");
  EXPECT_TRUE(calc.count(3) && calc.count(5));
}

TEST_F(CoverageDataTest, LineAndArcDataAreNotMixed) {
  fs::path root = checkout("project");
  fs::path lines = measure(root, "lines.coverage", {}, {"negative"});
  fs::path arcs = measure(root, "arcs.coverage", {"--branch"}, {"zero"});
  fs::path out = temp_.path() / "out.coverage";
  for (const std::vector<fs::path>& inputs :
       {std::vector<fs::path>{lines, arcs}, std::vector<fs::path>{arcs, lines}}) {
    try {
      combine_coverage_data(inputs, out);
      ADD_FAILURE() << "line and arc data were combined";
    } catch (const UsageError& e) {
      EXPECT_THAT(e.what(),
                  AllOf(HasSubstr(lines.string()), HasSubstr(arcs.string()), HasSubstr("arc (branch)")));
    }
    EXPECT_FALSE(fs::exists(out));
  }
  // coverage.py refuses it too.
  util::CommandResult refused = run({kPython, "-B", "-m", "coverage", "combine", "--keep",
                                     "--data-file=" + out.string(), lines.string(), arcs.string()},
                                    temp_.path());
  EXPECT_FALSE(refused.status.success());
  EXPECT_THAT(refused.output, HasSubstr("Can't combine"));
}

TEST_F(CoverageDataTest, NumbitsAreOredPerFileAndContext) {
  // Lines 1, 2, 3 in one input; 3 and 100 (byte 12) in another, plus 5 in a second context.
  fs::path a = temp_.path() / "a.coverage";
  fs::path b = temp_.path() / "b.coverage";
  sql(a, std::string(kSchema7) +
             "INSERT INTO meta VALUES ('has_arcs', '0');"
             "INSERT INTO file VALUES (1, '/src/m.py');"
             "INSERT INTO context VALUES (1, '');"
             "INSERT INTO line_bits VALUES (1, 1, x'0e');");
  sql(b, std::string(kSchema7) +
             "INSERT INTO meta VALUES ('has_arcs', '0');"
             "INSERT INTO file VALUES (7, '/src/m.py');"
             "INSERT INTO context VALUES (3, 'x'), (4, '');"
             "INSERT INTO line_bits VALUES (7, 4, x'08000000000000000000000010'), (7, 3, x'20');");
  fs::path out = temp_.path() / "out.coverage";
  CoverageCombineResult result = combine_coverage_data({a, b}, out);
  EXPECT_EQ(result.combined, 2u);
  EXPECT_EQ(result.files, 1u);
  EXPECT_EQ(result.contexts, 2u);
  EXPECT_EQ(result.lines, 5u);
  CoverageData data = CoverageData::read(out);
  EXPECT_THAT(data.lines("/src/m.py"), ElementsAre(1, 2, 3, 5, 100));
  EXPECT_THAT(data.contexts(), ElementsAre("", "x"));

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(out.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT context.context, hex(numbits) FROM line_bits JOIN context ON "
                               "context.id = line_bits.context_id ORDER BY context.context",
                               -1, &statement, nullptr),
            SQLITE_OK);
  std::vector<std::string> rows;
  while (sqlite3_step(statement) == SQLITE_ROW) {
    rows.push_back(std::string(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0))) + "=" +
                   reinterpret_cast<const char*>(sqlite3_column_text(statement, 1)));
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  EXPECT_THAT(rows, ElementsAre("=0E000000000000000000000010", "x=20"));
}

TEST_F(CoverageDataTest, BadInputsAreNamedAndTheGoodOnesCombined) {
  fs::path good = temp_.path() / "good.coverage";
  sql(good, std::string(kSchema7) +
                "INSERT INTO meta VALUES ('has_arcs', '1');"
                "INSERT INTO file VALUES (1, '/src/m.py');"
                "INSERT INTO context VALUES (1, '');"
                "INSERT INTO arc VALUES (1, 1, -1, 1), (1, 1, 1, 2), (1, 1, 2, -1);");
  fs::path empty = temp_.path() / "empty.coverage";
  util::write_file_atomic(empty, "");
  fs::path text = temp_.path() / "text.coverage";
  util::write_file_atomic(text, "!coverage.py: This is a private format, don't read it directly!{}");
  fs::path garbage = temp_.path() / "garbage.coverage";
  util::write_file_atomic(garbage, std::string(5000, '\x01'));
  fs::path no_tables = temp_.path() / "no-tables.coverage";
  sql(no_tables, "CREATE TABLE results (name text);");
  fs::path old_schema = temp_.path() / "old-schema.coverage";
  sql(old_schema, std::string(kSchema7) + "UPDATE coverage_schema SET version = 6;");
  fs::path no_version = temp_.path() / "no-version.coverage";
  sql(no_version, std::string(kSchema7) + "DELETE FROM coverage_schema;");
  // A view where a table should be: a hostile schema must not be run.
  fs::path view = temp_.path() / "view.coverage";
  sql(view, std::string(kSchema7) + "DROP TABLE file; CREATE VIEW file AS SELECT 1 AS id, 'x' AS path;");
  fs::path both = temp_.path() / "both.coverage";
  sql(both, std::string(kSchema7) +
                "INSERT INTO file VALUES (1, '/src/m.py'); INSERT INTO context VALUES (1, '');"
                "INSERT INTO line_bits VALUES (1, 1, x'02'); INSERT INTO arc VALUES (1, 1, 1, 2);");
  fs::path wrong_type = temp_.path() / "wrong-type.coverage";
  sql(wrong_type, std::string(kSchema7) +
                      "INSERT INTO file VALUES (1, '/src/m.py'); INSERT INTO context VALUES (1, '');"
                      "INSERT INTO line_bits VALUES (1, 1, 'not a blob');");
  fs::path truncated = temp_.path() / "truncated.coverage";
  {
    std::string whole = util::read_file(good);
    util::write_file_atomic(truncated, whole.substr(0, whole.size() / 2));
  }
  fs::path missing = temp_.path() / "missing.coverage";

  struct Case {
    fs::path input;
    std::string says;
  };
  std::vector<Case> cases = {{empty, "empty"},
                             {text, "coverage.py 4"},
                             {garbage, "not an SQLite database"},
                             {no_tables, "no table coverage_schema"},
                             {old_schema, "schema version 6"},
                             {no_version, "coverage_schema table is empty"},
                             {view, "no table file"},
                             {both, "both line data and arc"},
                             {wrong_type, "numbits is text, not a blob"},
                             {truncated, "not a readable coverage.py data file"},
                             {missing, "no such coverage data file"}};
  std::vector<fs::path> inputs = {good};
  for (const Case& bad : cases) {
    inputs.push_back(bad.input);
    try {
      CoverageData::read(bad.input);
      ADD_FAILURE() << bad.input << " was read";
    } catch (const UsageError& e) {
      EXPECT_THAT(e.what(), AllOf(HasSubstr(bad.input.string()), HasSubstr(bad.says)));
    }
  }

  fs::path out = temp_.path() / "out.coverage";
  CoverageCombineResult result = combine_coverage_data(inputs, out);
  EXPECT_EQ(result.combined, 1u);
  ASSERT_EQ(result.problems.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(result.problems[i].file, cases[i].input);
  CoverageData data = CoverageData::read(out);
  EXPECT_TRUE(data.has_arcs());
  EXPECT_THAT(data.lines("/src/m.py"), ElementsAre(1, 2));

  // Nothing usable at all: an error naming every input, and nothing written.
  fs::path nothing = temp_.path() / "nothing.coverage";
  try {
    combine_coverage_data({empty, garbage}, nothing);
    ADD_FAILURE() << "combined nothing";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr(empty.string()), HasSubstr(garbage.string())));
  }
  EXPECT_FALSE(fs::exists(nothing));
}

TEST_F(CoverageDataTest, TracersMustAgree) {
  fs::path a = temp_.path() / "a.coverage";
  fs::path b = temp_.path() / "b.coverage";
  for (const auto& [path, tracer] :
       {std::pair{a, "'django_coverage_plugin.DjangoTemplatePlugin'"}, std::pair{b, "''"}}) {
    sql(path, std::string(kSchema7) +
                  "INSERT INTO meta VALUES ('has_arcs', '0');"
                  "INSERT INTO file VALUES (1, '/src/page.html'); INSERT INTO context VALUES (1, '');"
                  "INSERT INTO line_bits VALUES (1, 1, x'02'); INSERT INTO tracer VALUES (1, " +
                  tracer + ");");
  }
  try {
    combine_coverage_data({a, b}, temp_.path() / "out.coverage");
    ADD_FAILURE() << "two tracers for one file were combined";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("/src/page.html"), HasSubstr("DjangoTemplatePlugin")));
  }
  // The same plugin on both sides is one file.
  CoverageCombineResult same = combine_coverage_data({a, a}, temp_.path() / "same.coverage");
  EXPECT_EQ(same.files, 1u);
}

TEST_F(CoverageDataTest, TheOutputAmongTheInputsIsReplacedNotAdded) {
  fs::path a = temp_.path() / "a.coverage";
  fs::path out = temp_.path() / ".coverage";
  sql(a, std::string(kSchema7) +
             "INSERT INTO meta VALUES ('has_arcs', '0'); INSERT INTO file VALUES (1, '/src/a.py');"
             "INSERT INTO context VALUES (1, ''); INSERT INTO line_bits VALUES (1, 1, x'02');");
  sql(out, std::string(kSchema7) +
               "INSERT INTO meta VALUES ('has_arcs', '0'); INSERT INTO file VALUES (1, '/src/old.py');"
               "INSERT INTO context VALUES (1, ''); INSERT INTO line_bits VALUES (1, 1, x'02');");
  CoverageCombineResult result = combine_coverage_data({out, a}, out);
  EXPECT_EQ(result.combined, 1u);
  EXPECT_THAT(CoverageData::read(out).files(), ElementsAre("/src/a.py"));
  // Written through a rename: no temporary file is left beside it.
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(temp_.path())) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("a.coverage", ".coverage"));
}

TEST_F(CoverageDataTest, ManyInputsAreCombinedInTheirOrderWhileLaterOnesAreRead) {
  // More inputs than files are read ahead: each file's arcs (a different line per file) all arrive, the
  // tracer conflict of the tenth stops the combine with readers still busy, and nothing is left behind.
  std::vector<fs::path> inputs;
  for (int i = 0; i < 24; ++i) {
    fs::path input = temp_.path() / fmt::format("part-{:02}.coverage", i);
    sql(input,
        std::string(kSchema7) +
            fmt::format(
                "INSERT INTO meta VALUES ('has_arcs', '1'); INSERT INTO file VALUES (7, '/src/f{}.py');"
                "INSERT INTO file VALUES (9, '/src/common.py');"
                "INSERT INTO context VALUES (3, ''); INSERT INTO arc VALUES (7, 3, -1, {});"
                "INSERT INTO arc VALUES (9, 3, {}, {});",
                i % 5, i + 1, i + 1, i + 2));
    inputs.push_back(input);
  }
  fs::path out = temp_.path() / "out.coverage";
  CoverageCombineResult result = combine_coverage_data(inputs, out);
  EXPECT_EQ(result.combined, 24u);
  // Lines 1 to 25 of common.py, and in f0 to f4 the 24 lines their entry arcs reach.
  EXPECT_EQ(result.lines, 49u);
  CoverageData data = CoverageData::read(out);
  EXPECT_EQ(data.files().size(), 6u);
  std::vector<std::pair<std::int64_t, std::int64_t>> expected;
  for (int i = 0; i < 24; ++i) expected.emplace_back(i + 1, i + 2);
  EXPECT_EQ(data.arcs("/src/common.py"), expected);

  sql(inputs[9], "INSERT INTO tracer VALUES (9, 'plugin.Tracer')");
  fs::remove(out);
  EXPECT_THROW(combine_coverage_data(inputs, out), UsageError);
  EXPECT_FALSE(fs::exists(out));
}

TEST(PathRemapTest, WholeLeadingComponentsOnly) {
  std::vector<PathRemap> remaps = {{"/builds/ci/app", "/home/me/app"}, {"/builds/", "/srv"}};
  EXPECT_EQ(remap_path("/builds/ci/app/pkg/m.py", remaps), "/home/me/app/pkg/m.py");
  EXPECT_EQ(remap_path("/builds/ci/app", remaps), "/home/me/app");
  // "/builds/ci/app" is not a prefix of "/builds/ci/application": the second rule applies.
  EXPECT_EQ(remap_path("/builds/ci/application/m.py", remaps), "/srv/ci/application/m.py");
  EXPECT_EQ(remap_path("/elsewhere/m.py", remaps), "/elsewhere/m.py");
  EXPECT_EQ(remap_path("relative/m.py", {{"relative/", "/abs/"}}), "/abs/m.py");
  // A Windows group's paths take the result's separators.
  EXPECT_EQ(remap_path("C:\\work\\app\\m.py", {{"C:\\work", "/src"}}), "/src/app/m.py");
  EXPECT_EQ(remap_path("/src/app/m.py", {{"/src", "D:\\ci"}}), "D:\\ci\\app\\m.py");
}

TEST(PathRemapTest, ParsedFromFromEqualsTo) {
  PathRemap remap = parse_path_remap("/builds/ci=/home/me/a=b");
  EXPECT_EQ(remap.from, "/builds/ci");
  EXPECT_EQ(remap.to, "/home/me/a=b");
  for (const char* bad : {"", "/builds/ci", "=/home", "/builds="}) {
    EXPECT_THROW(parse_path_remap(bad), UsageError) << bad;
  }
}

}  // namespace
}  // namespace testfleet::reports
