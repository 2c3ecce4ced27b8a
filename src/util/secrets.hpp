// The credentials of the servers testfleet starts: drawn from the kernel's random source (getrandom(2),
// never a seeded PRNG: a secret another job on the machine could reproduce is no secret), and masked in
// whatever text might be shown.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace testfleet::util {

// `count` bytes from getrandom(2). Throws InfrastructureError when the kernel gives none.
std::string random_bytes(std::size_t count);

// 32 random bytes as 64 lowercase hexadecimal digits (256 bits): safe unquoted in a URL, a configuration
// file, a connection string and a shell word.
std::string random_secret();

// `text` with every occurrence of each non-empty secret replaced by "***".
std::string redact(std::string text, const std::vector<std::string>& secrets);

}  // namespace testfleet::util
