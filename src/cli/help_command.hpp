// `testfleet help [COMMAND]` and `testfleet help --man`: the manual comes from the same CLI11 definitions
// as `--help`, so the man page shipped in the .deb and the tarball can never disagree with the binary.
// The man page is rendered at build time by running the freshly linked binary (cmake/packaging.cmake).
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>

namespace testfleet::cli {

struct HelpRequest {
  std::string topic;  // a subcommand's name; empty for the whole program
  bool man = false;   // the whole manual as a troff man page (section 1)
};

// Adds the `help` subcommand to `app`, filling `request` when it is parsed. `app` must take one subcommand
// at most (require_subcommand(1)), or CLI11 reads `help run` as two commands.
CLI::App* add_help_command(CLI::App& app, HelpRequest& request);

// Prints what `request` asks for. Throws UsageError naming the topic and the topics there are when the
// topic is not a subcommand of `app`.
int print_help(const CLI::App& app, const HelpRequest& request, std::ostream& out);

// The man page of `app` and every visible subcommand: their descriptions, options and footers.
std::string render_man_page(const CLI::App& app);

}  // namespace testfleet::cli
