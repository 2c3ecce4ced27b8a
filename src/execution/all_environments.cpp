#include "execution/all_environments.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

namespace testfleet::execution {

namespace {

// Calls `work(i, environment)` for every environment at once, a thread each, and returns when all have.
template <typename Work>
void each_at_once(std::vector<std::unique_ptr<environments::Environment>>& environments, Work work) {
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < environments.size(); ++i) {
    if (environments[i]) threads.emplace_back([&, i] { work(i, *environments[i]); });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace

std::vector<std::vector<std::string>> problems_of_all(
    std::vector<std::unique_ptr<environments::Environment>>& environments) {
  std::vector<std::vector<std::string>> found(environments.size());
  each_at_once(environments, [&](std::size_t i, environments::Environment& environment) {
    found[i] = environment.problems();
  });
  return found;
}

std::vector<std::string> teardown_all(std::vector<std::unique_ptr<environments::Environment>>& environments,
                                      std::vector<double>* seconds) {
  std::vector<std::vector<std::string>> leftovers(environments.size());
  std::vector<double> durations(environments.size(), 0.0);
  each_at_once(environments, [&](std::size_t i, environments::Environment& environment) {
    auto start = std::chrono::steady_clock::now();
    leftovers[i] = environment.teardown();
    durations[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  });
  if (seconds != nullptr) *seconds = durations;
  std::vector<std::string> all;
  for (auto& list : leftovers) all.insert(all.end(), list.begin(), list.end());
  return all;
}

}  // namespace testfleet::execution
