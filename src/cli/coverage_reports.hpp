// pytest-cov in every group writes its own coverage data file (COVERAGE_FILE per group, no reports); once
// all groups are done, coverage.py combines them and writes the reports the user asked for, once, from the
// combined data, as a serial run would have.
#pragma once

#include <vector>

#include "cli/pipeline.hpp"
#include "runners/pytest_runner.hpp"
#include "ui/status_printer.hpp"

namespace testfleet::cli {

// Returns false (having said why) when combining or a report failed.
bool combine_coverage(const runners::PytestRunner& runner, const std::vector<runners::GroupRequest>& groups,
                      const RunContext& context, ui::StatusPrinter& printer);

}  // namespace testfleet::cli
