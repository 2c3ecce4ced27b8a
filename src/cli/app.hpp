#pragma once

namespace testfleet::cli {

// Parses the command line, runs the subcommand, and turns every error into its exit code: the one catch.
int main(int argc, char** argv);

}  // namespace testfleet::cli
