#include "cli/app.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "util/error.hpp"

namespace testfleet::cli {

int main(int argc, char** argv) {
  CLI::App app{"testfleet: split a slow test suite into balanced groups, each in its own environment"};
  app.set_version_flag("--version", std::string("testfleet ") + TESTFLEET_VERSION);
  CLI11_PARSE(app, argc, argv);
  return 0;
}

}  // namespace testfleet::cli
