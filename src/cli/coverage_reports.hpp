// pytest-cov in every group writes its own coverage data file (COVERAGE_FILE per group, no reports); once
// all groups are done, coverage.py combines them and writes the reports the user asked for, once, from the
// combined data, as a serial run would have.
#pragma once

#include <vector>

#include "cli/pipeline.hpp"
#include "runners/pytest_runner.hpp"
#include "ui/status_printer.hpp"

namespace testfleet::cli {

// Combining runs where the groups ran: on this machine for the host and native backends, in a fresh
// container of the test service for compose (the data files name the container's paths, and coverage.py
// needs the sources to write reports). Every output lands where a serial `pytest --cov` in the current
// directory leaves it, whichever the backend: the combined data in COVERAGE_FILE, else ./.coverage (for
// compose with the container's paths, as a serial run in the container leaves it), and a report that names
// a relative file or folder relative to the current directory. One line at the end says where each went.
// Returns false (having said why) when combining or a report failed.
bool combine_coverage(const runners::PytestRunner& runner, const std::vector<runners::GroupRequest>& groups,
                      const RunContext& context, environments::Backend& backend, ui::StatusPrinter& printer);

}  // namespace testfleet::cli
