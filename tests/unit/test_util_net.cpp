#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "util/error.hpp"
#include "util/files.hpp"
#include "util/net.hpp"

using namespace testfleet::util;
using namespace std::chrono_literals;

namespace {

// A listening socket on 127.0.0.1 at `port` (0: any); closed when the object dies.
class Listener {
 public:
  explicit Listener(std::uint16_t port = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd_, 16) != 0) {
      throw std::runtime_error("cannot listen");
    }
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~Listener() { ::close(fd_); }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// A DNS server on 127.0.0.1 over UDP that knows a few A records and answers NXDOMAIN for the rest, or
// stays silent when `silent`. Real packets on a real socket: what the resolver sees from any nameserver.
class DnsServer {
 public:
  explicit DnsServer(std::map<std::string, std::string> records, bool silent = false)
      : records_(std::move(records)), silent_(silent) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("cannot bind");
    }
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~DnsServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  std::vector<std::string> asked() {
    std::lock_guard<std::mutex> lock(mutex_);
    return asked_;
  }

 private:
  void serve() {
    while (!stop_) {
      struct pollfd pfd = {fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 50) <= 0) continue;
      char buffer[512];
      sockaddr_in from{};
      socklen_t from_length = sizeof from;
      ssize_t n = ::recvfrom(fd_, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &from_length);
      if (n < 12) continue;
      std::string query(buffer, static_cast<std::size_t>(n));
      std::string name;
      std::size_t offset = 12;
      while (offset < query.size() && query[offset] != 0) {
        auto length = static_cast<std::size_t>(query[offset]);
        if (!name.empty()) name += '.';
        name += query.substr(offset + 1, length);
        offset += length + 1;
      }
      std::size_t question_end = offset + 5;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        asked_.push_back(name);
      }
      if (silent_) continue;
      std::string reply = query.substr(0, question_end);
      reply[2] = static_cast<char>(0x81);  // QR, RD
      auto it = records_.find(name);
      if (it == records_.end()) {
        reply[3] = static_cast<char>(0x83);  // RA, NXDOMAIN
      } else {
        reply[3] = static_cast<char>(0x80);
        reply[7] = 1;  // one answer
        in_addr address{};
        ::inet_pton(AF_INET, it->second.c_str(), &address);
        reply.append(std::string("\xC0\x0C\x00\x01\x00\x01\x00\x00\x00\x3C\x00\x04", 12));
        reply.append(reinterpret_cast<const char*>(&address), 4);
      }
      ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), from_length);
    }
  }

  std::map<std::string, std::string> records_;
  bool silent_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> asked_;
  std::thread thread_;
};

}  // namespace

TEST(ParseEndpoint, HostAndPort) {
  EXPECT_EQ(parse_endpoint("db:5432"), (Endpoint{"db", 5432}));
  EXPECT_EQ(parse_endpoint(" 10.0.0.2:6379 "), (Endpoint{"10.0.0.2", 6379}));
  EXPECT_EQ(parse_endpoint("[::1]:80"), (Endpoint{"::1", 80}));
  EXPECT_EQ(parse_endpoint("[::1]:80").text(), "[::1]:80");
}

TEST(ParseEndpoint, ErrorsSayWhatIsWrong) {
  auto message = [](const char* text) {
    try {
      parse_endpoint(text);
    } catch (const testfleet::UsageError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("db").find("'db': no port"), std::string::npos);
  EXPECT_NE(message("db:").find("no port"), std::string::npos);
  EXPECT_NE(message(":5432").find("no host"), std::string::npos);
  EXPECT_NE(message("db:70000").find("out of range"), std::string::npos);
  EXPECT_NE(message("db:http").find("not a number"), std::string::npos);
  EXPECT_NE(message("::1:80").find("brackets"), std::string::npos);
  EXPECT_NE(message("[::1:80").find("']'"), std::string::npos);
}

TEST(FindFreePort, NothingListensAndPortsAreNotRepeated) {
  std::set<std::uint16_t> seen;
  for (int i = 0; i < 50; ++i) {
    std::uint16_t port = find_free_port();
    EXPECT_TRUE(seen.insert(port).second) << port;
    std::string error;
    EXPECT_FALSE(tcp_connect(*IpAddress::parse("127.0.0.1"), port, Clock::now() + 500ms, &error));
    // Free means a server can bind it.
    EXPECT_NO_THROW(Listener{port});
  }
}

TEST(FindFreePort, ConcurrentCallersGetDifferentPorts) {
  std::vector<std::uint16_t> ports(8 * 20);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) ports[static_cast<std::size_t>(t * 20 + i)] = find_free_port();
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(std::set<std::uint16_t>(ports.begin(), ports.end()).size(), ports.size());
}

TEST(TcpConnect, OpenAndRefused) {
  Listener listener;
  std::string error;
  EXPECT_TRUE(tcp_connect(*IpAddress::parse("127.0.0.1"), listener.port(), Clock::now() + 1s, &error));
  std::uint16_t closed = find_free_port();
  EXPECT_FALSE(tcp_connect(*IpAddress::parse("127.0.0.1"), closed, Clock::now() + 1s, &error));
  EXPECT_EQ(error, "connection refused");
}

TEST(UnixConnect, OpenMissingRefusedAndTooLong) {
  TempDir dir("net-test-");
  std::filesystem::path path = dir.path() / "server.sock";
  std::string error;
  EXPECT_FALSE(unix_connect(path, Clock::now() + 1s, &error));
  EXPECT_EQ(error, "no such file or directory");

  int listening = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(listening, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listening, 4), 0);
  std::optional<StreamConnection> connection = unix_connect(path, Clock::now() + 1s, &error);
  ASSERT_TRUE(connection) << error;
  int accepted = ::accept(listening, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  ASSERT_EQ(::write(accepted, "hello", 5), 5);
  std::string received;
  EXPECT_TRUE(connection->receive_some(received, Clock::now() + 1s, &error)) << error;
  EXPECT_EQ(received, "hello");
  ::close(accepted);
  ::close(listening);
  // The socket file outlives its listener: nobody answers there now.
  EXPECT_FALSE(unix_connect(path, Clock::now() + 1s, &error));
  EXPECT_EQ(error, "connection refused");

  std::filesystem::path deep = dir.path() / std::string(120, 'd') / "s.sock";
  EXPECT_FALSE(unix_connect(deep, Clock::now() + 1s, &error));
  EXPECT_NE(error.find("longer than the 107 a Unix socket's path may be"), std::string::npos) << error;
}

TEST(WaitForPort, ReturnsOnceThePortOpens) {
  std::uint16_t port = find_free_port();
  std::atomic<bool> cancel{false};
  std::thread opener([port] {
    std::this_thread::sleep_for(300ms);
    Listener listener(port);
    std::this_thread::sleep_for(2s);
  });
  Clock::time_point start = Clock::now();
  std::string error;
  EXPECT_TRUE(wait_for_port(Endpoint{"127.0.0.1", port}, start + 10s, cancel, &error));
  EXPECT_GE(Clock::now() - start, 250ms);
  EXPECT_LT(Clock::now() - start, 2s);
  opener.join();
}

TEST(WaitForPort, GivesUpAtTheDeadlineWithTheReason) {
  std::uint16_t port = find_free_port();
  std::atomic<bool> cancel{false};
  Clock::time_point start = Clock::now();
  std::string error;
  EXPECT_FALSE(wait_for_port(Endpoint{"127.0.0.1", port}, start + 400ms, cancel, &error));
  EXPECT_EQ(error, "connection refused");
  EXPECT_GE(Clock::now() - start, 400ms);
  EXPECT_LT(Clock::now() - start, 1500ms);
}

TEST(WaitForPort, StopsWhenCancelled) {
  std::uint16_t port = find_free_port();
  std::atomic<bool> cancel{false};
  std::thread canceller([&cancel] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  Clock::time_point start = Clock::now();
  std::string error;
  EXPECT_FALSE(wait_for_port(Endpoint{"127.0.0.1", port}, start + 30s, cancel, &error));
  EXPECT_EQ(error, "cancelled");
  EXPECT_LT(Clock::now() - start, 2s);
  canceller.join();
}

TEST(ResolveHost, NumericAddresses) {
  ResolverConfig config;
  config.hosts_file = "/nonexistent/hosts";
  config.resolv_conf = "/nonexistent/resolv.conf";
  config.use_getaddrinfo = false;
  Resolution v4 = resolve_host("192.0.2.7", config);
  ASSERT_EQ(v4.addresses.size(), 1u);
  EXPECT_EQ(v4.addresses[0].text(), "192.0.2.7");
  Resolution v6 = resolve_host("[2001:db8::1]", config);
  ASSERT_EQ(v6.addresses.size(), 1u);
  EXPECT_EQ(v6.addresses[0].family, AF_INET6);
  EXPECT_EQ(v6.addresses[0].text(), "2001:db8::1");
}

TEST(ResolveHost, HostsFileBeforeDnsAndLocalhostWithoutOne) {
  TempDir dir("net-test-");
  write_file_atomic(dir.path() / "hosts",
                    "# comment 10.9.9.9 commented\n127.0.0.1\tlocalhost\n"
                    "10.1.2.3 db db.internal   # the database\n::1 ip6-localhost\n10.1.2.4 DB\n");
  DnsServer dns(std::map<std::string, std::string>{{"db", "10.7.7.7"}});
  write_file_atomic(dir.path() / "resolv.conf", "nameserver 127.0.0.1\n");
  ResolverConfig config;
  config.hosts_file = dir.path() / "hosts";
  config.resolv_conf = dir.path() / "resolv.conf";
  config.dns_port = dns.port();
  config.use_getaddrinfo = false;

  Resolution db = resolve_host("db", config);
  ASSERT_EQ(db.addresses.size(), 2u);
  EXPECT_EQ(db.addresses[0].text(), "10.1.2.3");
  EXPECT_EQ(db.addresses[1].text(), "10.1.2.4");
  EXPECT_EQ(resolve_host("DB.Internal", config).addresses.at(0).text(), "10.1.2.3");
  EXPECT_EQ(resolve_host("ip6-localhost", config).addresses.at(0).text(), "::1");
  EXPECT_TRUE(dns.asked().empty());

  write_file_atomic(dir.path() / "hosts", "");
  EXPECT_EQ(resolve_host("localhost", config).addresses.at(0).text(), "127.0.0.1");
  EXPECT_TRUE(dns.asked().empty());
}

TEST(ResolveHost, DnsOverUdpWithSearchDomains) {
  TempDir dir("net-test-");
  write_file_atomic(dir.path() / "hosts", "127.0.0.1 localhost\n");
  DnsServer dns(std::map<std::string, std::string>{{"db.ci.svc.cluster.local", "10.20.30.40"},
                                                   {"cache.example.org", "10.20.30.41"}});
  write_file_atomic(dir.path() / "resolv.conf",
                    "# generated\nsearch ci.svc.cluster.local svc.cluster.local\nnameserver 127.0.0.1\n"
                    "options ndots:2 timeout:1\n");
  ResolverConfig config;
  config.hosts_file = dir.path() / "hosts";
  config.resolv_conf = dir.path() / "resolv.conf";
  config.dns_port = dns.port();
  config.use_getaddrinfo = false;

  Resolution db = resolve_host("db", config);
  ASSERT_EQ(db.addresses.size(), 1u) << db.error;
  EXPECT_EQ(db.addresses[0].text(), "10.20.30.40");
  EXPECT_EQ(dns.asked().front(), "db.ci.svc.cluster.local");

  // Two dots reach ndots: the name itself is asked first.
  Resolution cache = resolve_host("cache.example.org", config);
  ASSERT_EQ(cache.addresses.size(), 1u) << cache.error;
  EXPECT_EQ(dns.asked().back(), "cache.example.org");

  Resolution missing = resolve_host("nothere", config);
  EXPECT_TRUE(missing.addresses.empty());
  EXPECT_EQ(missing.error, "no such host");
  std::vector<std::string> asked = dns.asked();
  std::vector<std::string> tail(asked.end() - 3, asked.end());
  EXPECT_EQ(tail, (std::vector<std::string>{"nothere.ci.svc.cluster.local", "nothere.svc.cluster.local",
                                            "nothere"}));
}

TEST(ResolveHost, SilentNameserverTimesOut) {
  TempDir dir("net-test-");
  write_file_atomic(dir.path() / "hosts", "");
  write_file_atomic(dir.path() / "resolv.conf", "nameserver 127.0.0.1\n");
  DnsServer dns(std::map<std::string, std::string>{}, /*silent=*/true);
  ResolverConfig config;
  config.hosts_file = dir.path() / "hosts";
  config.resolv_conf = dir.path() / "resolv.conf";
  config.dns_port = dns.port();
  config.query_timeout = 300ms;
  config.use_getaddrinfo = false;
  Clock::time_point start = Clock::now();
  Resolution result = resolve_host("db.", config);
  EXPECT_TRUE(result.addresses.empty());
  EXPECT_NE(result.error.find(fmt::format("no answer from 127.0.0.1:{}", dns.port())), std::string::npos)
      << result.error;
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(WaitForEndpoints, ReportsEachEndpoint) {
  Listener open;
  std::uint16_t late_port = find_free_port();
  std::uint16_t never_port = find_free_port();
  std::thread opener([late_port] {
    std::this_thread::sleep_for(200ms);
    Listener listener(late_port);
    std::this_thread::sleep_for(2s);
  });
  std::atomic<bool> cancel{false};
  std::vector<std::string> ready_order;
  std::vector<EndpointWait> results = wait_for_endpoints(
      {Endpoint{"localhost", open.port()}, Endpoint{"127.0.0.1", late_port},
       Endpoint{"127.0.0.1", never_port}},
      1s, cancel, [&](const EndpointWait& wait) { ready_order.push_back(wait.endpoint.text()); });
  opener.join();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].ready);
  EXPECT_TRUE(results[1].ready);
  EXPECT_GE(results[1].waited, 150ms);
  EXPECT_FALSE(results[2].ready);
  EXPECT_EQ(results[2].last_error, "connection refused");
  EXPECT_EQ(ready_order, (std::vector<std::string>{fmt::format("localhost:{}", open.port()),
                                                   fmt::format("127.0.0.1:{}", late_port)}));
}
