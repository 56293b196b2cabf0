// ControlServer served by the EventLoop with the blocking client in a second thread (the client
// is failoverctl's; it must never run on the loop thread): request and response, limits,
// permissions, and the "not running" error the CLI turns into exit code 3.
#include "daemon/shell/control_socket.hpp"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>

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
