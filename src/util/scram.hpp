// The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding: how testfleet logs in to
// the PostgreSQL servers it starts (their pg_hba.conf asks every client for it) and how it computes the
// stored form of a group's password, so that the password itself never travels, not even to the server.
// Passwords must be ASCII (SASLprep leaves those unchanged); testfleet's are hexadecimal.
#pragma once

#include <string>
#include <string_view>

namespace testfleet::util {

// What a server stores for a password: StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
// ServerKey = HMAC(SaltedPassword, "Server Key"), binary, 32 bytes each.
struct ScramKeys {
  std::string stored_key;
  std::string server_key;
};
ScramKeys scram_sha256_keys(std::string_view password, std::string_view salt, unsigned iterations);

// One authentication exchange: client_first(), then client_final() with the server's first message, then
// server_final_valid() with its last.
class ScramSha256Client {
 public:
  // `nonce`: printable ASCII without commas; empty: 18 random bytes in base64.
  ScramSha256Client(std::string user, std::string password, std::string nonce = {});

  // "n,,n=USER,r=NONCE"
  std::string client_first() const;
  // "c=biws,r=NONCE,p=PROOF". Throws InfrastructureError when the server's message is malformed, its nonce
  // does not extend ours, or it asks for an absurd iteration count.
  std::string client_final(std::string_view server_first);
  // Whether the server proved that it knows the password ("v=SIGNATURE"). Throws InfrastructureError with
  // the server's reason for "e=..." and for a message without a signature.
  bool server_final_valid(std::string_view server_final) const;

 private:
  std::string first_bare() const;

  std::string user_;
  std::string password_;
  std::string nonce_;
  std::string expected_server_signature_;
};

}  // namespace testfleet::util
