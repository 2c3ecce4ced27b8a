#pragma once

#include "cli/run_options.hpp"

namespace testfleet::cli {

// `testfleet run`: returns the exit code (0, 1, 3, 129, 130, 143); throws Error for usage errors.
int run_tests(const RunOptions& options);

// `testfleet plan`: prints the plan, runs nothing but the collection.
int print_plan(const RunOptions& options);

}  // namespace testfleet::cli
