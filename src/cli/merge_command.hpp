#pragma once

#include <string>
#include <vector>

namespace testfleet::cli {

// `testfleet merge junit|cobertura|lcov OUT IN...`: IN may be globs. Returns 0, or 2 when an input was
// bad (the good ones are still merged, the bad ones named with their position).
int merge_reports(const std::string& kind, const std::string& out, const std::vector<std::string>& inputs);

// Expands shell-style globs (no shell involved); a pattern matching nothing is an error naming it.
std::vector<std::string> expand_globs(const std::vector<std::string>& patterns);

}  // namespace testfleet::cli
