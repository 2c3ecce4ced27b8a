#include "cli/report_command.hpp"

#include <fmt/format.h>

#include <iostream>

#include "ui/html_report.hpp"

namespace testfleet::cli {
namespace {

std::string generated_by() {
  return fmt::format("testfleet {}", TESTFLEET_VERSION);
}

}  // namespace

int rebuild_report(const std::filesystem::path& reports_dir) {
  std::filesystem::path report = ui::write_html_report(reports_dir, generated_by());
  std::cout << report.string() << "\n";
  return 0;
}

void publish_html_report(const std::filesystem::path& reports_dir, ui::StatusPrinter& printer) {
  try {
    std::filesystem::path report = ui::write_html_report(reports_dir, generated_by());
    printer.line(fmt::format("report: {}", report.string()));
  } catch (const std::exception& e) {
    printer.line(fmt::format("warning: no HTML report: {}", e.what()));
  }
}

}  // namespace testfleet::cli
