// SHA-256 (FIPS 180-4), HMAC-SHA-256 (RFC 2104) and PBKDF2-HMAC-SHA-256 (RFC 8018): what SCRAM-SHA-256
// (util/scram.hpp) needs to log in to PostgreSQL and to give it a password without sending the password,
// in a static binary that links no cryptographic library. Digests are binary strings of 32 bytes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace testfleet::util {

class Sha256 {
 public:
  Sha256();
  void update(std::string_view data);
  // The digest of everything given; the object is spent afterwards.
  std::string finish();

 private:
  void compress(const std::uint8_t* block);

  std::array<std::uint32_t, 8> state_;
  std::array<std::uint8_t, 64> block_{};
  std::size_t block_used_ = 0;
  std::uint64_t length_ = 0;  // bytes given so far
};

std::string sha256(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view message);
// The first 32 bytes of PBKDF2's output: all SCRAM-SHA-256 uses.
std::string pbkdf2_sha256(std::string_view password, std::string_view salt, unsigned iterations);

}  // namespace testfleet::util
