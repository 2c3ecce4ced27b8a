// coverage.py's data files (`.coverage`: SQLite, schema version 7, ../shared/FORMATS.md) read and combined
// natively, as `coverage combine` does, so that the groups' data can be combined where coverage.py is not
// installed.
//
// A data file holds line data (per file and context, one "numbits" blob: line n sets bit n%8 of byte n/8)
// or arc data (branch coverage: the (from, to) line pairs taken, per file and context), never both.
// Combining one kind with the other is refused, naming both files, as coverage.py refuses it: a report of
// half line and half arc data would count the branches of some files only. Paths are remapped first, as
// coverage.py's [paths] setting does for groups that ran under different roots, so that one source file
// measured in two checkouts becomes one file; then numbits are OR-ed per (file, context), arcs, contexts
// and files united. The result is written in the same schema, readable by `coverage report/xml/json`.
//
// Inputs come from other machines and containers: a data file is opened read-only with its schema
// untrusted (no functions from views or triggers), and anything that is not coverage.py data of schema 7
// (empty, not SQLite, tables missing, another schema version, rows of the wrong type) is a UsageError
// naming the file, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "reports/junit.hpp"

namespace testfleet::reports {

// One rule of a [paths] remapping: a path whose leading components are `from` gets `to` in their place.
struct PathRemap {
  std::string from;
  std::string to;
};

// "FROM=TO", as given to --remap; throws UsageError naming the text when a side is empty or '=' is missing.
PathRemap parse_path_remap(std::string_view text);

// `path` through the first rule that matches it (a whole-component prefix, '/' or '\' separated; the rest
// of the path takes the separators of `to`), or unchanged when none does.
std::string remap_path(const std::string& path, const std::vector<PathRemap>& remaps);

class CoverageData {
 public:
  CoverageData() = default;
  // Moved, never copied: path_indexes_ points into paths_, which a move keeps in place and a copy would not.
  CoverageData(CoverageData&&) = default;
  CoverageData& operator=(CoverageData&&) = default;
  CoverageData(const CoverageData&) = delete;
  CoverageData& operator=(const CoverageData&) = delete;

  // Reads one data file, its paths remapped. Throws UsageError naming the file when it is not coverage.py
  // data of schema version 7.
  static CoverageData read(const std::filesystem::path& path, const std::vector<PathRemap>& remaps = {});

  // Adds the measurements of `other`. Throws UsageError naming the files at fault, leaving this data as it
  // was, when one side holds line data and the other arc data, or when a file was measured by different
  // tracers (coverage.py plugins) on the two sides.
  void update(const CoverageData& other);

  // Writes a data file of schema 7 through a temporary file in the same folder and a rename. Throws
  // InfrastructureError naming the path when it cannot.
  void write(const std::filesystem::path& path) const;

  bool has_lines() const { return !lines_from_.empty(); }
  bool has_arcs() const { return !arcs_from_.empty(); }
  // Measured paths and contexts, sorted.
  std::vector<std::string> files() const;
  std::vector<std::string> contexts() const;
  std::size_t file_count() const { return paths_.size(); }
  std::size_t context_count() const { return contexts_.size(); }
  // The lines of `path` executed in any context (for arc data, the lines arcs start or end at, as
  // coverage.py counts them), sorted.
  std::vector<std::int64_t> lines(const std::string& path) const;
  // (file, line) pairs executed: the sum of lines(path).size() over files().
  std::size_t executed_lines() const;
  // The arcs of `path` taken in any context, sorted; empty for line data.
  std::vector<std::pair<std::int64_t, std::int64_t>> arcs(const std::string& path) const;

 private:
  struct Arc {
    std::uint32_t file;
    std::uint32_t context;
    std::int64_t from;
    std::int64_t to;
    auto operator<=>(const Arc&) const = default;
  };
  using FileContext = std::pair<std::uint32_t, std::uint32_t>;

  std::uint32_t file_index(const std::string& path);
  std::uint32_t context_index(const std::string& context);

  std::deque<std::string> paths_;  // a deque: the keys of path_indexes_ point into its strings
  std::unordered_map<std::string_view, std::uint32_t> path_indexes_;
  std::vector<std::string> tracers_;  // per file; "" for coverage.py's own Python tracer
  std::vector<std::string> contexts_;
  std::unordered_map<std::string, std::uint32_t> context_indexes_;
  std::map<FileContext, std::string> line_bits_;  // numbits as bytes
  std::vector<Arc> arcs_;                         // sorted, unique
  std::string lines_from_;                        // the first file that brought line data, or ""
  std::string arcs_from_;                         // the first file that brought arc data, or ""
  std::string version_;                           // meta `version`: the coverage.py that measured
};

struct CoverageCombineResult {
  std::vector<InputProblem> problems;  // inputs that are not coverage.py data: not combined
  std::size_t combined = 0;            // inputs combined
  std::size_t files = 0;
  std::size_t contexts = 0;
  std::size_t lines = 0;  // (file, line) pairs executed
  bool has_arcs = false;
};

// `coverage combine --keep INPUTS` into `out`, `remaps` applied to every input's paths. An input that is
// not coverage.py data is named in `problems` and skipped (coverage.py warns and skips it too); the others
// are combined and written. An input that is `out` itself is skipped, as coverage.py skips it: the result
// replaces it. Throws UsageError, writing nothing, when line and arc data are mixed or no input is usable;
// InfrastructureError when `out` cannot be written.
CoverageCombineResult combine_coverage_data(const std::vector<std::filesystem::path>& inputs,
                                            const std::filesystem::path& out,
                                            const std::vector<PathRemap>& remaps = {});

}  // namespace testfleet::reports
