// What is done to every environment of a run at once, a thread each (it is mostly waiting): asking what
// failed in it, tearing it down. Provisioning is the Fleet's, which starts each worker as its own is ready.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "environments/environment.hpp"

namespace testfleet::execution {

// Asks every environment concurrently what failed in it while its group ran (Environment::problems()).
std::vector<std::vector<std::string>> problems_of_all(
    std::vector<std::unique_ptr<environments::Environment>>& environments);

// Tears every environment down concurrently; returns what could not be removed. `seconds`, when given,
// receives how long each environment took.
std::vector<std::string> teardown_all(std::vector<std::unique_ptr<environments::Environment>>& environments,
                                      std::vector<double>* seconds = nullptr);

}  // namespace testfleet::execution
