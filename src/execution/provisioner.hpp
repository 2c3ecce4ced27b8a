// Provisioning every group's environment at once: one thread per group (starting servers is mostly
// waiting), each failure kept with its group, and a stop signal turning into a cancel for all of them.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "environments/environment.hpp"
#include "ui/status_printer.hpp"

namespace testfleet::execution {

struct ProvisionResult {
  double seconds = 0;
  std::optional<std::string> error;  // what failed, naming the server or service
};

// Provisions each environment concurrently and returns one result per environment, in order.
std::vector<ProvisionResult> provision_all(
    std::vector<std::unique_ptr<environments::Environment>>& environments, const std::atomic<bool>& cancel,
    ui::StatusPrinter& printer);

// Asks every environment concurrently what failed in it while its group ran (Environment::problems()).
std::vector<std::vector<std::string>> problems_of_all(
    std::vector<std::unique_ptr<environments::Environment>>& environments);

// Tears every environment down concurrently; returns what could not be removed. `seconds`, when given,
// receives how long each environment took.
std::vector<std::string> teardown_all(std::vector<std::unique_ptr<environments::Environment>>& environments,
                                      std::vector<double>* seconds = nullptr);

}  // namespace testfleet::execution
