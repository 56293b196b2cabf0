// The Daemon in one process with provider = digitalocean against the python fake API on
// loopback (metadata through the fake's /droplet/{id} prefix): the IP follows the MASTER, a
// move to a peer is reclaimed and one to an outsider left alone (the partition rule), a bad
// token is a FAULT that never shows the token, and a hanging API never slows the advert timers.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/core/advert.hpp"
#include "daemon/shell/daemon.hpp"
#include "fake_do_api.hpp"
#include "log_capture.hpp"

using namespace std::chrono_literals;
using failoverd::Config;
using failoverd::Daemon;
using failoverd::Duration;
using failoverd::Endpoint;
using failoverd::InstanceConfig;
using failoverd::ProviderType;
using nlohmann::json;

using failoverd::testing::LogCapture;

namespace {

constexpr Duration kDeadline = 30s;
constexpr const char* kSelf = "3000000001";
constexpr std::int64_t kSelfId = 3000000001;
constexpr std::int64_t kPeerId = 3000000002;      // node "b", the test's peer
constexpr std::int64_t kOutsiderId = 3000000003;  // a droplet outside the cluster
constexpr const char* kIp = "203.0.113.10";

class TempDir {
  public:
    TempDir() {
        char tmpl[] = "/tmp/failoverd-provider-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

json fake_setup() {
    return json{{"droplets",
                 {{{"id", kSelfId},
                   {"name", "a"},
                   {"region", "nyc3"},
                   {"private_ip", "10.77.0.1"},
                   {"tags", json::array({"failoverd"})}},
                  {{"id", kPeerId},
                   {"name", "b"},
                   {"region", "nyc3"},
                   {"private_ip", "10.77.0.2"},
                   {"tags", json::array({"failoverd"})}},
                  {{"id", kOutsiderId},
                   {"name", "x"},
                   {"region", "nyc3"},
                   {"private_ip", "10.77.0.3"},
                   {"tags", json::array({"other"})}}}},
                {"reserved_ips", {{{"ip", kIp}, {"region", "nyc3"}, {"droplet_id", nullptr}}}},
                {"options", {{"action_delay", 0.2}}}};
}

// The fake API and metadata service (tests/integration/fake_do_api.hpp) with this test's
// droplets: a (this daemon), b (the test's peer) and x (outside the cluster).
class FakeApi : public failoverd::testing::FakeDoApi {
  public:
    explicit FakeApi(const TempDir&) : FakeDoApi(fake_setup()) {}
    std::string metadata_url(std::int64_t droplet) const { return metadata_url_for(droplet); }
    // The holder at the fake (0 = unassigned).
    std::int64_t holder() const { return FakeDoApi::holder(kIp).value_or(0); }
};

const std::vector<std::uint8_t> kKey(32, 0x42);

// The test's peer "b" (droplet kPeerId): a plain UDP socket on 127.0.0.1 that sends what the
// test tells it to and never reads.
class Peer {
  public:
    Peer() {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
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

    // A presence notice: b is a BACKUP at priority 100.
    void send_presence(const Daemon& daemon) {
        const std::string listen = daemon.status_json()["transport"]["listen"];
        failoverd::Advert a;
        a.instance_id = failoverd::instance_id_of("web");
        a.instance_name = "web";
        a.echoes = {{"a", daemon.status_json()["boot_epoch"].get<std::uint64_t>()}};
        a.state = failoverd::SenderState::Backup;
        a.sender = "b";
        a.sender_provider_id = std::to_string(kPeerId);
        a.priority = 100;
        a.advert_interval = 100ms;
        a.boot_epoch = 1;
        a.sequence = ++sequence_;
        const auto bytes = failoverd::encode_advert(a, kKey);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        to.sin_port =
            htons(static_cast<std::uint16_t>(std::stoi(listen.substr(listen.rfind(':') + 1))));
        REQUIRE(::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to),
                         sizeof to) == static_cast<ssize_t>(bytes.size()));
    }

  private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::uint64_t sequence_ = 0;
};

// Node "a", instance "web" for the fake's reserved IP, provider digitalocean with
// droplet_id = auto through the fake's metadata prefix for droplet a; alone, or with the
// test's peer "b" when `peer_port` is set.
Config make_config(const TempDir& dir, const FakeApi& fake, const std::string& token,
                   std::uint16_t peer_port = 0) {
    const std::string token_file = dir.path() + "/do-token";
    std::ofstream(token_file) << token << "\n";
    ::chmod(token_file.c_str(), 0600);
    Config c;
    c.path = dir.path() + "/failoverd.conf";
    c.node.name = "a";
    c.node.listen = Endpoint{"127.0.0.1", 0, 0};
    c.node.control_socket = dir.path() + "/control.sock";
    c.node.state_dir = dir.path() + "/state";
    c.cluster.auth_key_file = dir.path() + "/auth.key";  // a lone node needs none
    if (peer_port != 0) {
        std::ofstream(c.cluster.auth_key_file, std::ios::binary)
            .write(reinterpret_cast<const char*>(kKey.data()), static_cast<long>(kKey.size()));
        ::chmod(c.cluster.auth_key_file.c_str(), 0600);
        c.cluster.peers = {Endpoint{"127.0.0.1", peer_port, 0}};
    }
    c.cluster.advert_interval = 100ms;
    c.provider.type = ProviderType::DigitalOcean;
    c.provider.token_file = token_file;
    c.provider.droplet_id = "auto";
    c.provider.api_base_url = fake.api_url();
    c.provider.metadata_base_url = fake.metadata_url(kSelfId);
    c.provider.request_timeout = 1s;
    c.provider.reconcile_interval = 1s;
    InstanceConfig web;
    web.name = "web";
    web.reserved_ip = kIp;
    web.priority = 200;
    c.instances.push_back(web);
    return c;
}

json web(const Daemon& daemon) {
    return daemon.status_json()["instances"][0];
}

bool role_is(const Daemon& daemon, const std::string& role) {
    return daemon.ready() && web(daemon)["role"] == role;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("Daemon provider: the IP follows the MASTER; a move to a peer is reclaimed") {
    TempDir dir;
    FakeApi fake(dir);
    LogCapture logs;
    Peer peer;
    Daemon daemon(make_config(dir, fake, "dop_v1_test", peer.port()));
    const auto started = std::chrono::steady_clock::now();
    daemon.start();
    REQUIRE(daemon.loop().run_until(
        [&] {
            return role_is(daemon, "MASTER") && web(daemon)["provider"]["holder_is_self"] == true;
        },
        kDeadline));
    MESSAGE("start to the IP confirmed on this droplet: " << seconds_since(started) << " s");
    CHECK(fake.holder() == kSelfId);
    const json status = daemon.status_json();
    CHECK(status["provider"]["type"] == "digitalocean");
    CHECK(status["provider"]["identity"] == kSelf);
    CHECK(web(daemon)["provider"]["holder"] == kSelf);
    CHECK(web(daemon)["provider"]["holder_node"] == "a");
    CHECK(web(daemon)["provider"]["moves_confirmed"] == 1);
    CHECK(web(daemon)["provider"]["phase"] == "settled");
    const std::string log = logs.text();
    CHECK(log.find("provider digitalocean: this node is droplet 3000000001") != std::string::npos);
    CHECK(log.find("[web] reserved IP 203.0.113.10: assign requested (action ") !=
          std::string::npos);
    CHECK(log.find("[web] reserved IP 203.0.113.10 now held by this node (droplet 3000000001)") !=
          std::string::npos);

    // Moved by hand to a droplet that never spoke to us: left there and reported (the
    // partition rule: two masters reclaiming from "unknown" holders would ping-pong).
    fake.control("POST", "/_fake/set_holder", {{"ip", kIp}, {"droplet_id", kOutsiderId}});
    REQUIRE(daemon.loop().run_until(
        [&] {
            const json p = web(daemon)["provider"];
            return p["phase"] == "yielding" && p["holder"] == std::to_string(kOutsiderId);
        },
        kDeadline));
    CHECK(fake.holder() == kOutsiderId);
    CHECK(web(daemon)["provider"]["note"].get<std::string>().find("not a peer heard from") !=
          std::string::npos);
    CHECK(logs.text().find("[web] reserved IP 203.0.113.10: IP held by droplet 3000000003") !=
          std::string::npos);

    // Moved to peer b, which announced itself as a BACKUP at priority 100 < 200: the next read
    // (periodic at reconcile_interval 1 s +-10 %, or sooner after b's notice) reclaims it.
    peer.send_presence(daemon);
    REQUIRE(daemon.loop().run_until(
        [&] { return web(daemon)["peers"].size() == 1 && web(daemon)["peers"][0]["node"] == "b"; },
        kDeadline));
    CHECK(daemon.status_json()["peers"][0]["last_verified_s_ago"].is_number());
    CHECK(daemon.status_json()["peers"][0]["bad_mac"] == 0);
    fake.control("POST", "/_fake/set_holder", {{"ip", kIp}, {"droplet_id", kPeerId}});
    const auto moved = std::chrono::steady_clock::now();
    REQUIRE(daemon.loop().run_until(
        [&] {
            return web(daemon)["provider"]["moves_confirmed"] == 2 &&
                   web(daemon)["provider"]["holder_is_self"] == true;
        },
        kDeadline));
    const double reclaim = seconds_since(moved);
    CHECK(fake.holder() == kSelfId);
    const auto holders = fake.holder_log();
    REQUIRE(holders.size() == 4);  // ours, the outsider, b, ours again
    CHECK(holders[2]["by"] == "fake");
    CHECK(holders[3]["to"] == kSelfId);
    CHECK(holders[3]["by"] != "fake");
    const double detected = holders[3]["t"].get<double>() - holders[2]["t"].get<double>();
    MESSAGE("external move to the IP back on this droplet: "
            << detected << " s at the fake, confirmed after " << reclaim << " s");
    // Detected within one reconcile interval (1.1 s at most), then an assign of 0.2 s.
    CHECK(detected < 2.5);
    CHECK(logs.text().find("[web] reserved IP 203.0.113.10: IP moved to b (") != std::string::npos);
    CHECK(role_is(daemon, "MASTER"));
}

TEST_CASE("Daemon provider: a rejected token is a FAULT naming HTTP 401, never the token") {
    TempDir dir;
    FakeApi fake(dir);
    LogCapture logs;
    const std::string secret = "dop_v1_not_the_right_SECRET_7f3a9c";
    Daemon daemon(make_config(dir, fake, secret));
    daemon.start();
    REQUIRE(daemon.loop().run_until(
        [&] {
            return role_is(daemon, "FAULT") && web(daemon)["fault_reason"].is_string() &&
                   web(daemon)["fault_reason"].get<std::string>().find("401") != std::string::npos;
        },
        kDeadline));
    const std::string reason = web(daemon)["fault_reason"];
    MESSAGE("fault reason: " << reason);
    CHECK(reason.find("token") != std::string::npos);
    CHECK(fake.holder() == 0);
    CHECK(web(daemon)["provider"]["phase"] == "refused");
    const std::string status = daemon.status_json().dump();
    const std::string log = logs.text();
    CHECK(log.find("MASTER -> FAULT") != std::string::npos);
    CHECK(status.find(secret) == std::string::npos);
    CHECK(log.find(secret) == std::string::npos);
    CHECK(status.find("SECRET_7f3a9c") == std::string::npos);
    CHECK(log.find("SECRET_7f3a9c") == std::string::npos);
}

TEST_CASE("Daemon provider: adverts keep their cadence while every API request hangs") {
    TempDir dir;
    FakeApi fake(dir);
    fake.control("POST", "/_fake/faults",
                 {{"route", "any"}, {"kind", "hang"}, {"count", -1}, {"hang_seconds", 20}});
    Daemon daemon(make_config(dir, fake, "dop_v1_test"));
    daemon.start();
    REQUIRE(daemon.loop().run_until([&] { return role_is(daemon, "MASTER"); }, kDeadline));

    const auto sent = [&] { return web(daemon)["adverts"]["sent"].get<std::uint64_t>(); };
    const std::uint64_t before = sent();
    const auto window_start = std::chrono::steady_clock::now();
    daemon.loop().run_until([] { return false; }, 3s);  // a fixed window; nothing ends it early
    const double window = seconds_since(window_start);
    const std::uint64_t adverts = sent() - before;
    const auto expected = static_cast<std::uint64_t>(window / 0.1);
    const json provider = web(daemon)["provider"];
    MESSAGE("adverts in " << window << " s with the API hanging: " << adverts << " (expected about "
                          << expected << "); provider calls " << provider["calls"] << ", failures "
                          << provider["failures"]);
    CHECK(adverts >= expected * 6 / 10);
    CHECK(provider["failures"].get<std::uint64_t>() >= 1);  // timed out at 1 s, and retried
    CHECK(provider["holder_is_self"] == false);
    CHECK(role_is(daemon, "MASTER"));
}

namespace {

// A UDP port that was free a moment ago: tag peers listen on our own [node] listen port, so
// the test needs a real one.
std::uint16_t free_udp_port() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE(
    "Daemon provider: peers from a tag join the transport; a tag nobody carries stops "
    "the start") {
    TempDir dir;
    FakeApi fake(dir);
    Peer peer;
    Config config = make_config(dir, fake, "dop_v1_test", peer.port());
    const std::uint16_t port = free_udp_port();
    config.node.listen = Endpoint{"127.0.0.1", port, 0};

    SUBCASE("the other tagged droplet's private address becomes a peer") {
        config.cluster.peers_from_tag = "failoverd";
        Daemon daemon(config);
        daemon.start();
        REQUIRE(daemon.loop().run_until([&] { return daemon.ready(); }, kDeadline));
        const json status = daemon.status_json();
        const std::string b = "10.77.0.2:" + std::to_string(port);
        CHECK(status["provider"]["tag_peers"] == json::array({b}));
        CHECK(status["provider"]["discovery"]["runs"] == 1);
        REQUIRE(status["peers"].size() == 2);  // the static peer, then b from the tag
        CHECK(status["peers"][0]["source"] == "config");
        CHECK(status["peers"][1]["source"] == "tag");
        CHECK(status["peers"][1]["configured"] == b);
        CHECK(status["peers"][1]["last_verified_s_ago"].is_null());
    }
    SUBCASE("a tag no droplet carries: start-up fails with the reason") {
        config.cluster.peers_from_tag = "nobody-has-this";
        Daemon daemon(config);
        daemon.start();
        REQUIRE(
            daemon.loop().run_until([&] { return daemon.start_error().has_value(); }, kDeadline));
        MESSAGE("start error: " << *daemon.start_error());
        CHECK(daemon.start_error()->find("nobody-has-this") != std::string::npos);
        CHECK_FALSE(daemon.ready());
    }
}

TEST_CASE("Daemon provider: a reload lists the tag again, in the background") {
    TempDir dir;
    FakeApi fake(dir);
    const std::uint16_t port = free_udp_port();
    const std::string token_file = dir.path() + "/do-token";
    std::ofstream(token_file) << "dop_v1_test\n";
    ::chmod(token_file.c_str(), 0600);
    const std::string key_file = dir.path() + "/auth.key";
    std::ofstream(key_file, std::ios::binary)
        .write(reinterpret_cast<const char*>(kKey.data()), static_cast<long>(kKey.size()));
    ::chmod(key_file.c_str(), 0600);
    const std::string path = dir.path() + "/failoverd.conf";
    auto write_config = [&](const std::string& tag) {
        std::ofstream(path) << "[node]\nname = a\nlisten = 127.0.0.1:" << port
                            << "\ncontrol_socket = " << dir.path()
                            << "/control.sock\nstate_dir = " << dir.path()
                            << "/state\n\n[cluster]\npeers_from_tag = " << tag
                            << "\nauth_key_file = " << key_file
                            << "\nadvert_interval = 100ms\n\n[provider]\ntype = digitalocean\n"
                            << "token_file = " << token_file
                            << "\napi_base_url = " << fake.api_url()
                            << "\nmetadata_base_url = " << fake.metadata_url(kSelfId)
                            << "\nrequest_timeout = 1s\n\n[instance.web]\nreserved_ip = " << kIp
                            << "\npriority = 200\n";
    };
    write_config("failoverd");
    Daemon daemon(failoverd::load_config(path));
    daemon.start();
    REQUIRE(daemon.loop().run_until([&] { return daemon.ready(); }, kDeadline));
    const std::string b = "10.77.0.2:" + std::to_string(port);
    const std::string x = "10.77.0.3:" + std::to_string(port);
    CHECK(daemon.status_json()["provider"]["tag_peers"] == json::array({b}));

    write_config("other");
    daemon.reload();
    CHECK(daemon.status_json()["reloads"]["failed"] == 0);
    REQUIRE(daemon.loop().run_until(
        [&] { return daemon.status_json()["provider"]["tag_peers"] == json::array({x}); },
        kDeadline));
    const json status = daemon.status_json();
    CHECK(status["provider"]["discovery"]["runs"] == 2);
    CHECK(status["provider"]["discovery"]["failed"] == 0);
    REQUIRE(status["peers"].size() == 1);
    CHECK(status["peers"][0]["configured"] == x);
    CHECK(status["peers"][0]["source"] == "tag");
}
