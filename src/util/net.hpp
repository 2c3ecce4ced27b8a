// TCP plumbing for services and `testfleet wait`: free ports, connects with deadlines (to TCP ports and to
// Unix sockets), waiting for a port to open, and name resolution that works in a fully static binary.
//
// A static glibc cannot load NSS modules, so getaddrinfo() there fails (or worse, loads a libnss of another
// glibc). resolve_host() therefore does what a container's resolver needs by itself: numeric addresses,
// then /etc/hosts, then A queries over UDP to the nameservers of /etc/resolv.conf (with its search list and
// ndots), and only then getaddrinfo() for what NSS alone knows (mDNS, LDAP hosts) where it works.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace testfleet::util {

using Clock = std::chrono::steady_clock;

struct Endpoint {
  std::string host;
  std::uint16_t port = 0;

  // "db:5432", "[::1]:5432"
  std::string text() const;
  bool operator==(const Endpoint&) const = default;
};

// Parses HOST:PORT, with IPv6 literals in brackets ([::1]:5432). Throws UsageError naming the text and
// what is wrong with it (no port, a port out of range, an empty host).
Endpoint parse_endpoint(std::string_view text);

struct IpAddress {
  int family = AF_INET;                  // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> bytes{};  // 4 bytes used for AF_INET

  static std::optional<IpAddress> parse(std::string_view text);  // numeric only
  std::string text() const;
  bool operator==(const IpAddress&) const = default;
};

// A port on 127.0.0.1 that nothing listens on now. The kernel picks it (bind to port 0); a port handed out
// by this process is not handed out again soon, so that groups provisioned at once never share one. Another
// process may still take it before our server binds it: callers retry with a new port on EADDRINUSE.
// Throws InfrastructureError when no socket can be bound.
std::uint16_t find_free_port();

// A connected stream socket, TCP or Unix; closed when the object dies.
class StreamConnection {
 public:
  StreamConnection() = default;
  explicit StreamConnection(int fd) : fd_(fd) {}
  ~StreamConnection();
  StreamConnection(StreamConnection&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  StreamConnection& operator=(StreamConnection&& other) noexcept;
  StreamConnection(const StreamConnection&) = delete;
  StreamConnection& operator=(const StreamConnection&) = delete;

  int fd() const { return fd_; }
  // Both return false (with `error` set) on failure or when the deadline passes.
  bool send_all(std::string_view data, Clock::time_point deadline, std::string* error);
  // Appends what arrives (at least one byte) to `out`; false on end of stream, error or deadline.
  bool receive_some(std::string& out, Clock::time_point deadline, std::string* error);

 private:
  int fd_ = -1;
};

// Connects to address:port; nothing (with `error` set to the reason, "connection refused") when it
// cannot before the deadline.
std::optional<StreamConnection> tcp_connect(const IpAddress& address, std::uint16_t port,
                                            Clock::time_point deadline, std::string* error);

// Connects to the Unix socket at `path`; nothing (with `error` set: "no such file or directory",
// "connection refused", a path too long for a socket) when it cannot.
std::optional<StreamConnection> unix_connect(const std::filesystem::path& path, Clock::time_point deadline,
                                             std::string* error);

struct ResolverConfig {
  std::filesystem::path hosts_file = "/etc/hosts";
  std::filesystem::path resolv_conf = "/etc/resolv.conf";
  std::uint16_t dns_port = 53;
  // Per query to one nameserver; resolv.conf's `options timeout:N` lowers it.
  std::chrono::milliseconds query_timeout{2000};
  bool use_getaddrinfo = true;
};

struct Resolution {
  std::vector<IpAddress> addresses;
  std::string error;  // why there are none: "no such host", "no answer from 10.0.0.2"
};

// Numeric address, hosts file, DNS (A records), getaddrinfo: the first that knows the name answers.
Resolution resolve_host(std::string_view host, const ResolverConfig& config = {});

// Whether host:port accepts a TCP connection before the deadline (the host resolved as above).
bool can_connect(const Endpoint& endpoint, Clock::time_point deadline, std::string* error,
                 const ResolverConfig& config = {});

// Tries to connect until it works (true), the deadline passes or `cancel` is set (false, `error` says the
// last reason). A short pause between attempts; never sleeps past the deadline.
bool wait_for_port(const Endpoint& endpoint, Clock::time_point deadline, const std::atomic<bool>& cancel,
                   std::string* error, const ResolverConfig& config = {});

struct EndpointWait {
  Endpoint endpoint;
  bool ready = false;
  std::chrono::milliseconds waited{0};
  std::string last_error;  // set when not ready: "connection refused", "cannot resolve db: no such host"
};

// `testfleet wait HOST:PORT...`: waits for every endpoint at once, up to `timeout` in all. `on_ready` is
// called (from a waiting thread, one call at a time) as each endpoint opens. Returns one entry per endpoint
// in the given order; all ready unless the timeout passed or `cancel` was set.
std::vector<EndpointWait> wait_for_endpoints(const std::vector<Endpoint>& endpoints,
                                             std::chrono::milliseconds timeout,
                                             const std::atomic<bool>& cancel,
                                             const std::function<void(const EndpointWait&)>& on_ready = {},
                                             const ResolverConfig& config = {});

}  // namespace testfleet::util
