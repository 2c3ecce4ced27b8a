// The HTML report of a run (ui/html_report.hpp) from the command line: written after every `testfleet run`,
// and made again by `testfleet report DIR` from a reports directory, e.g. one downloaded from CI.
#pragma once

#include <filesystem>

#include "ui/status_printer.hpp"

namespace testfleet::cli {

// `testfleet report DIR`: rewrites DIR/report.html from DIR's run.json and group files and prints its path.
// Returns 0; throws UsageError when DIR holds no run.
int rebuild_report(const std::filesystem::path& reports_dir);

// The last step of a run, after run.json is written: writes the report and says where it is. A report
// that cannot be written is a warning: the tests' outcome, not the page, decides the exit code.
void publish_html_report(const std::filesystem::path& reports_dir, ui::StatusPrinter& printer);

}  // namespace testfleet::cli
