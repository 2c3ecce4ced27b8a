#include "util/secrets.hpp"

#include <fmt/format.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "util/error.hpp"

namespace testfleet::util {

std::string random_bytes(std::size_t count) {
  std::string out(count, '\0');
  std::size_t done = 0;
  while (done < count) {
    ssize_t n = ::getrandom(out.data() + done, count - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw InfrastructureError(fmt::format("cannot read the system's random source (getrandom): {}",
                                            n < 0 ? std::strerror(errno) : "no bytes"));
    }
    done += static_cast<std::size_t>(n);
  }
  return out;
}

std::string random_secret() {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string bytes = random_bytes(32);
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char byte : bytes) {
    auto value = static_cast<unsigned char>(byte);
    out.push_back(kDigits[value >> 4]);
    out.push_back(kDigits[value & 0xF]);
  }
  return out;
}

std::string redact(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    std::size_t at = 0;
    while ((at = text.find(secret, at)) != std::string::npos) {
      text.replace(at, secret.size(), "***");
      at += 3;
    }
  }
  return text;
}

}  // namespace testfleet::util
