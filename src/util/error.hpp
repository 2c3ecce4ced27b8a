// Errors in two kinds, as the exit codes promise: a usage or configuration error (exit 2) and an
// infrastructure error (exit 3). Low-level code throws them with a message that names the file, line or
// value at fault; the one catch in main prints the message and exits with the code.
#pragma once

#include <stdexcept>
#include <string>

namespace testfleet {

enum class ExitCode : int {
  kSuccess = 0,
  kTestsFailed = 1,
  kUsage = 2,
  kInfrastructure = 3,
  kNoTests = 5,
  kHangup = 129,
  kInterrupted = 130,
  kTerminated = 143,
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// Bad flags, bad configuration, bad input files named by the user.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(ExitCode::kUsage, message) {}
};

// The machine, a server, an engine or a child process failed us.
class InfrastructureError : public Error {
 public:
  explicit InfrastructureError(const std::string& message) : Error(ExitCode::kInfrastructure, message) {}
};

}  // namespace testfleet
