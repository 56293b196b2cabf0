// UdpTransport on loopback with port 0: datagrams between two transports over IPv4, IPv6 and a
// dual-stack listener; unknown sources, oversized datagrams and send errors are counted.
#include "daemon/shell/udp_transport.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "daemon/shell/event_loop.hpp"

using namespace std::chrono_literals;
using failoverd::Duration;
using failoverd::Endpoint;
using failoverd::EventLoop;
using failoverd::SocketAddress;
using failoverd::UdpTransport;

namespace {

constexpr Duration kDeadline = 20s;

struct Received {
    std::string text;
    std::size_t peer = 0;
    std::string from;
};

struct Side {
    std::vector<Received> got;
    std::optional<UdpTransport> transport;

    void open(EventLoop& loop, const std::string& host) {
        transport.emplace(
            loop, Endpoint{host, 0, 0},
            [this](std::span<const std::uint8_t> bytes, std::size_t peer,
                   const SocketAddress& from) {
                got.push_back({std::string(bytes.begin(), bytes.end()), peer, from.to_string()});
            });
    }
    Endpoint endpoint(const std::string& host) const {
        return Endpoint{host, transport->local_port(), 0};
    }
};

std::span<const std::uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// A plain socket that is not a configured peer.
class Stranger {
  public:
    explicit Stranger(int family) : family_(family) {
        fd_ = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
    }
    ~Stranger() { ::close(fd_); }
    void send_to(const SocketAddress& to, const std::string& payload) {
        REQUIRE(::sendto(fd_, payload.data(), payload.size(), 0,
                         reinterpret_cast<const sockaddr*>(&to.storage),
                         to.length) == static_cast<ssize_t>(payload.size()));
    }

  private:
    int family_;
    int fd_ = -1;
};

void exchange(const std::string& host) {
    EventLoop loop;
    Side a;
    Side b;
    a.open(loop, host);
    b.open(loop, host);
    a.transport->set_peers({b.endpoint(host)});
    b.transport->set_peers({a.endpoint(host)});

    CHECK(a.transport->send_to_all(bytes_of("advert from a")) == 1);
    CHECK(b.transport->send_to(0, bytes_of("advert from b")));
    REQUIRE(loop.run_until([&] { return a.got.size() == 1 && b.got.size() == 1; }, kDeadline));

    CHECK(b.got[0].text == "advert from a");
    CHECK(b.got[0].peer == 0);
    CHECK(b.got[0].from == a.transport->local_address().to_string());
    CHECK(a.got[0].text == "advert from b");
    CHECK(a.transport->counters().sent == 1);
    CHECK(a.transport->counters().received == 1);
    CHECK(a.transport->peers()[0].sent == 1);
    CHECK(a.transport->peers()[0].received == 1);
    CHECK(a.transport->peers()[0].last_received.has_value());
    CHECK(a.transport->counters().send_errors == 0);
    CHECK(a.transport->counters().dropped_unknown_source == 0);
}

}  // namespace

TEST_CASE("UdpTransport: two transports exchange datagrams on 127.0.0.1") {
    exchange("127.0.0.1");
}

TEST_CASE("UdpTransport: two transports exchange datagrams on ::1") {
    exchange("::1");
}

TEST_CASE("UdpTransport: a dual-stack listener talks to an IPv4 peer") {
    EventLoop loop;
    Side v6;
    Side v4;
    v6.open(loop, "::");
    v4.open(loop, "127.0.0.1");
    v6.transport->set_peers({v4.endpoint("127.0.0.1")});
    v4.transport->set_peers({Endpoint{"127.0.0.1", v6.transport->local_port(), 0}});

    CHECK(v6.transport->send_to_all(bytes_of("hello v4")) == 1);
    REQUIRE(loop.run_until([&] { return v4.got.size() == 1; }, kDeadline));
    CHECK(v4.transport->send_to_all(bytes_of("hello dual")) == 1);
    REQUIRE(loop.run_until([&] { return v6.got.size() == 1; }, kDeadline));
    CHECK(v6.got[0].text == "hello dual");
    CHECK(v6.got[0].from == "127.0.0.1:" + std::to_string(v4.transport->local_port()));
    CHECK(v6.transport->counters().dropped_unknown_source == 0);
}

TEST_CASE("UdpTransport: peers given by name are resolved at set-up") {
    EventLoop loop;
    Side a;
    Side b;
    a.open(loop, "127.0.0.1");
    b.open(loop, "127.0.0.1");
    a.transport->set_peers({b.endpoint("localhost")});
    b.transport->set_peers({a.endpoint("localhost")});
    CHECK(a.transport->peers()[0].address.host() == "127.0.0.1");
    CHECK(a.transport->send_to_all(bytes_of("by name")) == 1);
    REQUIRE(loop.run_until([&] { return b.got.size() == 1; }, kDeadline));
    CHECK(b.got[0].text == "by name");
}

TEST_CASE("UdpTransport: datagrams from an address that is not a peer are dropped and counted") {
    EventLoop loop;
    Side a;
    Side b;
    a.open(loop, "127.0.0.1");
    b.open(loop, "127.0.0.1");
    a.transport->set_peers({b.endpoint("127.0.0.1")});
    b.transport->set_peers({a.endpoint("127.0.0.1")});

    Stranger stranger(AF_INET);
    stranger.send_to(b.transport->local_address(), "forged by a stranger");
    stranger.send_to(b.transport->local_address(), "again");
    // Loopback delivers in order: once the peer's datagram is in, the strangers' were read.
    CHECK(a.transport->send_to_all(bytes_of("from the peer")) == 1);
    REQUIRE(loop.run_until([&] { return !b.got.empty(); }, kDeadline));

    REQUIRE(b.got.size() == 1);
    CHECK(b.got[0].text == "from the peer");
    CHECK(b.transport->counters().dropped_unknown_source == 2);
    CHECK(b.transport->counters().received == 1);
}

TEST_CASE("UdpTransport: the same host on another port is not the peer") {
    EventLoop loop;
    Side a;
    Side b;
    Side c;
    a.open(loop, "127.0.0.1");
    b.open(loop, "127.0.0.1");
    c.open(loop, "127.0.0.1");
    b.transport->set_peers({a.endpoint("127.0.0.1")});
    c.transport->set_peers({b.endpoint("127.0.0.1")});
    a.transport->set_peers({b.endpoint("127.0.0.1")});

    CHECK(c.transport->send_to_all(bytes_of("from c")) == 1);
    CHECK(a.transport->send_to_all(bytes_of("from a")) == 1);
    REQUIRE(loop.run_until([&] { return !b.got.empty(); }, kDeadline));
    REQUIRE(b.got.size() == 1);
    CHECK(b.got[0].text == "from a");
    CHECK(b.transport->counters().dropped_unknown_source == 1);
}

TEST_CASE("UdpTransport: an oversized datagram from a peer is dropped and counted") {
    EventLoop loop;
    Side a;
    Side b;
    a.open(loop, "127.0.0.1");
    b.open(loop, "127.0.0.1");
    a.transport->set_peers({b.endpoint("127.0.0.1")});
    b.transport->set_peers({a.endpoint("127.0.0.1")});

    const std::string big(UdpTransport::kMaxDatagram + 100, 'x');
    CHECK(a.transport->send_to_all(bytes_of(big)) == 1);
    CHECK(a.transport->send_to_all(bytes_of("small")) == 1);
    REQUIRE(loop.run_until([&] { return !b.got.empty(); }, kDeadline));
    REQUIRE(b.got.size() == 1);
    CHECK(b.got[0].text == "small");
    CHECK(b.transport->counters().dropped_truncated == 1);
}

TEST_CASE("UdpTransport: a failed send is counted, not thrown") {
    EventLoop loop;
    Side a;
    a.open(loop, "127.0.0.1");
    // A socket bound to loopback cannot reach a TEST-NET address.
    a.transport->set_peers({Endpoint{"192.0.2.1", 5405, 0}});
    CHECK(a.transport->send_to_all(bytes_of("lost")) == 0);
    CHECK(a.transport->counters().send_errors == 1);
    CHECK(a.transport->peers()[0].send_errors == 1);
    CHECK(a.transport->counters().sent == 0);
}

TEST_CASE("UdpTransport: a peer that does not resolve leaves the old peers in place") {
    EventLoop loop;
    Side a;
    a.open(loop, "127.0.0.1");
    a.transport->set_peers({Endpoint{"127.0.0.1", 5405, 0}});
    CHECK_THROWS_WITH_AS(
        a.transport->set_peers({Endpoint{"127.0.0.1", 5406, 0}, Endpoint{"::1", 5407, 0}}),
        doctest::Contains("[::1]:5407"), std::runtime_error);
    REQUIRE(a.transport->peers().size() == 1);
    CHECK(a.transport->peers()[0].endpoint.port == 5405);
}

TEST_CASE("UdpTransport: binding an address in use fails at start-up with the address") {
    EventLoop loop;
    Side a;
    a.open(loop, "127.0.0.1");
    const std::string address = "127.0.0.1:" + std::to_string(a.transport->local_port());
    CHECK_THROWS_WITH(UdpTransport(loop, a.endpoint("127.0.0.1"), nullptr),
                      doctest::Contains(address.c_str()));
}
