// ControlServer served by the EventLoop with the blocking client in a second thread (the client
// is failoverctl's; it must never run on the loop thread): request and response, limits,
// permissions, the "not running" error the CLI turns into exit code 3, and the backpressure
// and fair slots that keep hostile or careless local clients from stalling the loop.
#include "daemon/shell/control_socket.hpp"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/shell/event_loop.hpp"

using namespace std::chrono_literals;
using failoverd::control_request;
using failoverd::ControlError;
using failoverd::ControlServer;
using failoverd::ControlServerOptions;
using failoverd::Duration;
using failoverd::EventLoop;
using nlohmann::json;

namespace {

constexpr Duration kDeadline = 20s;

class TempDir {
  public:
    TempDir() {
        char tmpl[] = "/tmp/failoverd-ctl-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// Runs `client` on a thread while the loop serves; returns once the client finished. The
// thread wakes the loop through an eventfd so the loop does not wait for its next event.
void with_client(EventLoop& loop, const std::function<void()>& client) {
    std::atomic<bool> done{false};
    const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    REQUIRE(wake >= 0);
    auto source = loop.add_io(wake, EPOLLIN, [wake](std::uint32_t) {
        std::uint64_t value = 0;
        [[maybe_unused]] const ssize_t n = ::read(wake, &value, sizeof value);
    });
    std::thread thread([&] {
        client();
        done = true;
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(wake, &one, sizeof one);
    });
    const bool finished = loop.run_until([&] { return done.load(); }, kDeadline);
    thread.join();
    source.reset();
    ::close(wake);
    REQUIRE(finished);
}

json echo_handler(const json& request) {
    if (request.value("command", "") == "boom") {
        throw std::runtime_error("handler failed");
    }
    return {{"ok", true}, {"echo", request}};
}

}  // namespace

TEST_CASE("ControlServer: answers a request with one JSON line") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/run/failoverd/control.sock";  // parents created
    ControlServer server(loop, path, echo_handler);

    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0660);

    json answer;
    with_client(loop, [&] { answer = control_request(path, {{"command", "status"}}, 10s); });
    CHECK(answer["ok"] == true);
    CHECK(answer["echo"]["command"] == "status");
    CHECK(server.counters().requests == 1);

    json failed;
    with_client(loop, [&] { failed = control_request(path, {{"command", "boom"}}, 10s); });
    CHECK(failed["ok"] == false);
    CHECK(failed["error"] == "handler failed");
}

TEST_CASE("ControlServer: an oversized request is rejected and the connection closed") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    ControlServerOptions options;
    options.max_request_bytes = 1024;
    ControlServer server(loop, path, echo_handler, options);

    json answer;
    with_client(loop, [&] {
        answer = control_request(path, {{"command", std::string(5000, 'x')}}, 10s);
    });
    CHECK(answer["ok"] == false);
    CHECK(answer["error"] == "request exceeds 1024 bytes");
    CHECK(server.counters().rejected_oversized == 1);
    CHECK(server.counters().requests == 0);
    REQUIRE(loop.run_until([&] { return server.open_connections() == 0; }, kDeadline));
}

TEST_CASE("ControlServer: a malformed request gets an error answer") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    ControlServer server(loop, path, echo_handler);
    json answer;
    with_client(loop, [&] { answer = control_request(path, json::array({1, 2}), 10s); });
    CHECK(answer["ok"] == false);
    CHECK(answer["error"] == "request is not a JSON object");
    CHECK(server.counters().rejected_malformed == 1);
}

TEST_CASE("ControlServer: a connection that sends nothing is closed after the timeout") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    ControlServerOptions options;
    options.connection_timeout = 200ms;
    ControlServer server(loop, path, echo_handler, options);

    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(loop.run_until([&] { return server.counters().timeouts == 1; }, kDeadline));
    CHECK(server.open_connections() == 0);
    char c = 0;
    CHECK(::recv(fd, &c, 1, 0) == 0);  // closed by the server
    ::close(fd);
}

TEST_CASE("ControlServer: a stale socket file is replaced, a live one is refused") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        ::close(fd);  // the file stays, nobody listens: what a killed daemon leaves
    }
    ControlServer server(loop, path, echo_handler);
    CHECK_THROWS_WITH(ControlServer(loop, path, echo_handler),
                      doctest::Contains("already serving"));
    { std::ofstream(dir.path() + "/plain") << "x"; }
    CHECK_THROWS_WITH(ControlServer(loop, dir.path() + "/plain", echo_handler),
                      doctest::Contains("not a socket"));
}

TEST_CASE("ControlServer: the socket file is removed on destruction") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    {
        ControlServer server(loop, path, echo_handler);
        CHECK(std::filesystem::exists(path));
    }
    CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("control_request: no daemon means a NotRunning error") {
    TempDir dir;
    const std::string missing = dir.path() + "/control.sock";
    std::optional<ControlError::Kind> kind;
    try {
        control_request(missing, {{"command", "status"}}, 2s);
    } catch (const ControlError& e) {
        kind = e.kind();
        CHECK(std::string(e.what()).find("not running") != std::string::npos);
    }
    CHECK(kind == ControlError::Kind::NotRunning);

    // A socket file nobody listens on (daemon killed with -9) is "not running" too.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", missing.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    kind.reset();
    try {
        control_request(missing, {{"command", "status"}}, 2s);
    } catch (const ControlError& e) {
        kind = e.kind();
    }
    ::close(fd);
    CHECK(kind == ControlError::Kind::NotRunning);
}

TEST_CASE("control_request: a daemon that never answers is a Timeout error") {
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 4) == 0);  // accepts in the backlog, never reads
    std::optional<ControlError::Kind> kind;
    try {
        control_request(path, {{"command", "status"}}, 300ms);
    } catch (const ControlError& e) {
        kind = e.kind();
    }
    ::close(fd);
    CHECK(kind == ControlError::Kind::Timeout);
}

namespace {

int connect_unix(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    return fd;
}

void send_all(int fd, const std::string& data) {
    REQUIRE(::send(fd, data.data(), data.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(data.size()));
}

// Everything the server sent so far, up to EOF or until nothing more is buffered. A server
// that closes with requests of ours unread resets the connection: that counts as EOF too.
std::string drain(int fd, bool* eof = nullptr) {
    std::string got;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            got.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (eof != nullptr) {
            *eof = n == 0 || errno == ECONNRESET;
        }
        return got;
    }
}

// One loop iteration: sd-event dispatches at most one source per call.
bool run_once(EventLoop& loop) {
    return sd_event_run(loop.get(), 200'000) > 0;
}

json padded_handler(const json& request) {
    return {{"ok", true}, {"n", request.value("n", -1)}, {"pad", std::string(2000, 'x')}};
}

}  // namespace

TEST_CASE("ControlServer: requests sent together are answered a few per loop turn, in order") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    ControlServerOptions options;
    options.max_requests_per_turn = 4;
    ControlServer server(loop, path, echo_handler, options);

    const int fd = connect_unix(path);
    std::string burst;
    for (int n = 0; n < 20; ++n) {
        burst += json{{"n", n}}.dump() + "\n";
    }
    send_all(fd, burst);
    std::uint64_t most_in_one_turn = 0;
    for (int turn = 0; turn < 200 && server.counters().requests < 20; ++turn) {
        const std::uint64_t before = server.counters().requests;
        run_once(loop);
        most_in_one_turn = std::max(most_in_one_turn, server.counters().requests - before);
    }
    CHECK(server.counters().requests == 20);
    CHECK(most_in_one_turn == 4);
    CHECK(server.counters().turn_limits >= 4);

    std::string replies;
    REQUIRE(loop.run_until(
        [&] {
            replies += drain(fd);
            return std::count(replies.begin(), replies.end(), '\n') == 20;
        },
        kDeadline));
    std::size_t start = 0;
    for (int n = 0; n < 20; ++n) {
        const std::size_t nl = replies.find('\n', start);
        CHECK(json::parse(replies.substr(start, nl - start))["echo"]["n"] == n);
        start = nl + 1;
    }
    ::close(fd);
}

TEST_CASE(
    "ControlServer: a pipelining client that never reads holds bounded memory and is cut off") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    ControlServerOptions options;
    options.max_requests_per_turn = 4;
    options.write_stall_timeout = 300ms;
    options.connection_timeout = 60s;
    ControlServer server(loop, path, padded_handler, options);

    const int fd = connect_unix(path);
    const std::string line = json{{"command", "status"}}.dump() + "\n";
    const std::string chunk = [&] {
        std::string s;
        for (int i = 0; i < 200; ++i) {
            s += line;
        }
        return s;
    }();
    std::size_t sent = 0;
    std::size_t offset = 0;
    std::size_t most_buffered = 0;
    std::uint64_t most_in_one_turn = 0;
    const auto write_more = [&] {
        for (;;) {
            const ssize_t n = ::send(fd, chunk.data() + offset, chunk.size() - offset,
                                     MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n <= 0) {
                return;
            }
            sent += static_cast<std::size_t>(n);
            offset = (offset + static_cast<std::size_t>(n)) % chunk.size();
        }
    };
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (server.counters().closed_not_reading == 0 &&
           std::chrono::steady_clock::now() < deadline) {
        write_more();
        const std::uint64_t before = server.counters().requests;
        run_once(loop);
        most_in_one_turn = std::max(most_in_one_turn, server.counters().requests - before);
        most_buffered = std::max(most_buffered, server.buffered_bytes());
    }
    REQUIRE(server.counters().closed_not_reading == 1);
    CHECK(server.open_connections() == 0);
    CHECK(most_in_one_turn <= 4);
    // The input buffer holds one read (4 KiB), the output one turn's replies.
    CHECK(most_buffered <= 16 * 1024);
    // Answering stopped once the client's receive queue was full: most of what it sent was
    // never even read.
    const std::uint64_t answered = server.counters().requests;
    const std::size_t requests_sent = sent / line.size();
    MESSAGE("sent ", requests_sent, " requests, ", answered, " answered");
    CHECK(answered > 0);
    CHECK(answered * 4 < requests_sent);
    // Nothing answered after the cut-off either; the replies already queued are readable.
    bool eof = false;
    const std::string replies = drain(fd, &eof);
    CHECK(eof);
    CHECK(static_cast<std::uint64_t>(std::count(replies.begin(), replies.end(), '\n')) <= answered);
    ::close(fd);
}

TEST_CASE("ControlServer: control work waits while a timer is due") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    ControlServer server(loop, path, echo_handler);
    const int fd = connect_unix(path);
    REQUIRE(loop.run_until([&] { return server.open_connections() == 1; }, kDeadline));
    std::string burst;
    for (int n = 0; n < 50; ++n) {
        burst += "{\"n\": 1}\n";
    }
    send_all(fd, burst);
    REQUIRE(loop.run_until([&] { return server.counters().requests > 0; }, kDeadline));

    // Both are pending now: the due timer (an advert, say) goes first, then one control turn.
    int fired = 0;
    std::uint64_t requests_when_fired = 0;
    auto timer = loop.add_timer(loop.now(), [&] {
        ++fired;
        requests_when_fired = server.counters().requests;
    });
    const std::uint64_t before = server.counters().requests;
    run_once(loop);
    CHECK(fired == 1);
    CHECK(requests_when_fired == before);
    ::close(fd);
}

TEST_CASE("ControlServer: a connection without a complete request is closed after its deadline") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    ControlServerOptions options;
    options.first_request_timeout = 200ms;
    ControlServer server(loop, path, echo_handler, options);
    const int fd = connect_unix(path);
    send_all(fd, "{\"command\": ");  // and never the rest
    REQUIRE(
        loop.run_until([&] { return server.counters().first_request_timeouts == 1; }, kDeadline));
    CHECK(server.open_connections() == 0);
    CHECK(server.counters().timeouts == 0);
    ::close(fd);
}

TEST_CASE("ControlServer: idle clients holding every slot do not lock an operator out") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    ControlServerOptions options;
    options.max_connections = 4;
    options.reserved_connections = 1;
    options.reserve_uids = {::geteuid()};
    ControlServer server(loop, path, echo_handler, options);

    std::vector<int> idle;
    for (int i = 0; i < 5; ++i) {
        idle.push_back(connect_unix(path));
    }
    REQUIRE(loop.run_until([&] { return server.open_connections() == 5; }, kDeadline));

    json answer;
    with_client(loop, [&] { answer = control_request(path, {{"command", "status"}}, 10s); });
    CHECK(answer["ok"] == true);
    CHECK(server.counters().evicted_idle == 1);
    CHECK(server.counters().rejected_busy == 0);
    // The one evicted first is the one idle the longest.
    bool eof = false;
    drain(idle.front(), &eof);
    CHECK(eof);
    for (const int fd : idle) {
        ::close(fd);
    }
}

TEST_CASE("ControlServer: per-uid cap and the reserve for root and the daemon's uid") {
    EventLoop loop;
    TempDir dir;
    const std::string path = dir.path() + "/control.sock";
    // Busy, not idle: each has sent half a request.
    const auto busy_connection = [&](const std::string& p) {
        const int fd = connect_unix(p);
        send_all(fd, "{\"command\"");
        return fd;
    };
    std::vector<int> fds;

    SUBCASE("an ordinary uid is held to its cap and never gets the reserve") {
        ControlServerOptions options;
        options.max_connections = 4;
        options.reserved_connections = 2;
        options.max_connections_per_uid = 3;
        options.reserve_uids = {::geteuid() + 1000};  // this process is an ordinary uid
        ControlServer server(loop, path, echo_handler, options);
        for (int i = 0; i < 3; ++i) {
            fds.push_back(busy_connection(path));
        }
        REQUIRE(loop.run_until([&] { return server.open_connections() == 3; }, kDeadline));
        json answer;
        with_client(loop, [&] { answer = control_request(path, {{"command", "status"}}, 10s); });
        CHECK(answer["ok"] == false);
        CHECK(answer["error"] == "busy: too many control connections");
        CHECK(server.counters().rejected_per_uid == 1);

        // Its own idle connection is replaced rather than the newcomer refused.
        fds.push_back(connect_unix(path));  // refused too: 3 busy ones held
        REQUIRE(loop.run_until([&] { return server.counters().rejected_per_uid == 2; }, kDeadline));
        ::close(fds.front());
        fds.erase(fds.begin());
        REQUIRE(loop.run_until([&] { return server.open_connections() == 2; }, kDeadline));
        fds.push_back(connect_unix(path));  // idle
        REQUIRE(loop.run_until([&] { return server.open_connections() == 3; }, kDeadline));
        with_client(loop, [&] { answer = control_request(path, {{"command", "status"}}, 10s); });
        CHECK(answer["ok"] == true);
        CHECK(server.counters().evicted_idle == 1);
    }

    SUBCASE("the server's limit leaves the reserve free for ordinary uids") {
        ControlServerOptions options;
        options.max_connections = 2;
        options.reserved_connections = 2;
        options.reserve_uids = {::geteuid() + 1000};
        ControlServer server(loop, path, echo_handler, options);
        for (int i = 0; i < 2; ++i) {
            fds.push_back(busy_connection(path));
        }
        REQUIRE(loop.run_until([&] { return server.open_connections() == 2; }, kDeadline));
        json answer;
        with_client(loop, [&] { answer = control_request(path, {{"command", "status"}}, 10s); });
        CHECK(answer["ok"] == false);
        CHECK(server.counters().rejected_busy == 1);
        CHECK(server.open_connections() == 2);
    }

    SUBCASE("a reserve uid gets the reserve, then the slot of a client already answered") {
        ControlServerOptions options;
        options.max_connections = 2;
        options.reserved_connections = 1;
        options.reserve_uids = {::geteuid()};
        ControlServer server(loop, path, echo_handler, options);
        for (int i = 0; i < 3; ++i) {
            fds.push_back(busy_connection(path));
        }
        REQUIRE(loop.run_until([&] { return server.open_connections() == 3; }, kDeadline));
        // Every slot is taken by a client that has not been answered: nothing to evict.
        json answer;
        with_client(loop, [&] { answer = control_request(path, {{"command", "status"}}, 10s); });
        CHECK(answer["ok"] == false);
        CHECK(server.counters().rejected_busy == 1);

        // The first one completes a request and starts the next: it has had its turn.
        send_all(fds.front(), ": \"status\"}\n{\"command\"");
        REQUIRE(loop.run_until([&] { return server.counters().requests == 1; }, kDeadline));
        with_client(loop, [&] { answer = control_request(path, {{"command", "status"}}, 10s); });
        CHECK(answer["ok"] == true);
        CHECK(server.counters().evicted_served == 1);
        bool eof = false;
        const std::string got = drain(fds.front(), &eof);
        CHECK(json::parse(got.substr(0, got.find('\n')))["ok"] == true);  // its answer came first
        CHECK(eof);
    }
    for (const int fd : fds) {
        ::close(fd);
    }
}
