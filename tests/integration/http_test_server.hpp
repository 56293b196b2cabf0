// tests/fakes/http_test_server.py as a child of the test's EventLoop, on 127.0.0.1 port 0 or
// on a unix socket in a fresh temporary directory.
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "daemon/shell/child_process.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd::testing {

// The machine running the tests may be loaded: deadlines are generous and nothing sleeps.
inline constexpr Duration kDeadline = std::chrono::seconds(60);

// run_until for a condition outside the loop (a process in /proc): nothing in the loop would
// wake it when that changes, so a 10 ms timer keeps the loop turning while it waits.
inline bool poll_until(EventLoop& loop, const std::function<bool()>& done, Duration max_wait) {
    Timer tick;
    tick = Timer(loop, [&tick] { tick.arm_after(std::chrono::milliseconds(10)); });
    tick.arm_after(std::chrono::milliseconds(10));
    return loop.run_until(done, max_wait);
}

class HttpTestServer {
  public:
    enum class Mode { Tcp, Unix };

    explicit HttpTestServer(EventLoop& loop, Mode mode = Mode::Tcp) : loop_(loop) {
        ChildSpec spec;
        spec.argv = {"python3", std::string(FAILOVERD_FAKES_DIR) + "/http_test_server.py"};
        if (mode == Mode::Unix) {
            char tmpl[] = "/tmp/failoverd-http-XXXXXX";
            REQUIRE(::mkdtemp(tmpl) != nullptr);
            dir_ = tmpl;
            socket_path_ = dir_ + "/http.sock";
            spec.argv.insert(spec.argv.end(), {"--unix", socket_path_});
        }
        spec.on_line = [this](OutputStream, std::string_view line) {
            if (line.rfind("PORT ", 0) == 0) {
                port_ = std::stoi(std::string(line.substr(5)));
            } else if (line.rfind("UNIX ", 0) == 0) {
                unix_ready_ = true;
            } else {
                output_.append(line).append("\n");
            }
        };
        child_ = std::make_unique<ChildProcess>(loop_, std::move(spec));
        child_->start([this](const ChildExit& exit) {
            exited_ = true;
            exit_ = exit.describe();
        });
        const bool up =
            loop_.run_until([this] { return exited_ || port_ != 0 || unix_ready_; }, kDeadline);
        REQUIRE_MESSAGE(!exited_, "http_test_server.py exited: " << exit_ << "\n" << output_);
        REQUIRE_MESSAGE(up, "http_test_server.py did not start");
    }

    ~HttpTestServer() {
        if (child_ && !exited_) {
            child_->terminate();
            loop_.run_until([this] { return exited_; }, kDeadline);
        }
        child_.reset();
        if (!dir_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
        }
    }

    HttpTestServer(const HttpTestServer&) = delete;
    HttpTestServer& operator=(const HttpTestServer&) = delete;

    int port() const { return port_; }
    std::string url(const std::string& path) const {
        if (!socket_path_.empty()) {
            return "http://localhost" + path;
        }
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }
    const std::string& socket_path() const { return socket_path_; }

  private:
    EventLoop& loop_;
    std::unique_ptr<ChildProcess> child_;
    std::string dir_;
    std::string socket_path_;
    int port_ = 0;
    bool unix_ready_ = false;
    bool exited_ = false;
    std::string exit_;
    std::string output_;
};

}  // namespace failoverd::testing

namespace failoverd::testing {

// A TCP socket on 127.0.0.1 with a kernel-chosen port: bound only (connects are refused) or
// listening (connects complete in the kernel, nobody accepts).
class LoopbackSocket {
  public:
    enum class Kind { BoundOnly, Listening };

    explicit LoopbackSocket(Kind kind, int backlog = 16) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        if (kind == Kind::Listening) {
            REQUIRE(::listen(fd_, backlog) == 0);
        }
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
    }
    ~LoopbackSocket() { ::close(fd_); }
    LoopbackSocket(const LoopbackSocket&) = delete;
    LoopbackSocket& operator=(const LoopbackSocket&) = delete;

    std::uint16_t port() const { return port_; }
    int fd() const { return fd_; }

  private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

}  // namespace failoverd::testing
