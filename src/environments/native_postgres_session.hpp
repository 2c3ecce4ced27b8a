// Just enough of PostgreSQL's frontend/backend protocol (v3.0) for testfleet to act on the servers it
// starts: log in over TCP or the private Unix socket with SCRAM-SHA-256 (the only method their pg_hba.conf
// offers), run a statement of the simple query protocol, and read the server's errors. No libpq: the static
// binary links none, and one statement per group does not need one.
#pragma once

#include <string>
#include <string_view>

#include "environments/native_server.hpp"
#include "util/net.hpp"

namespace testfleet::environments {

class PostgresSession {
 public:
  // Connects and logs in; throws InfrastructureError with the reason: the connection's, or the server's
  // own message and SQLSTATE ('password authentication failed for user "postgres"' (28P01)). A server that
  // logs in without a password (trust) is accepted; one that asks for a password in the clear or for MD5 is
  // refused: testfleet sends a password to nobody.
  static PostgresSession open(const ServerAddress& address, std::string_view user, std::string_view password,
                              std::string_view database, util::Clock::time_point deadline);

  PostgresSession(PostgresSession&&) noexcept = default;
  PostgresSession& operator=(PostgresSession&&) noexcept = default;
  PostgresSession(const PostgresSession&) = delete;
  PostgresSession& operator=(const PostgresSession&) = delete;
  // Says goodbye (Terminate) when still connected.
  ~PostgresSession();

  // Runs one statement; throws InfrastructureError with the server's message and SQLSTATE. The statement is
  // never part of the message: it may carry a password verifier.
  void execute(std::string_view statement);

 private:
  struct Message {
    char type = 0;
    std::string body;
  };

  PostgresSession(util::StreamConnection connection, std::string where, util::Clock::time_point deadline);
  void send(char type, std::string_view body);
  Message receive();
  [[noreturn]] void fail(std::string_view what) const;
  // Reads up to ReadyForQuery after a query; the first ErrorResponse is thrown after it.
  void until_ready();

  util::StreamConnection connection_;
  std::string where_;  // "postgres at 127.0.0.1:41234", for messages
  util::Clock::time_point deadline_;
  std::string buffer_;
};

}  // namespace testfleet::environments
