#include "environments/native_postgres_session.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <optional>

#include "util/error.hpp"
#include "util/scram.hpp"

namespace testfleet::environments {
namespace {

// Larger messages than this are not what a login or an ALTER ROLE answers; a peer sending one is not a
// PostgreSQL we started.
constexpr std::uint32_t kMaxMessage = 1 << 20;

void append32(std::string& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xFF));
}

std::uint32_t read32(std::string_view data, std::size_t offset) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<std::uint8_t>(data[offset + i]);
  return value;
}

// The fields of an ErrorResponse or NoticeResponse body: 'C' the SQLSTATE, 'M' the message.
std::string field(std::string_view body, char code) {
  std::size_t i = 0;
  while (i < body.size() && body[i] != '\0') {
    std::size_t end = body.find('\0', i + 1);
    if (end == std::string_view::npos) break;
    if (body[i] == code) return std::string(body.substr(i + 1, end - i - 1));
    i = end + 1;
  }
  return {};
}

std::string describe_error(std::string_view body) {
  return fmt::format("{} ({})", field(body, 'M'), field(body, 'C'));
}

}  // namespace

PostgresSession::PostgresSession(util::StreamConnection connection, std::string where,
                                 util::Clock::time_point deadline)
    : connection_(std::move(connection)), where_(std::move(where)), deadline_(deadline) {}

PostgresSession::~PostgresSession() {
  if (connection_.fd() >= 0) connection_.send_all(std::string_view("X\0\0\0\4", 5), deadline_, nullptr);
}

void PostgresSession::fail(std::string_view what) const {
  throw InfrastructureError(fmt::format("{}: {}", where_, what));
}

void PostgresSession::send(char type, std::string_view body) {
  std::string message(1, type);
  append32(message, static_cast<std::uint32_t>(body.size() + 4));
  message.append(body);
  std::string error;
  if (!connection_.send_all(message, deadline_, &error)) fail(error);
}

PostgresSession::Message PostgresSession::receive() {
  std::string error;
  while (buffer_.size() < 5) {
    if (!connection_.receive_some(buffer_, deadline_, &error)) fail(error);
  }
  std::uint32_t length = read32(buffer_, 1);
  if (length < 4 || length > kMaxMessage)
    fail(fmt::format("a message of {} bytes (type '{}') is not PostgreSQL's", length, buffer_[0]));
  while (buffer_.size() < 1 + std::size_t{length}) {
    if (!connection_.receive_some(buffer_, deadline_, &error)) fail(error);
  }
  Message message{buffer_[0], buffer_.substr(5, length - 4)};
  buffer_.erase(0, 1 + std::size_t{length});
  return message;
}

void PostgresSession::until_ready() {
  // After a query, an ErrorResponse is followed by ReadyForQuery: the session stays usable.
  std::optional<std::string> error;
  while (true) {
    Message message = receive();
    if (message.type == 'E' && !error) error = describe_error(message.body);
    if (message.type == 'Z') break;
  }
  if (error) fail(*error);
}

PostgresSession PostgresSession::open(const ServerAddress& address, std::string_view user,
                                      std::string_view password, std::string_view database,
                                      util::Clock::time_point deadline) {
  std::string where = fmt::format("postgres at {}", address.text());
  std::string error;
  std::optional<util::StreamConnection> connection = connect_to(address, deadline, &error);
  if (!connection) throw InfrastructureError(fmt::format("{}: {}", where, error));
  PostgresSession session(std::move(*connection), where, deadline);

  // The startup message has no type byte: its length, protocol 3.0, then name/value pairs.
  std::string parameters;
  append32(parameters, 196608);
  for (std::string_view part : {std::string_view("user"), user, std::string_view("database"), database,
                                std::string_view("application_name"), std::string_view("testfleet")}) {
    parameters.append(part);
    parameters.push_back('\0');
  }
  parameters.push_back('\0');
  std::string startup;
  append32(startup, static_cast<std::uint32_t>(parameters.size() + 4));
  startup += parameters;
  if (!session.connection_.send_all(startup, deadline, &error)) session.fail(error);

  std::optional<util::ScramSha256Client> scram;
  while (true) {
    Message message = session.receive();
    if (message.type == 'E') session.fail(describe_error(message.body));
    if (message.type != 'R')
      session.fail(fmt::format("unexpected message '{}' while logging in", message.type));
    if (message.body.size() < 4) session.fail("an authentication request without a code");
    std::uint32_t code = read32(message.body, 0);
    std::string_view data = std::string_view(message.body).substr(4);
    if (code == 0) break;  // AuthenticationOk
    if (code == 10) {      // AuthenticationSASL: the mechanisms, each NUL-terminated
      if (data.find(std::string_view("SCRAM-SHA-256\0", 14)) == std::string_view::npos)
        session.fail("the server offers no SCRAM-SHA-256");
      scram.emplace(std::string(), std::string(password));
      std::string first = scram->client_first();
      std::string body("SCRAM-SHA-256\0", 14);
      append32(body, static_cast<std::uint32_t>(first.size()));
      body += first;
      session.send('p', body);
    } else if (code == 11 && scram) {  // AuthenticationSASLContinue: the server's first message
      session.send('p', scram->client_final(data));
    } else if (code == 12 && scram) {  // AuthenticationSASLFinal: the server's signature
      if (!scram->server_final_valid(data)) session.fail("the server's SCRAM signature is wrong");
    } else {
      session.fail(fmt::format(
          "asks for authentication method {}, where testfleet's servers use SCRAM-SHA-256 (pg_hba.conf)",
          code));
    }
  }
  // Parameters and the backend's key, then ReadyForQuery; an error here ends the connection.
  while (true) {
    Message message = session.receive();
    if (message.type == 'E') session.fail(describe_error(message.body));
    if (message.type == 'Z') return session;
  }
}

void PostgresSession::execute(std::string_view statement) {
  std::string body(statement);
  body.push_back('\0');
  send('Q', body);
  until_ready();
}

}  // namespace testfleet::environments
