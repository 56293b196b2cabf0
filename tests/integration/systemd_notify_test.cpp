// SystemdNotify against a fake NOTIFY_SOCKET: a unix datagram socket this test binds, as
// systemd's manager does. READY=1, STATUS=, RELOADING=1, STOPPING=1 and the loop's WATCHDOG=1.
#include "daemon/shell/systemd_notify.hpp"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "daemon/shell/event_loop.hpp"

using namespace std::chrono_literals;
using failoverd::EventLoop;
using failoverd::SystemdNotify;

namespace {

// The listening side of NOTIFY_SOCKET; sets and clears the environment for the test.
class FakeSystemd {
  public:
    FakeSystemd() {
        char tmpl[] = "/tmp/failoverd-notify-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        path_ = dir_ + "/notify.sock";
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    }
    ~FakeSystemd() {
        ::unsetenv("NOTIFY_SOCKET");
        ::unsetenv("WATCHDOG_USEC");
        ::unsetenv("WATCHDOG_PID");
        ::close(fd_);
        std::filesystem::remove_all(dir_);
    }
    int fd() const { return fd_; }

    // Messages received so far (non-blocking: sd_notify has sent them synchronously).
    std::vector<std::string> drain() {
        std::vector<std::string> out;
        char buf[4096];
        for (;;) {
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n < 0) {
                return out;
            }
            out.emplace_back(buf, static_cast<std::size_t>(n));
        }
    }

  private:
    std::string dir_;
    std::string path_;
    int fd_ = -1;
};

}  // namespace

TEST_CASE("SystemdNotify: READY=1, STATUS=, RELOADING=1 and STOPPING=1 reach NOTIFY_SOCKET") {
    FakeSystemd systemd;
    EventLoop loop;
    SystemdNotify notify;
    REQUIRE(SystemdNotify::available());

    notify.ready("web: MASTER");
    CHECK(systemd.drain() == std::vector<std::string>{"READY=1\nSTATUS=web: MASTER"});

    notify.status("web: BACKUP");
    notify.status("web: BACKUP");  // unchanged: not sent again
    notify.status("web: FAULT\nsecond line");
    CHECK(systemd.drain() ==
          std::vector<std::string>{"STATUS=web: BACKUP", "STATUS=web: FAULT second line"});

    notify.reloading(loop.now());
    auto got = systemd.drain();
    REQUIRE(got.size() == 1);
    CHECK(got[0].starts_with("RELOADING=1\n"));
    CHECK(got[0].find("\nMONOTONIC_USEC=") != std::string::npos);
    notify.reloaded("web: MASTER");
    CHECK(systemd.drain() == std::vector<std::string>{"READY=1\nSTATUS=web: MASTER"});

    notify.stopping("stopping");
    CHECK(systemd.drain() == std::vector<std::string>{"STOPPING=1\nSTATUS=stopping"});
    CHECK(notify.notifications_sent() == 6);
    CHECK(notify.notifications_failed() == 0);
}

TEST_CASE("SystemdNotify: the loop sends WATCHDOG=1 when systemd asks for a watchdog") {
    FakeSystemd systemd;
    ::setenv("WATCHDOG_USEC", "200000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    EventLoop loop;
    SystemdNotify notify;
    REQUIRE(notify.enable_watchdog(loop));

    std::vector<std::string> got;
    auto source = loop.add_io(systemd.fd(), EPOLLIN, [&](std::uint32_t) {
        for (auto& m : systemd.drain()) {
            got.push_back(std::move(m));
        }
    });
    const auto pings = [&] {
        int n = 0;
        for (const auto& m : got) {
            n += m == "WATCHDOG=1" ? 1 : 0;
        }
        return n;
    };
    // Several pings, so the loop keeps sending them rather than once at set-up.
    REQUIRE(loop.run_until([&] { return pings() >= 3; }, 20s));
}

TEST_CASE("SystemdNotify: without NOTIFY_SOCKET nothing is sent and the watchdog stays off") {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    EventLoop loop;
    SystemdNotify notify;
    CHECK_FALSE(SystemdNotify::available());
    notify.ready("x");
    notify.stopping("y");
    CHECK(notify.notifications_sent() == 0);
    CHECK(notify.notifications_failed() == 0);
    CHECK_FALSE(notify.enable_watchdog(loop));
}
