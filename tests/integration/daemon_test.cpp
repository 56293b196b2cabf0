// The Daemon in one process, driven through its own loop, with a test peer on loopback (a plain
// non-blocking UDP socket): real adverts, forged and replayed ones, the control socket, and the
// advert cadence while a hook and a probe are held open for seconds.
#include "daemon/shell/daemon.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/core/advert.hpp"
#include "daemon/shell/control_socket.hpp"

using namespace std::chrono_literals;
using failoverd::Advert;
using failoverd::CheckConfig;
using failoverd::CheckType;
using failoverd::Config;
using failoverd::Daemon;
using failoverd::Duration;
using failoverd::Endpoint;
using failoverd::InstanceConfig;
using failoverd::SenderState;
using nlohmann::json;

namespace {

constexpr Duration kDeadline = 30s;

class TempDir {
  public:
    TempDir() {
        char tmpl[] = "/tmp/failoverd-daemon-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

const std::vector<std::uint8_t> kKey(32, 0x42);

// The test's end of the wire: peer "b", a plain UDP socket on 127.0.0.1. Adverts from the
// daemon wait in its receive buffer until the test drains them.
class Peer {
  public:
    Peer() {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        const int buffer = 1 << 20;
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
    }
    ~Peer() { ::close(fd_); }
    std::uint16_t port() const { return port_; }

    void aim_at(const Daemon& daemon) {
        const std::string listen = daemon.status_json()["transport"]["listen"];
        daemon_port_ = static_cast<std::uint16_t>(std::stoi(listen.substr(listen.rfind(':') + 1)));
    }
    void send(const std::vector<std::uint8_t>& bytes) {
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        to.sin_port = htons(daemon_port_);
        REQUIRE(::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to),
                         sizeof to) == static_cast<ssize_t>(bytes.size()));
    }
    // Adverts received since the last call.
    std::size_t drain() {
        std::size_t n = 0;
        char buf[4096];
        while (::recv(fd_, buf, sizeof buf, 0) >= 0) {
            ++n;
        }
        return n;
    }

  private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::uint16_t daemon_port_ = 0;
};

// Node "a" on 127.0.0.1 (port chosen by the kernel) with the test peer, instance "web" at
// priority 200 and 100 ms adverts.
Config make_config(const TempDir& dir, std::uint16_t peer_port) {
    const std::string key_file = dir.path() + "/auth.key";
    std::ofstream(key_file, std::ios::binary)
        .write(reinterpret_cast<const char*>(kKey.data()), static_cast<long>(kKey.size()));
    ::chmod(key_file.c_str(), 0600);
    Config c;
    c.path = dir.path() + "/failoverd.conf";
    c.node.name = "a";
    c.node.listen = Endpoint{"127.0.0.1", 0, 0};
    c.node.control_socket = dir.path() + "/control.sock";
    c.node.state_dir = dir.path() + "/state";
    c.cluster.peers = {Endpoint{"127.0.0.1", peer_port, 0}};
    c.cluster.auth_key_file = key_file;
    c.cluster.advert_interval = 100ms;
    InstanceConfig web;
    web.name = "web";
    web.reserved_ip = "203.0.113.10";
    web.priority = 200;
    c.instances.push_back(web);
    return c;
}

// Echoes the daemon's boot (node "a"), as a live peer that has heard it would.
std::vector<std::uint8_t> advert_from_b(const Daemon& daemon, int priority,
                                        std::uint64_t sequence) {
    Advert a;
    a.instance_id = failoverd::instance_id_of("web");
    a.instance_name = "web";
    a.echoes = {{"a", daemon.status_json()["boot_epoch"].get<std::uint64_t>()}};
    a.state = SenderState::Master;
    a.sender = "b";
    a.priority = static_cast<std::uint8_t>(priority);
    a.advert_interval = 100ms;
    a.boot_epoch = 1;
    a.sequence = sequence;
    return failoverd::encode_advert(a, kKey);
}

json web(const Daemon& daemon) {
    return daemon.status_json()["instances"][0];
}

bool role_is(const Daemon& daemon, const std::string& role) {
    return daemon.ready() && web(daemon)["role"] == role;
}

std::uint64_t dropped(const Daemon& daemon, const std::string& reason) {
    return daemon.status_json()["adverts"]["dropped"][reason].get<std::uint64_t>();
}

}  // namespace

TEST_CASE("Daemon: a higher advert makes the master back off; forged and replayed ones count") {
    TempDir dir;
    Peer peer;
    Daemon daemon(make_config(dir, peer.port()));
    peer.aim_at(daemon);
    daemon.start();
    REQUIRE(daemon.loop().run_until([&] { return role_is(daemon, "MASTER"); }, kDeadline));
    CHECK(peer.drain() > 0);  // its adverts reach the peer

    const auto genuine = advert_from_b(daemon, 250, 1);
    peer.send(genuine);
    REQUIRE(daemon.loop().run_until([&] { return role_is(daemon, "BACKUP"); }, kDeadline));
    CHECK(web(daemon)["master"] == "b");

    peer.send(genuine);  // the same sequence again
    auto forged = advert_from_b(daemon, 250, 2);
    forged.back() ^= 0x01;
    peer.send(forged);
    REQUIRE(daemon.loop().run_until(
        [&] { return dropped(daemon, "replay") == 1 && dropped(daemon, "bad-mac") == 1; },
        kDeadline));
    CHECK(daemon.status_json()["adverts"]["received"] == 1);
    CHECK(daemon.status_json()["transport"]["received"] == 3);
    CHECK(role_is(daemon, "BACKUP"));
    // Per peer, for `failoverctl doctor`: its MAC verified (genuine and replay), once not.
    const json b = daemon.status_json()["peers"][0];
    CHECK(b["address"] == "127.0.0.1:" + std::to_string(peer.port()));
    CHECK(b["source"] == "config");
    CHECK(b["verified"] == 2);
    CHECK(b["bad_mac"] == 1);
    CHECK(b["last_verified_s_ago"].is_number());
    CHECK(daemon.status_json()["provider"]["type"] == "none");
    CHECK(web(daemon)["provider"].is_null());
}

TEST_CASE("Daemon: a peer sending with another auth key is counted as bad MAC, never verified") {
    TempDir dir;
    Peer peer;
    Daemon daemon(make_config(dir, peer.port()));
    peer.aim_at(daemon);
    daemon.start();
    REQUIRE(daemon.loop().run_until([&] { return role_is(daemon, "MASTER"); }, kDeadline));
    Advert a;
    a.instance_id = failoverd::instance_id_of("web");
    a.instance_name = "web";
    a.state = SenderState::Master;
    a.sender = "b";
    a.priority = 250;
    a.advert_interval = 100ms;
    a.boot_epoch = 1;
    const std::vector<std::uint8_t> other_key(32, 0x17);
    for (std::uint64_t sequence = 1; sequence <= 3; ++sequence) {
        a.sequence = sequence;
        peer.send(failoverd::encode_advert(a, other_key));
    }
    REQUIRE(daemon.loop().run_until(
        [&] { return daemon.status_json()["peers"][0]["bad_mac"] == 3; }, kDeadline));
    const json b = daemon.status_json()["peers"][0];
    CHECK(b["verified"] == 0);
    CHECK(b["last_verified_s_ago"].is_null());
    CHECK(b["received"] == 3);
    CHECK(role_is(daemon, "MASTER"));  // a forged higher priority changes nothing
}

TEST_CASE("Daemon: status, handover and maintenance over the control socket") {
    TempDir dir;
    Peer peer;
    Daemon daemon(make_config(dir, peer.port()));
    peer.aim_at(daemon);
    daemon.start();
    REQUIRE(daemon.loop().run_until([&] { return role_is(daemon, "MASTER"); }, kDeadline));
    const std::string socket = dir.path() + "/control.sock";

    // failoverctl is a separate process; here a thread plays it while the loop serves. The
    // thread wakes the loop through an eventfd once it has its answer.
    auto ask = [&](const json& request) {
        std::atomic<bool> done{false};
        json answer;
        const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        REQUIRE(wake >= 0);
        auto source = daemon.loop().add_io(wake, EPOLLIN, [wake](std::uint32_t) {
            std::uint64_t value = 0;
            [[maybe_unused]] const ssize_t n = ::read(wake, &value, sizeof value);
        });
        std::thread client([&] {
            answer = failoverd::control_request(socket, request, 10s);
            done = true;
            const std::uint64_t one = 1;
            [[maybe_unused]] const ssize_t n = ::write(wake, &one, sizeof one);
        });
        const bool finished = daemon.loop().run_until([&] { return done.load(); }, kDeadline);
        client.join();
        source.reset();
        ::close(wake);
        REQUIRE(finished);
        return answer;
    };
    auto role_in = [](const json& answer) {
        return answer["status"]["instances"][0]["role"].get<std::string>();
    };

    json status = ask({{"command", "status"}});
    REQUIRE(status["ok"] == true);
    CHECK(status["status"]["node"] == "a");
    CHECK(status["status"]["instances"][0]["role"] == "MASTER");
    CHECK(status["status"]["instances"][0]["last_transition"]["to"] == "MASTER");

    json refused = ask({{"command", "handover"}, {"instance", "nope"}});
    CHECK(refused["ok"] == false);
    CHECK(refused["error"] == "no instance 'nope'");

    json handed = ask({{"command", "handover"}, {"instance", "web"}, {"to", "b"}});
    CHECK(handed["ok"] == true);
    CHECK(role_in(handed) == "BACKUP");
    CHECK(handed["status"]["instances"][0]["yielding_to"] == "b");

    json on = ask({{"command", "maintenance"}, {"on", true}});
    CHECK(on["ok"] == true);
    CHECK(role_in(on) == "FAULT");
    CHECK(on["status"]["instances"][0]["fault_reason"] == "maintenance");
    CHECK(on["status"]["maintenance"] == true);
    CHECK(std::filesystem::exists(dir.path() + "/state/maintenance"));
    json off = ask({{"command", "maintenance"}, {"on", false}});
    CHECK(off["ok"] == true);
    CHECK_FALSE(std::filesystem::exists(dir.path() + "/state/maintenance"));
    CHECK(role_in(off) == "BACKUP");

    json unknown = ask({{"command", "reboot"}});
    CHECK(unknown["ok"] == false);
}

TEST_CASE("Daemon: adverts keep their interval while a hook and a probe are held open") {
    TempDir dir;
    Peer peer;
    // A TCP server that accepts (in the backlog) and never answers: the HTTP check hangs.
    const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(silent >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(silent, 16) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len) == 0);

    const std::string hook = dir.path() + "/slow.sh";
    std::ofstream(hook) << "#!/bin/sh\nsleep 5\n";
    ::chmod(hook.c_str(), 0755);

    Config config = make_config(dir, peer.port());
    CheckConfig check;
    check.name = "silent";
    check.type = CheckType::Http;
    check.url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/health";
    check.interval = 2s;
    check.timeout = 2s;
    check.rise = 1;
    check.fall = 1;
    check.weight = -1;  // failing only lowers the priority
    config.checks.push_back(check);
    config.instances[0].checks = {"silent"};
    config.instances[0].notify_master = {hook};

    Daemon daemon(config);
    peer.aim_at(daemon);
    daemon.start();
    REQUIRE(daemon.loop().run_until([&] { return role_is(daemon, "MASTER"); }, kDeadline));
    REQUIRE(web(daemon)["hooks"]["queued"] == 1);  // the 5 s hook is running

    peer.drain();
    const auto started = std::chrono::steady_clock::now();
    // Run the loop for a 3 s window; nothing ends it early.
    daemon.loop().run_until([] { return false; }, 3s);
    const double window =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const std::size_t adverts = peer.drain();
    const auto expected = static_cast<std::size_t>(window / 0.1);
    MESSAGE("adverts in " << window << " s: " << adverts << " (expected about " << expected << ")");
    CHECK(web(daemon)["hooks"]["queued"] == 1);  // still running at the end of the window
    CHECK(web(daemon)["checks"][0]["state"] == "failing");  // timed out, and again in flight
    CHECK(adverts >= expected / 2);  // generous: a loaded machine, never a stalled loop
    ::close(silent);
}
