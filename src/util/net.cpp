#include "util/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "util/error.hpp"
#include "util/strings.hpp"

namespace testfleet::util {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 24 * 3600 * 1000));
}

// Waits for `events` on fd until the deadline; false on timeout (EINTR restarts with the time left).
bool poll_until(int fd, short events, Clock::time_point deadline) {
  while (true) {
    struct pollfd pfd = {fd, events, 0};
    int rc = ::poll(&pfd, 1, remaining_ms(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

socklen_t to_sockaddr(const IpAddress& address, std::uint16_t port, sockaddr_storage* storage) {
  std::memset(storage, 0, sizeof *storage);
  if (address.family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, address.bytes.data(), 16);
    return sizeof(sockaddr_in6);
  }
  auto* in4 = reinterpret_cast<sockaddr_in*>(storage);
  in4->sin_family = AF_INET;
  in4->sin_port = htons(port);
  std::memcpy(&in4->sin_addr, address.bytes.data(), 4);
  return sizeof(sockaddr_in);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

void add_unique(std::vector<IpAddress>& addresses, const IpAddress& address) {
  if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) addresses.push_back(address);
}

// ---- /etc/hosts ----

std::vector<IpAddress> lookup_hosts_file(const std::filesystem::path& path, const std::string& name) {
  std::vector<IpAddress> found;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::vector<std::string> words;
    std::string word;
    for (char c : line) {
      if (c == ' ' || c == '\t' || c == '\r') {
        if (!word.empty()) words.push_back(std::move(word));
        word.clear();
      } else {
        word.push_back(c);
      }
    }
    if (!word.empty()) words.push_back(std::move(word));
    if (words.size() < 2) continue;
    std::optional<IpAddress> address = IpAddress::parse(words[0]);
    if (!address) continue;
    for (std::size_t i = 1; i < words.size(); ++i) {
      if (lower(words[i]) == name) add_unique(found, *address);
    }
  }
  return found;
}

// ---- DNS over UDP (RFC 1035), A records only ----

struct ResolvConf {
  std::vector<IpAddress> nameservers;
  std::vector<std::string> search;
  int ndots = 1;
  std::optional<int> timeout_seconds;
};

ResolvConf read_resolv_conf(const std::filesystem::path& path) {
  ResolvConf conf;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> words;
    for (const std::string& word : split(line, ' ')) {
      for (const std::string& part : split(word, '\t')) {
        if (!trim(part).empty()) words.emplace_back(trim(part));
      }
    }
    if (words.empty() || words[0][0] == '#' || words[0][0] == ';') continue;
    if (words[0] == "nameserver" && words.size() >= 2 && conf.nameservers.size() < 3) {
      std::string text = words[1];
      std::size_t scope = text.find('%');  // link-local scope ids are not supported: use the address
      if (scope != std::string::npos) text.resize(scope);
      if (std::optional<IpAddress> address = IpAddress::parse(text)) conf.nameservers.push_back(*address);
    } else if ((words[0] == "search" || words[0] == "domain") && words.size() >= 2) {
      conf.search.assign(words.begin() + 1, words.end());
    } else if (words[0] == "options") {
      for (std::size_t i = 1; i < words.size(); ++i) {
        if (starts_with(words[i], "ndots:")) {
          conf.ndots = std::clamp(std::atoi(words[i].c_str() + 6), 0, 15);
        } else if (starts_with(words[i], "timeout:")) {
          conf.timeout_seconds = std::clamp(std::atoi(words[i].c_str() + 8), 1, 30);
        }
      }
    }
  }
  // As the C library does: no nameserver line means a resolver on this machine.
  if (conf.nameservers.empty()) conf.nameservers.push_back(*IpAddress::parse("127.0.0.1"));
  return conf;
}

enum class DnsOutcome { kAddresses, kNoSuchName, kNoData, kFailed };

struct DnsAnswer {
  DnsOutcome outcome = DnsOutcome::kFailed;
  std::vector<IpAddress> addresses;
  std::string error;
};

bool encode_name(const std::string& name, std::string* out) {
  for (const std::string& label : split(name, '.')) {
    if (label.empty() || label.size() > 63) return false;
    out->push_back(static_cast<char>(label.size()));
    out->append(label);
  }
  out->push_back('\0');
  return out->size() <= 255 + 12 + 1;
}

// Skips a possibly compressed name; false when it runs past the message.
bool skip_name(std::string_view message, std::size_t* offset) {
  while (*offset < message.size()) {
    auto length = static_cast<std::uint8_t>(message[*offset]);
    if ((length & 0xC0) == 0xC0) {
      *offset += 2;
      return *offset <= message.size();
    }
    *offset += 1;
    if (length == 0) return true;
    *offset += length;
  }
  return false;
}

std::uint16_t read16(std::string_view message, std::size_t offset) {
  return static_cast<std::uint16_t>((static_cast<std::uint8_t>(message[offset]) << 8) |
                                    static_cast<std::uint8_t>(message[offset + 1]));
}

DnsAnswer parse_dns_response(std::string_view message, std::uint16_t id) {
  DnsAnswer answer;
  if (message.size() < 12 || read16(message, 0) != id || (read16(message, 2) & 0x8000) == 0) {
    answer.error = "malformed DNS response";
    return answer;
  }
  std::uint16_t flags = read16(message, 2);
  int rcode = flags & 0x000F;
  if (rcode == 3) {
    answer.outcome = DnsOutcome::kNoSuchName;
    answer.error = "no such host";
    return answer;
  }
  if (rcode != 0) {
    answer.error = fmt::format("DNS error code {}", rcode);
    return answer;
  }
  std::size_t offset = 12;
  for (int i = 0; i < read16(message, 4); ++i) {
    if (!skip_name(message, &offset)) break;
    offset += 4;
  }
  int answers = read16(message, 6);
  for (int i = 0; i < answers && offset < message.size(); ++i) {
    if (!skip_name(message, &offset) || offset + 10 > message.size()) break;
    std::uint16_t type = read16(message, offset);
    std::uint16_t klass = read16(message, offset + 2);
    std::uint16_t length = read16(message, offset + 8);
    offset += 10;
    if (offset + length > message.size()) break;
    if (type == 1 && klass == 1 && length == 4) {
      IpAddress address;
      std::memcpy(address.bytes.data(), message.data() + offset, 4);
      add_unique(answer.addresses, address);
    }
    offset += length;
  }
  answer.outcome = answer.addresses.empty() ? DnsOutcome::kNoData : DnsOutcome::kAddresses;
  if (answer.addresses.empty()) answer.error = "no address record";
  return answer;
}

DnsAnswer query_a_record(const IpAddress& server, std::uint16_t port, const std::string& name,
                         std::chrono::milliseconds timeout) {
  DnsAnswer answer;
  static std::mutex random_mutex;
  static std::mt19937 random{std::random_device{}()};
  std::uint16_t id;
  {
    std::lock_guard<std::mutex> lock(random_mutex);
    id = static_cast<std::uint16_t>(random());
  }
  std::string query;
  query.push_back(static_cast<char>(id >> 8));
  query.push_back(static_cast<char>(id & 0xFF));
  query.append(std::string_view("\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10));  // RD, one question
  if (!encode_name(name, &query)) {
    answer.outcome = DnsOutcome::kNoSuchName;
    answer.error = "not a valid host name";
    return answer;
  }
  query.append(std::string_view("\x00\x01\x00\x01", 4));  // type A, class IN

  std::string where = fmt::format("{}:{}", server.text(), port);
  Fd fd(::socket(server.family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_storage address;
  socklen_t address_length = to_sockaddr(server, port, &address);
  // Connected, so that only the server's datagrams reach us and an ICMP refusal shows up as an error.
  if (fd.get() < 0 || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), address_length) != 0 ||
      ::send(fd.get(), query.data(), query.size(), 0) < 0) {
    answer.error = fmt::format("cannot query {}: {}", where, std::strerror(errno));
    return answer;
  }
  Clock::time_point deadline = Clock::now() + timeout;
  char buffer[1500];
  while (poll_until(fd.get(), POLLIN, deadline)) {
    ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      answer.error = fmt::format("cannot query {}: {}", where, std::strerror(errno));
      return answer;
    }
    std::string_view message(buffer, static_cast<std::size_t>(n));
    if (message.size() < 2 || read16(message, 0) != id) continue;  // a late answer to an earlier query
    return parse_dns_response(message, id);
  }
  answer.error =
      fmt::format("no answer from {} within {:.1f}s", where, std::chrono::duration<double>(timeout).count());
  return answer;
}

// The names to ask for, in resolv.conf's order: a name with fewer than ndots dots is tried with the
// search domains first (Kubernetes' "db" -> "db.ns.svc.cluster.local"), a name ending in '.' as it is.
std::vector<std::string> candidate_names(const std::string& name, const ResolvConf& conf) {
  if (ends_with(name, ".")) return {name.substr(0, name.size() - 1)};
  std::vector<std::string> names;
  auto dots = std::count(name.begin(), name.end(), '.');
  if (dots >= conf.ndots) names.push_back(name);
  for (const std::string& domain : conf.search) {
    std::string suffix = domain;
    if (ends_with(suffix, ".")) suffix.pop_back();
    if (!suffix.empty()) names.push_back(name + "." + suffix);
  }
  if (dots < conf.ndots) names.push_back(name);
  return names;
}

Resolution resolve_with_dns(const std::string& name, const ResolverConfig& config) {
  ResolvConf conf = read_resolv_conf(config.resolv_conf);
  std::chrono::milliseconds timeout = config.query_timeout;
  if (conf.timeout_seconds)
    timeout = std::min(timeout, std::chrono::milliseconds(*conf.timeout_seconds * 1000));
  Resolution result;
  bool every_server_answered = true;
  std::string failure;
  for (const std::string& candidate : candidate_names(name, conf)) {
    for (const IpAddress& server : conf.nameservers) {
      DnsAnswer answer = query_a_record(server, config.dns_port, candidate, timeout);
      if (answer.outcome == DnsOutcome::kAddresses) {
        result.addresses = std::move(answer.addresses);
        return result;
      }
      if (answer.outcome == DnsOutcome::kNoSuchName || answer.outcome == DnsOutcome::kNoData) break;
      every_server_answered = false;
      failure = answer.error;
    }
  }
  result.error = every_server_answered ? "no such host" : failure;
  return result;
}

#ifndef TESTFLEET_STATIC
Resolution resolve_with_getaddrinfo(const std::string& name) {
  Resolution result;
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* list = nullptr;
  int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    result.error = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    return result;
  }
  for (struct addrinfo* entry = list; entry != nullptr; entry = entry->ai_next) {
    IpAddress address;
    if (entry->ai_family == AF_INET) {
      std::memcpy(address.bytes.data(), &reinterpret_cast<sockaddr_in*>(entry->ai_addr)->sin_addr, 4);
    } else if (entry->ai_family == AF_INET6) {
      address.family = AF_INET6;
      std::memcpy(address.bytes.data(), &reinterpret_cast<sockaddr_in6*>(entry->ai_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    add_unique(result.addresses, address);
  }
  ::freeaddrinfo(list);
  return result;
}
#endif

}  // namespace

std::string Endpoint::text() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Endpoint parse_endpoint(std::string_view text) {
  std::string_view original = text;
  text = trim(text);
  auto fail = [&](std::string_view why) -> Endpoint {
    throw UsageError(fmt::format("invalid endpoint '{}': {} (expected HOST:PORT, e.g. db:5432 or [::1]:5432)",
                                 original, why));
  };
  std::string_view host;
  std::string_view port;
  if (starts_with(text, "[")) {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos) return fail("no closing ']'");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') return fail("no port");
    port = text.substr(close + 2);
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return fail("an IPv6 address needs brackets");
  }
  if (host.empty()) return fail("no host");
  if (port.empty()) return fail("no port");
  if (port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fail(fmt::format("port '{}' is not a number", port));
  }
  int number = std::stoi(std::string(port));
  if (number < 1 || number > 65535) return fail(fmt::format("port {} is out of range 1-65535", number));
  return Endpoint{std::string(host), static_cast<std::uint16_t>(number)};
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  std::string copy(text);
  IpAddress address;
  if (::inet_pton(AF_INET, copy.c_str(), address.bytes.data()) == 1) return address;
  address.family = AF_INET6;
  if (::inet_pton(AF_INET6, copy.c_str(), address.bytes.data()) == 1) return address;
  return std::nullopt;
}

std::string IpAddress::text() const {
  char buffer[INET6_ADDRSTRLEN];
  ::inet_ntop(family, bytes.data(), buffer, sizeof buffer);
  return buffer;
}

std::uint16_t find_free_port() {
  static std::mutex mutex;
  static std::deque<std::uint16_t> recent;
  static std::set<std::uint16_t> recent_set;
  constexpr std::size_t kRemembered = 4096;
  std::lock_guard<std::mutex> lock(mutex);
  for (int attempt = 0; attempt < 100; ++attempt) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0)
      throw InfrastructureError(fmt::format("cannot create a socket: {}", std::strerror(errno)));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw InfrastructureError(fmt::format("cannot bind a socket on 127.0.0.1: {}", std::strerror(errno)));
    }
    socklen_t length = sizeof address;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw InfrastructureError(fmt::format("cannot read a socket's port: {}", std::strerror(errno)));
    }
    std::uint16_t port = ntohs(address.sin_port);
    if (recent_set.count(port) != 0) continue;
    recent.push_back(port);
    recent_set.insert(port);
    if (recent.size() > kRemembered) {
      recent_set.erase(recent.front());
      recent.pop_front();
    }
    return port;
  }
  throw InfrastructureError("cannot find a free TCP port on 127.0.0.1");
}

StreamConnection::~StreamConnection() {
  if (fd_ >= 0) ::close(fd_);
}

StreamConnection& StreamConnection::operator=(StreamConnection&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

bool StreamConnection::send_all(std::string_view data, Clock::time_point deadline, std::string* error) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!poll_until(fd_, POLLOUT, deadline)) {
        if (error) *error = "timed out sending";
        return false;
      }
      continue;
    }
    if (error) *error = std::strerror(errno);
    return false;
  }
  return true;
}

bool StreamConnection::receive_some(std::string& out, Clock::time_point deadline, std::string* error) {
  char buffer[4096];
  while (true) {
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n > 0) {
      out.append(buffer, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) {
      if (error) *error = "connection closed by the server";
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      if (error) *error = std::strerror(errno);
      return false;
    }
    if (!poll_until(fd_, POLLIN, deadline)) {
      if (error) *error = "timed out waiting for an answer";
      return false;
    }
  }
}

std::optional<StreamConnection> tcp_connect(const IpAddress& address, std::uint16_t port,
                                            Clock::time_point deadline, std::string* error) {
  auto fail = [&](int err) -> std::optional<StreamConnection> {
    if (error) *error = lower(std::strerror(err));
    return std::nullopt;
  };
  StreamConnection connection(::socket(address.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (connection.fd() < 0) return fail(errno);
  sockaddr_storage storage;
  socklen_t length = to_sockaddr(address, port, &storage);
  if (::connect(connection.fd(), reinterpret_cast<sockaddr*>(&storage), length) == 0) return connection;
  if (errno != EINPROGRESS && errno != EINTR) return fail(errno);
  if (!poll_until(connection.fd(), POLLOUT, deadline)) {
    if (error) *error = "connection timed out";
    return std::nullopt;
  }
  int so_error = 0;
  socklen_t so_length = sizeof so_error;
  if (::getsockopt(connection.fd(), SOL_SOCKET, SO_ERROR, &so_error, &so_length) != 0) return fail(errno);
  if (so_error != 0) return fail(so_error);
  return connection;
}

std::optional<StreamConnection> unix_connect(const std::filesystem::path& path, Clock::time_point deadline,
                                             std::string* error) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string& text = path.native();
  if (text.size() >= sizeof address.sun_path) {
    if (error) {
      *error = fmt::format("{} is {} bytes, longer than the {} a Unix socket's path may be", text,
                           text.size(), sizeof address.sun_path - 1);
    }
    return std::nullopt;
  }
  std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
  StreamConnection connection(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (connection.fd() < 0) {
    if (error) *error = lower(std::strerror(errno));
    return std::nullopt;
  }
  while (true) {
    if (::connect(connection.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0)
      return connection;
    if (errno == EINTR) continue;
    // A full backlog: the server is there but busy; wait for the socket, as for a TCP connect.
    if (errno == EAGAIN && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (error) *error = lower(std::strerror(errno));
    return std::nullopt;
  }
}

Resolution resolve_host(std::string_view host_text, const ResolverConfig& config) {
  Resolution result;
  std::string host = lower(trim(host_text));
  if (starts_with(host, "[") && ends_with(host, "]")) host = host.substr(1, host.size() - 2);
  if (host.empty()) {
    result.error = "empty host name";
    return result;
  }
  if (std::optional<IpAddress> numeric = IpAddress::parse(host)) {
    result.addresses.push_back(*numeric);
    return result;
  }
  std::string bare = ends_with(host, ".") ? host.substr(0, host.size() - 1) : host;
  result.addresses = lookup_hosts_file(config.hosts_file, bare);
  if (!result.addresses.empty()) return result;
  // RFC 6761: localhost is the loopback even where /etc/hosts does not say so (minimal containers).
  if (bare == "localhost" || ends_with(bare, ".localhost")) {
    result.addresses.push_back(*IpAddress::parse("127.0.0.1"));
    return result;
  }
  Resolution dns = resolve_with_dns(host, config);
  if (!dns.addresses.empty()) return dns;
#ifndef TESTFLEET_STATIC
  // The static build (cmake/static.cmake) never asks NSS: its glibc would dlopen the modules of another
  // glibc, or find none in a minimal container.
  if (config.use_getaddrinfo) {
    Resolution nss = resolve_with_getaddrinfo(bare);
    if (!nss.addresses.empty()) return nss;
  }
#endif
  result.error = dns.error;
  return result;
}

bool can_connect(const Endpoint& endpoint, Clock::time_point deadline, std::string* error,
                 const ResolverConfig& config) {
  ResolverConfig bounded = config;
  bounded.query_timeout =
      std::min(config.query_timeout, std::chrono::milliseconds(remaining_ms(deadline) + 1));
  Resolution resolution = resolve_host(endpoint.host, bounded);
  if (resolution.addresses.empty()) {
    if (error) *error = fmt::format("cannot resolve {}: {}", endpoint.host, resolution.error);
    return false;
  }
  for (const IpAddress& address : resolution.addresses) {
    if (tcp_connect(address, endpoint.port, deadline, error)) return true;
  }
  return false;
}

bool wait_for_port(const Endpoint& endpoint, Clock::time_point deadline, const std::atomic<bool>& cancel,
                   std::string* error, const ResolverConfig& config) {
  constexpr std::chrono::milliseconds kAttempt{1000};
  constexpr std::chrono::milliseconds kPause{50};
  bool first = true;
  while (true) {
    if (cancel.load()) {
      if (error) *error = "cancelled";
      return false;
    }
    Clock::time_point now = Clock::now();
    if (!first && now >= deadline) return false;
    // Even with no time left, one attempt: a port that is already open is open.
    Clock::time_point attempt_deadline = std::max(std::min(deadline, now + kAttempt), now + kPause);
    if (can_connect(endpoint, attempt_deadline, error, config)) return true;
    first = false;
    Clock::time_point wake = std::min(deadline, Clock::now() + kPause);
    if (wake > Clock::now()) std::this_thread::sleep_until(wake);
  }
}

std::vector<EndpointWait> wait_for_endpoints(const std::vector<Endpoint>& endpoints,
                                             std::chrono::milliseconds timeout,
                                             const std::atomic<bool>& cancel,
                                             const std::function<void(const EndpointWait&)>& on_ready,
                                             const ResolverConfig& config) {
  std::vector<EndpointWait> results(endpoints.size());
  Clock::time_point start = Clock::now();
  Clock::time_point deadline = start + timeout;
  std::mutex callback_mutex;
  std::vector<std::thread> threads;
  threads.reserve(endpoints.size());
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    threads.emplace_back([&, i] {
      EndpointWait& result = results[i];
      result.endpoint = endpoints[i];
      result.ready = wait_for_port(endpoints[i], deadline, cancel, &result.last_error, config);
      result.waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
      if (result.ready) {
        result.last_error.clear();
        if (on_ready) {
          std::lock_guard<std::mutex> lock(callback_mutex);
          on_ready(result);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return results;
}

}  // namespace testfleet::util
