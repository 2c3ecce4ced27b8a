#include "cli/app.hpp"

int main(int argc, char** argv) {
  return testfleet::cli::main(argc, argv);
}
