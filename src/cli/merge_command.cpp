#include "cli/merge_command.hpp"

#include <fmt/format.h>
#include <glob.h>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "ci/ci_output.hpp"
#include "reports/cobertura.hpp"
#include "reports/coverage_data.hpp"
#include "reports/durations.hpp"
#include "reports/junit.hpp"
#include "reports/lcov.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"

namespace testfleet::cli {

std::vector<std::string> expand_globs(const std::vector<std::string>& patterns) {
  std::vector<std::string> files;
  for (const std::string& pattern : patterns) {
    glob_t matches{};
    int rc = ::glob(pattern.c_str(), GLOB_NOCHECK | GLOB_BRACE | GLOB_TILDE, nullptr, &matches);
    if (rc == 0) {
      for (std::size_t i = 0; i < matches.gl_pathc; ++i) files.emplace_back(matches.gl_pathv[i]);
    }
    ::globfree(&matches);
  }
  return files;
}

int merge_reports(const std::string& kind, const std::string& out, const std::vector<std::string>& inputs,
                  const std::vector<std::string>& remaps) {
  if (!remaps.empty() && kind != "coverage") throw UsageError("--remap applies to merge coverage only");
  std::vector<std::string> files = expand_globs(inputs);
  if (files.empty()) throw UsageError("no input files to merge");
  if (kind == "junit") {
    reports::JUnitMerger merger;
    merger.add_files(std::vector<std::filesystem::path>(files.begin(), files.end()));
    merger.write(out);
    for (const reports::InputProblem& problem : merger.problems()) {
      std::cerr << "testfleet: error: " << problem.message << "\n";
    }
    for (const auto& [classname, name] : merger.duplicates()) {
      std::cerr << fmt::format("testfleet: warning: {} {} is in more than one input file\n", classname, name);
    }
    reports::Totals totals = merger.totals();
    std::cout << fmt::format("merged {} files into {}: {} tests, {} failures, {} errors, {} skipped\n",
                             files.size() - merger.problems().size(), out, totals.tests, totals.failures,
                             totals.errors, totals.skipped);
    return merger.problems().empty() ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  std::vector<std::filesystem::path> paths(files.begin(), files.end());
  if (kind == "cobertura") {
    reports::CoberturaResult result = reports::merge_cobertura(paths, out);
    for (const reports::InputProblem& problem : result.problems) {
      std::cerr << "testfleet: error: " << problem.message << "\n";
    }
    std::cout << fmt::format("merged {} files into {}: {} of {} lines covered, {} of {} branches\n",
                             files.size() - result.problems.size(), out, result.lines_covered,
                             result.lines_valid, result.branches_covered, result.branches_valid);
    return result.problems.empty() ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  if (kind == "lcov") {
    reports::LcovResult result = reports::merge_lcov(paths, out);
    for (const reports::InputProblem& problem : result.problems) {
      std::cerr << "testfleet: error: " << problem.message << "\n";
    }
    for (const reports::InputProblem& warning : result.warnings)
      std::cerr << "testfleet: warning: " << warning.message << "\n";
    std::cout << fmt::format(
        "merged {} files into {}: {} of {} lines hit, {} of {} branches, {} of {} functions\n",
        files.size() - result.problems.size(), out, result.lines_hit, result.lines_found, result.branches_hit,
        result.branches_found, result.functions_hit, result.functions_found);
    return result.problems.empty() ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  if (kind == "coverage") {
    std::vector<reports::PathRemap> rules;
    for (const std::string& remap : remaps) rules.push_back(reports::parse_path_remap(remap));
    reports::CoverageCombineResult result = reports::combine_coverage_data(paths, out, rules);
    for (const reports::InputProblem& problem : result.problems) {
      std::cerr << "testfleet: error: " << problem.message << "\n";
    }
    std::cout << fmt::format(
        "combined {} coverage data files into {}: {} source files, {} lines executed{}, "
        "{} contexts\n",
        result.combined, out, result.files, result.lines, result.has_arcs ? " (with branches)" : "",
        result.contexts);
    return result.problems.empty() ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  throw UsageError(
      fmt::format("unknown report kind '{}' (expected junit, cobertura, lcov or coverage)", kind));
}

int merge_runs(const std::string& out, const std::vector<std::string>& inputs, const std::string& durations) {
  std::vector<std::string> dirs = expand_globs(inputs);
  if (dirs.empty()) throw UsageError("no reports directories to merge");
  struct Run {
    std::filesystem::path dir;
    nlohmann::json record;
  };
  std::vector<Run> runs;
  for (const std::string& dir : dirs) {
    std::filesystem::path record_path = std::filesystem::path(dir) / "run.json";
    if (!std::filesystem::exists(record_path)) {
      throw UsageError(fmt::format("{} is not a testfleet reports directory: it has no run.json", dir));
    }
    nlohmann::json record = nlohmann::json::parse(util::read_file(record_path), nullptr, false);
    if (record.is_discarded() || !record.is_object()) {
      throw UsageError(fmt::format("{}: not valid JSON", record_path.string()));
    }
    runs.push_back({dir, record});
  }

  // Every shard 1..N present exactly once: a missing one is a shard that never uploaded its artifact.
  int count = 0;
  std::map<int, std::filesystem::path> shards;
  for (const Run& run : runs) {
    int index = 1;
    int total = 1;
    if (run.record.contains("shard")) {
      index = run.record["shard"].value("index", 1);
      total = run.record["shard"].value("count", 1);
    }
    if (count != 0 && total != count) {
      throw UsageError(fmt::format("{} is shard {}/{}, but another run says there are {} shards",
                                   run.dir.string(), index, total, count));
    }
    count = total;
    auto [it, inserted] = shards.emplace(index, run.dir);
    if (!inserted) {
      throw UsageError(fmt::format("shard {}/{} is given twice: {} and {}", index, total, it->second.string(),
                                   run.dir.string()));
    }
  }
  std::vector<std::string> missing;
  for (int k = 1; k <= count; ++k) {
    if (!shards.count(k)) missing.push_back(fmt::format("{}/{}", k, count));
  }
  if (!missing.empty()) {
    std::cerr << fmt::format(
        "testfleet: error: shard{} {} of {} {} missing: no reports directory was given for "
        "{} (did its job fail before uploading its artifact?)\n",
        missing.size() > 1 ? "s" : "", util::join(missing, ", "), count, missing.size() > 1 ? "are" : "is",
        missing.size() > 1 ? "them" : "it");
    return static_cast<int>(ExitCode::kInfrastructure);
  }

  std::filesystem::path out_dir(out);
  std::filesystem::create_directories(out_dir);
  reports::JUnitMerger merger;
  reports::DurationStore store;
  if (!durations.empty() && std::filesystem::exists(durations)) store.load_test_durations(durations);
  std::vector<std::filesystem::path> coverage;
  ci::RunSummary summary;
  for (const auto& [index, dir] : shards) {
    std::filesystem::path junit = dir / "junit.xml";
    if (!std::filesystem::exists(junit)) {
      std::cerr << fmt::format("testfleet: error: shard {}/{} has no junit.xml in {}\n", index, count,
                               dir.string());
      return static_cast<int>(ExitCode::kInfrastructure);
    }
    merger.add_file(junit);
    if (std::filesystem::exists(dir / "durations.json")) {
      reports::DurationStore shard_durations;
      shard_durations.load_test_durations(dir / "durations.json");
      for (const auto& [id, seconds] : shard_durations.entries()) store.set(id, seconds);
    }
    if (std::filesystem::exists(dir / "coverage.xml")) coverage.push_back(dir / "coverage.xml");
  }
  for (const Run& run : runs) {
    ci::GroupSummary row;
    row.index = run.record.contains("shard") ? run.record["shard"].value("index", 1) : 1;
    row.tests = run.record.value("planned_tests", std::size_t{0});
    row.seconds = run.record.value("wall_seconds", 0.0);
    int code = run.record.value("exit_code", 0);
    row.status = fmt::format("exit {}", code);
    row.failed = code != 0;
    row.log = run.dir / "run.json";
    summary.groups.push_back(row);
    summary.wall_seconds = std::max(summary.wall_seconds, row.seconds);
  }
  std::sort(summary.groups.begin(), summary.groups.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });

  std::filesystem::path junit_out = out_dir / "junit.xml";
  merger.write(junit_out);
  util::write_file_atomic(out_dir / ".test_durations", store.to_test_durations_json());
  bool coverage_problems = false;
  if (!coverage.empty()) {
    reports::CoberturaResult result = reports::merge_cobertura(coverage, out_dir / "coverage.xml");
    for (const reports::InputProblem& problem : result.problems)
      std::cerr << "testfleet: error: " << problem.message << "\n";
    coverage_problems = !result.problems.empty();
  }
  summary.run_id = fmt::format("{} shards", count);
  summary.totals = merger.totals();
  summary.testcases = merger.testcases();
  summary.merged_junit = junit_out.string();
  util::write_file_atomic(out_dir / "summary.md", ci::github_step_summary(summary));
  for (const reports::InputProblem& problem : merger.problems())
    std::cerr << "testfleet: error: " << problem.message << "\n";
  for (const auto& [classname, name] : merger.duplicates()) {
    std::cerr << fmt::format("testfleet: warning: {} {} was reported by more than one shard\n", classname,
                             name);
  }
  const reports::Totals& t = summary.totals;
  std::cout << fmt::format(
      "merged {} shards into {}: {} tests, {} failures, {} errors, {} skipped; {} durations in "
      "{}{}\n",
      count, junit_out.string(), t.tests, t.failures, t.errors, t.skipped, store.size(),
      (out_dir / ".test_durations").string(),
      coverage.empty() ? "" : "; coverage in " + (out_dir / "coverage.xml").string());
  if (!merger.problems().empty() || coverage_problems) return static_cast<int>(ExitCode::kUsage);
  return t.failures + t.errors > 0 ? static_cast<int>(ExitCode::kTestsFailed) : 0;
}

}  // namespace testfleet::cli
