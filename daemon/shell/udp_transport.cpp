#include "daemon/shell/udp_transport.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace failoverd {

namespace {

// (family, 16 address bytes, port) with IPv4-mapped IPv6 folded to IPv4.
struct Normalized {
    int family = AF_UNSPEC;
    std::array<std::uint8_t, 16> bytes{};
    std::uint16_t port = 0;

    bool operator==(const Normalized&) const = default;
};

Normalized normalize(const SocketAddress& a) {
    Normalized n;
    if (a.family() == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
        n.family = AF_INET;
        std::memcpy(n.bytes.data(), &in->sin_addr, 4);
        n.port = ntohs(in->sin_port);
    } else if (a.family() == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
        n.port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            n.family = AF_INET;
            std::memcpy(n.bytes.data(), in6->sin6_addr.s6_addr + 12, 4);
        } else {
            n.family = AF_INET6;
            std::memcpy(n.bytes.data(), in6->sin6_addr.s6_addr, 16);
        }
    }
    return n;
}

SocketAddress to_mapped_v6(const SocketAddress& v4) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&v4.storage);
    SocketAddress out;
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = in->sin_port;
    in6->sin6_addr.s6_addr[10] = 0xff;
    in6->sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(in6->sin6_addr.s6_addr + 12, &in->sin_addr, 4);
    out.length = sizeof(sockaddr_in6);
    return out;
}

bool is_v6_wildcard(const SocketAddress& a) {
    if (a.family() != AF_INET6) {
        return false;
    }
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    return IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
}

std::string errno_text(int e) {
    return std::strerror(e);
}

}  // namespace

std::uint16_t SocketAddress::port() const {
    return normalize(*this).port;
}

std::string SocketAddress::host() const {
    const Normalized n = normalize(*this);
    char buf[INET6_ADDRSTRLEN] = {};
    if (n.family == AF_INET) {
        inet_ntop(AF_INET, n.bytes.data(), buf, sizeof buf);
    } else if (n.family == AF_INET6) {
        inet_ntop(AF_INET6, n.bytes.data(), buf, sizeof buf);
    } else {
        return "?";
    }
    return buf;
}

std::string SocketAddress::to_string() const {
    const Normalized n = normalize(*this);
    if (n.family == AF_INET6) {
        return "[" + host() + "]:" + std::to_string(n.port);
    }
    return host() + ":" + std::to_string(n.port);
}

bool SocketAddress::same_host_and_port(const SocketAddress& other) const {
    return normalize(*this) == normalize(other);
}

SocketAddress resolve_endpoint(const Endpoint& endpoint, int family, bool passive) {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_protocol = IPPROTO_UDP;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* result = nullptr;
    const std::string port = std::to_string(endpoint.port);
    const char* host = endpoint.host.empty() ? nullptr : endpoint.host.c_str();
    const int r = getaddrinfo(host, port.c_str(), &hints, &result);
    if (r != 0) {
        throw std::runtime_error("cannot resolve " + endpoint.to_string() + ": " +
                                 (r == EAI_SYSTEM ? errno_text(errno) : gai_strerror(r)));
    }
    SocketAddress out;
    for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof(out.storage)) {
            std::memcpy(&out.storage, ai->ai_addr, ai->ai_addrlen);
            out.length = ai->ai_addrlen;
            break;
        }
    }
    freeaddrinfo(result);
    if (out.length == 0) {
        throw std::runtime_error("cannot resolve " + endpoint.to_string() +
                                 ": no IPv4 or IPv6 address");
    }
    return out;
}

UdpTransport::UdpTransport(EventLoop& loop, const Endpoint& listen, ReceiveCallback on_receive)
    : loop_(loop), on_receive_(std::move(on_receive)), buffer_(kMaxDatagram + 1) {
    SocketAddress bind_address = resolve_endpoint(listen, AF_UNSPEC, true);
    fd_ = socket(bind_address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd_ < 0) {
        throw std::system_error(errno, std::generic_category(), "socket for " + listen.to_string());
    }
    if (is_v6_wildcard(bind_address)) {
        // A wildcard IPv6 listener also serves IPv4 peers, whatever net.ipv6.bindv6only says.
        const int off = 0;
        setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    if (bind(fd_, reinterpret_cast<const sockaddr*>(&bind_address.storage), bind_address.length) !=
        0) {
        const int e = errno;
        close(fd_);
        fd_ = -1;
        throw std::system_error(e, std::generic_category(),
                                "cannot bind UDP " + bind_address.to_string());
    }
    local_.length = sizeof(local_.storage);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local_.storage), &local_.length) != 0) {
        const int e = errno;
        close(fd_);
        fd_ = -1;
        throw std::system_error(e, std::generic_category(), "getsockname");
    }
    try {
        source_ = loop_.add_io(fd_, EPOLLIN, [this](std::uint32_t) { on_readable(); });
    } catch (...) {
        close(fd_);
        fd_ = -1;
        throw;
    }
}

UdpTransport::~UdpTransport() {
    source_.reset();
    if (fd_ >= 0) {
        close(fd_);
    }
}

void UdpTransport::set_peers(const std::vector<Endpoint>& peers) {
    const int family = local_.family();
    const bool dual_stack = is_v6_wildcard(local_);
    std::vector<UdpPeer> resolved;
    resolved.reserve(peers.size());
    for (const Endpoint& endpoint : peers) {
        SocketAddress address = resolve_endpoint(endpoint, dual_stack ? AF_UNSPEC : family, false);
        if (address.family() == AF_INET && family == AF_INET6) {
            address = to_mapped_v6(address);
        }
        UdpPeer peer;
        peer.endpoint = endpoint;
        peer.address = address;
        for (const UdpPeer& old : peers_) {
            if (old.endpoint.host == endpoint.host && old.endpoint.port == endpoint.port) {
                peer.sent = old.sent;
                peer.send_errors = old.send_errors;
                peer.received = old.received;
                peer.last_received = old.last_received;
                break;
            }
        }
        resolved.push_back(std::move(peer));
    }
    peers_ = std::move(resolved);
}

std::size_t UdpTransport::send_to_all(std::span<const std::uint8_t> bytes) {
    std::size_t ok = 0;
    for (UdpPeer& peer : peers_) {
        ok += send_one(peer, bytes) ? 1 : 0;
    }
    return ok;
}

bool UdpTransport::send_to(std::size_t peer, std::span<const std::uint8_t> bytes) {
    if (peer >= peers_.size()) {
        return false;
    }
    return send_one(peers_[peer], bytes);
}

bool UdpTransport::send_one(UdpPeer& peer, std::span<const std::uint8_t> bytes) {
    const ssize_t n =
        sendto(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&peer.address.storage), peer.address.length);
    if (n == static_cast<ssize_t>(bytes.size())) {
        ++peer.sent;
        ++counters_.sent;
        return true;
    }
    const int e = n < 0 ? errno : EMSGSIZE;
    ++peer.send_errors;
    ++counters_.send_errors;
    log_.log(loop_.now(), spdlog::level::warn,
             "send:" + peer.address.to_string() + ":" + std::to_string(e),
             "cannot send to peer " + peer.address.to_string() + ": " + errno_text(e));
    return false;
}

std::optional<std::size_t> UdpTransport::find_peer(const SocketAddress& from) const {
    for (std::size_t i = 0; i < peers_.size(); ++i) {
        if (peers_[i].address.same_host_and_port(from)) {
            return i;
        }
    }
    return std::nullopt;
}

void UdpTransport::on_readable() {
    for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
        SocketAddress from;
        from.length = sizeof(from.storage);
        const ssize_t n = recvfrom(fd_, buffer_.data(), buffer_.size(), MSG_TRUNC,
                                   reinterpret_cast<sockaddr*>(&from.storage), &from.length);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            const int e = errno;
            ++counters_.receive_errors;
            log_.log(loop_.now(), spdlog::level::warn, "recv:" + std::to_string(e),
                     "receive error on UDP " + local_.to_string() + ": " + errno_text(e));
            return;
        }
        const auto peer = find_peer(from);
        if (!peer) {
            ++counters_.dropped_unknown_source;
            log_.log(loop_.now(), spdlog::level::warn, "unknown-source",
                     "ignoring datagram from " + from.to_string() + ": not a configured peer");
            continue;
        }
        if (static_cast<std::size_t>(n) > kMaxDatagram) {
            ++counters_.dropped_truncated;
            log_.log(loop_.now(), spdlog::level::warn, "oversized",
                     "ignoring datagram of " + std::to_string(n) + " bytes from " +
                         from.to_string() + " (limit " + std::to_string(kMaxDatagram) + ")");
            continue;
        }
        UdpPeer& p = peers_[*peer];
        ++p.received;
        p.last_received = loop_.now();
        ++counters_.received;
        on_receive_(std::span<const std::uint8_t>(buffer_.data(), static_cast<std::size_t>(n)),
                    *peer, from);
    }
}

}  // namespace failoverd
