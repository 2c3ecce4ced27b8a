#include "cli/merge_command.hpp"

#include <fmt/format.h>
#include <glob.h>

#include <iostream>

#include "reports/junit.hpp"
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
  throw UsageError(fmt::format("unknown report kind '{}' (expected junit, cobertura or lcov)", kind));
}

}  // namespace testfleet::cli
