#include "cli/merge_command.hpp"

#include <fmt/format.h>
#include <glob.h>

#include <iostream>

#include "reports/cobertura.hpp"
#include "reports/junit.hpp"
#include "reports/lcov.hpp"
#include "util/error.hpp"

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

int merge_reports(const std::string& kind, const std::string& out, const std::vector<std::string>& inputs) {
  std::vector<std::string> files = expand_globs(inputs);
  if (files.empty()) throw UsageError("no input files to merge");
  if (kind == "junit") {
    reports::JUnitMerger merger;
    for (const std::string& file : files) merger.add_file(file);
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
                             files.size() - result.problems.size(), out, result.lines_covered, result.lines_valid,
                             result.branches_covered, result.branches_valid);
    return result.problems.empty() ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  if (kind == "lcov") {
    reports::LcovResult result = reports::merge_lcov(paths, out);
    for (const reports::InputProblem& problem : result.problems) {
      std::cerr << "testfleet: error: " << problem.message << "\n";
    }
    for (const reports::InputProblem& warning : result.warnings) std::cerr << "testfleet: warning: " << warning.message << "\n";
    std::cout << fmt::format("merged {} files into {}: {} of {} lines hit, {} of {} branches, {} of {} functions\n",
                             files.size() - result.problems.size(), out, result.lines_hit, result.lines_found,
                             result.branches_hit, result.branches_found, result.functions_hit,
                             result.functions_found);
    return result.problems.empty() ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  throw UsageError(fmt::format("unknown report kind '{}' (expected junit, cobertura or lcov)", kind));
}

}  // namespace testfleet::cli
