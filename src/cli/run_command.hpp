#pragma once

#include "cli/run_options.hpp"

namespace testfleet::cli {

// `testfleet run`: returns the exit code (0, 1, 3, 129, 130, 143); throws Error for usage errors.
int run_tests(const RunOptions& options);

// `testfleet plan`: prints the plan, runs nothing but the collection.
int print_plan(const RunOptions& options);

// `testfleet matrix N`: a GitHub Actions matrix of N shards with their estimated times, as JSON.
int print_matrix(const RunOptions& options, int shards);

}  // namespace testfleet::cli
