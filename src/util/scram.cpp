#include "util/scram.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <optional>

#include "util/error.hpp"
#include "util/secrets.hpp"
#include "util/sha256.hpp"
#include "util/strings.hpp"

namespace testfleet::util {
namespace {

// A server that asks for billions of rounds would stall a provisioning thread for hours.
constexpr unsigned long kMaxIterations = 10'000'000;

std::string exclusive_or(std::string a, std::string_view b) {
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) a[i] = static_cast<char>(a[i] ^ b[i]);
  return a;
}

// The value of attribute `name` ("r", "s", "i", "v", "e") in a comma-separated SCRAM message.
std::optional<std::string> attribute(std::string_view message, char name) {
  for (const std::string& part : split(message, ',')) {
    if (part.size() >= 2 && part[0] == name && part[1] == '=') return part.substr(2);
  }
  return std::nullopt;
}

[[noreturn]] void malformed(std::string_view what, std::string_view message) {
  throw InfrastructureError(fmt::format("SCRAM-SHA-256: {} in the server's message '{}'", what, message));
}

}  // namespace

ScramKeys scram_sha256_keys(std::string_view password, std::string_view salt, unsigned iterations) {
  std::string salted = pbkdf2_sha256(password, salt, iterations);
  return ScramKeys{sha256(hmac_sha256(salted, "Client Key")), hmac_sha256(salted, "Server Key")};
}

ScramSha256Client::ScramSha256Client(std::string user, std::string password, std::string nonce)
    : user_(std::move(user)),
      password_(std::move(password)),
      nonce_(nonce.empty() ? base64_encode(random_bytes(18)) : std::move(nonce)) {}

std::string ScramSha256Client::first_bare() const {
  // saslname: ',' and '=' are escaped as =2C and =3D.
  std::string name = replace_all(replace_all(user_, "=", "=3D"), ",", "=2C");
  return fmt::format("n={},r={}", name, nonce_);
}

std::string ScramSha256Client::client_first() const {
  return "n,," + first_bare();
}

std::string ScramSha256Client::client_final(std::string_view server_first) {
  std::optional<std::string> nonce = attribute(server_first, 'r');
  std::optional<std::string> salt_text = attribute(server_first, 's');
  std::optional<std::string> iterations_text = attribute(server_first, 'i');
  if (!nonce || !salt_text || !iterations_text) malformed("no nonce, salt or iteration count", server_first);
  if (!starts_with(*nonce, nonce_) || nonce->size() == nonce_.size())
    malformed("a nonce that does not extend ours", server_first);
  std::optional<std::string> salt = base64_decode(*salt_text);
  if (!salt || salt->empty()) malformed("a salt that is not base64", server_first);
  char* end = nullptr;
  unsigned long iterations = std::strtoul(iterations_text->c_str(), &end, 10);
  if (iterations_text->empty() || *end != '\0' || iterations == 0 || iterations > kMaxIterations)
    malformed("an iteration count out of range", server_first);

  std::string without_proof = "c=biws,r=" + *nonce;  // biws: base64 of the GS2 header "n,,"
  std::string auth_message = first_bare() + "," + std::string(server_first) + "," + without_proof;
  std::string salted = pbkdf2_sha256(password_, *salt, static_cast<unsigned>(iterations));
  std::string client_key = hmac_sha256(salted, "Client Key");
  std::string client_signature = hmac_sha256(sha256(client_key), auth_message);
  expected_server_signature_ = hmac_sha256(hmac_sha256(salted, "Server Key"), auth_message);
  return without_proof + ",p=" + base64_encode(exclusive_or(client_key, client_signature));
}

bool ScramSha256Client::server_final_valid(std::string_view server_final) const {
  if (std::optional<std::string> error = attribute(server_final, 'e')) {
    throw InfrastructureError(fmt::format("SCRAM-SHA-256: the server refused: {}", *error));
  }
  std::optional<std::string> signature = attribute(server_final, 'v');
  if (!signature) malformed("no signature", server_final);
  std::optional<std::string> decoded = base64_decode(*signature);
  return decoded && !expected_server_signature_.empty() && *decoded == expected_server_signature_;
}

}  // namespace testfleet::util
