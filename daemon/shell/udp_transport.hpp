// Unicast UDP to the configured peers, IPv4 and IPv6, non-blocking, inside the EventLoop.
// Rule: names are resolved at start-up and reload only (blocking getaddrinfo); the loop only
// sends to and compares resolved addresses. Datagrams from addresses that are not configured
// peers are dropped and counted (keepalived's check_unicast_src, always on here).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/event_loop.hpp"
#include "daemon/shell/rate_limited_log.hpp"

namespace failoverd {

// A socket address; IPv4-mapped IPv6 addresses compare equal to their IPv4 form.
struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;

    int family() const { return storage.ss_family; }
    std::uint16_t port() const;
    std::string host() const;       // "10.0.0.2", "fd00::2" (a mapped address as IPv4)
    std::string to_string() const;  // "10.0.0.2:5405", "[fd00::2]:5405"
    bool same_host_and_port(const SocketAddress& other) const;
};

// Start-up and reload only: resolves a name or literal with getaddrinfo (may block). `family`
// AF_INET or AF_INET6 restricts the answer; an AF_INET6 socket also reaches IPv4 peers
// (mapped). Throws std::runtime_error naming the endpoint.
SocketAddress resolve_endpoint(const Endpoint& endpoint, int family = AF_UNSPEC,
                               bool passive = false);

struct UdpPeer {
    Endpoint endpoint;      // as configured
    SocketAddress address;  // as resolved
    std::uint64_t sent = 0;
    std::uint64_t send_errors = 0;
    std::uint64_t received = 0;
    std::optional<Instant> last_received;
};

struct UdpCounters {
    std::uint64_t sent = 0;
    std::uint64_t send_errors = 0;
    std::uint64_t received = 0;  // from configured peers, delivered
    std::uint64_t receive_errors = 0;
    std::uint64_t dropped_unknown_source = 0;
    std::uint64_t dropped_truncated = 0;  // larger than kMaxDatagram
};

class UdpTransport {
  public:
    static constexpr std::size_t kMaxDatagram = 4096;
    // Datagrams read per wake-up, so a flood cannot starve timers and other sources.
    static constexpr int kMaxReadsPerWakeup = 64;

    // `peer` indexes peers(). Called from the loop for each accepted datagram.
    using ReceiveCallback = std::function<void(std::span<const std::uint8_t> bytes,
                                               std::size_t peer, const SocketAddress& from)>;

    // Start-up: resolves `listen`, binds a non-blocking socket (an IPv6 wildcard is dual-stack).
    // Throws std::runtime_error / std::system_error with the address in the message.
    UdpTransport(EventLoop& loop, const Endpoint& listen, ReceiveCallback on_receive);
    ~UdpTransport();
    UdpTransport(const UdpTransport&) = delete;
    UdpTransport& operator=(const UdpTransport&) = delete;

    // Start-up and reload: resolves every peer (blocking), then replaces the list. Throws on
    // the first endpoint that does not resolve to an address this socket can reach, leaving
    // the old list in place. Counters of a peer whose endpoint is unchanged carry over.
    void set_peers(const std::vector<Endpoint>& peers);

    // Non-blocking sends; failures are counted, logged rate-limited, and not retried (the next
    // advert is the retry). Returns how many peers the datagram was handed to.
    std::size_t send_to_all(std::span<const std::uint8_t> bytes);
    bool send_to(std::size_t peer, std::span<const std::uint8_t> bytes);

    const std::vector<UdpPeer>& peers() const { return peers_; }
    const UdpCounters& counters() const { return counters_; }
    const SocketAddress& local_address() const { return local_; }
    std::uint16_t local_port() const { return local_.port(); }

  private:
    void on_readable();
    std::optional<std::size_t> find_peer(const SocketAddress& from) const;
    bool send_one(UdpPeer& peer, std::span<const std::uint8_t> bytes);

    EventLoop& loop_;
    ReceiveCallback on_receive_;
    int fd_ = -1;
    SocketAddress local_;
    EventSource source_;
    std::vector<UdpPeer> peers_;
    UdpCounters counters_;
    RateLimitedLog log_;
    std::vector<std::uint8_t> buffer_;
};

}  // namespace failoverd
