#include "execution/provisioner.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

namespace testfleet::execution {

std::vector<ProvisionResult> provision_all(
    std::vector<std::unique_ptr<environments::Environment>>& environments, const std::atomic<bool>& cancel,
    ui::StatusPrinter& printer) {
  std::vector<ProvisionResult> results(environments.size());
  std::mutex print_mutex;
  // The status area shows every group provisioning, then ready (waiting for the others) or failed.
  std::vector<ui::GroupView> views(environments.size());
  for (std::size_t i = 0; i < views.size(); ++i) {
    views[i].index = static_cast<int>(i) + 1;
    views[i].state = ui::GroupState::kProvisioning;
  }
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::atomic<std::size_t> running{environments.size()};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < environments.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        environments[i]->provision(cancel);
      } catch (const std::exception& e) {
        results[i].error = e.what();
      }
      results[i].seconds = elapsed();
      std::lock_guard lock(print_mutex);
      views[i].state = results[i].error ? ui::GroupState::kFailed : ui::GroupState::kWaiting;
      views[i].elapsed = results[i].seconds;
      views[i].detail = results[i].error ? "environment failed" : "ready";
      if (!results[i].error) {
        printer.line(fmt::format("group {} ready in {:.2f}s: {}", i + 1, results[i].seconds,
                                 environments[i]->describe()));
      }
      --running;
    });
  }
  while (running.load() > 0) {
    {
      std::lock_guard lock(print_mutex);
      for (ui::GroupView& view : views) {
        if (view.state == ui::GroupState::kProvisioning) view.elapsed = elapsed();
      }
      printer.status(views, elapsed());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  for (std::thread& t : threads) t.join();
  printer.clear();
  return results;
}

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
