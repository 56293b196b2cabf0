// EventLoop with real sd-event sources: timers, io, signals, children, posted callbacks.
#include "daemon/shell/event_loop.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "http_test_server.hpp"

using namespace std::chrono_literals;
using failoverd::Duration;
using failoverd::EventLoop;
using failoverd::EventSource;
using failoverd::Instant;
using failoverd::Timer;
using failoverd::testing::kDeadline;

TEST_CASE("EventLoop: timers fire in deadline order, never early") {
    EventLoop loop;
    const Instant t0 = loop.now();
    std::vector<int> order;
    bool early = false;
    auto at = [&](int ms) {
        const Instant when = t0 + std::chrono::milliseconds(ms);
        return loop.add_timer(when, [&, ms, when] {
            early = early || loop.now() < when;
            order.push_back(ms);
        });
    };
    EventSource a = at(30);
    EventSource b = at(10);
    EventSource c = at(20);
    EventSource d = at(0);
    REQUIRE(loop.run_until([&] { return order.size() == 4; }, kDeadline));
    CHECK(order == std::vector<int>{0, 10, 20, 30});
    CHECK_FALSE(early);
}

TEST_CASE("EventLoop: a dropped source or a disarmed timer never fires") {
    EventLoop loop;
    int fired = 0;
    EventSource dropped = loop.add_timer(loop.now() + 5ms, [&] { ++fired; });
    dropped.reset();
    Timer disarmed(loop, [&] { ++fired; });
    disarmed.arm_after(5ms);
    disarmed.disarm();
    CHECK_FALSE(disarmed.armed());
    bool later = false;
    EventSource marker = loop.add_timer(loop.now() + 50ms, [&] { later = true; });
    REQUIRE(loop.run_until([&] { return later; }, kDeadline));
    CHECK(fired == 0);
}

TEST_CASE("EventLoop: a timer re-armed from its own callback keeps firing") {
    EventLoop loop;
    int ticks = 0;
    std::vector<Instant> deadlines;
    Timer timer;
    timer = Timer(loop, [&] {
        ++ticks;
        if (ticks < 5) {
            timer.arm_after(2ms);
            deadlines.push_back(*timer.deadline());
        }
    });
    timer.arm_after(1ms);
    CHECK(timer.armed());
    REQUIRE(loop.run_until([&] { return ticks == 5; }, kDeadline));
    CHECK_FALSE(timer.armed());
    CHECK_FALSE(timer.deadline().has_value());
    REQUIRE(deadlines.size() == 4);
    for (std::size_t i = 1; i < deadlines.size(); ++i) {
        CHECK(deadlines[i] > deadlines[i - 1]);
    }
}

TEST_CASE("EventLoop: an io source reports readability and can change its events") {
    EventLoop loop;
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
    std::string got;
    std::uint32_t seen = 0;
    EventSource reader = loop.add_io(fds[0], EPOLLIN, [&](std::uint32_t events) {
        seen |= events;
        char buf[64];
        const ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n > 0) {
            got.append(buf, static_cast<std::size_t>(n));
        }
    });
    int writable = 0;
    EventSource writer = loop.add_io(fds[1], 0, [&](std::uint32_t events) {
        if ((events & EPOLLOUT) != 0) {
            ++writable;
            REQUIRE(::write(fds[1], "ping", 4) == 4);
            writer.reset();  // dropping the source from inside its own callback is allowed
        }
    });
    writer.set_io_events(EPOLLOUT);
    REQUIRE(loop.run_until([&] { return got == "ping"; }, kDeadline));
    CHECK((seen & EPOLLIN) != 0);
    CHECK(writable == 1);
    CHECK_FALSE(writer);
    reader.reset();
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_CASE("EventLoop: posted callbacks run on a later turn, in order") {
    EventLoop loop;
    std::vector<int> order;
    loop.post([&] {
        order.push_back(1);
        loop.post([&] { order.push_back(3); });
    });
    loop.post([&] { order.push_back(2); });
    CHECK(order.empty());
    REQUIRE(loop.run_until([&] { return order.size() == 3; }, kDeadline));
    CHECK(order == std::vector<int>{1, 2, 3});
}

TEST_CASE("EventLoop: call_at runs once, at its time, with nobody holding the timer") {
    EventLoop loop;
    const Instant t0 = loop.now();
    std::vector<int> order;
    bool early = false;
    loop.call_at(t0 + 60ms, [&] {
        early = early || loop.now() < t0 + 60ms;
        order.push_back(2);
    });
    loop.call_at(t0 + 20ms, [&] {
        order.push_back(1);
        // One scheduled from a callback runs too.
        loop.call_at(loop.now() + 10ms, [&] { order.push_back(3); });
    });
    REQUIRE(loop.run_until([&] { return order.size() == 3; }, kDeadline));
    CHECK(order[0] == 1);  // deadline order; 3 and 2 may share a late wake-up
    std::sort(order.begin(), order.end());
    CHECK(order == std::vector<int>{1, 2, 3});
    CHECK_FALSE(early);
    CHECK_FALSE(loop.run_until([&] { return order.size() > 3; }, 100ms));
    // Still pending when the loop goes: dropped unrun (the sanitizer build checks for leaks).
    loop.call_at(loop.now() + 1h, [&] { order.push_back(4); });
}

TEST_CASE("EventLoop: an exception in a callback is caught, counted, and the loop goes on") {
    EventLoop loop;
    EventSource bad = loop.add_timer(loop.now(), [] { throw std::runtime_error("boom"); });
    loop.post([] { throw 42; });
    bool after = false;
    EventSource good = loop.add_timer(loop.now() + 5ms, [&] { after = true; });
    REQUIRE(loop.run_until([&] { return after; }, kDeadline));
    CHECK(loop.callback_errors() == 2);
}

TEST_CASE("EventLoop: a signal arrives through its source") {
    EventLoop loop;
    int got = 0;
    EventSource source =
        loop.add_signal(SIGUSR1, [&](const signalfd_siginfo& info) { got = info.ssi_signo; });
    REQUIRE(::raise(SIGUSR1) == 0);  // to this thread, where the source blocked it
    REQUIRE(loop.run_until([&] { return got != 0; }, kDeadline));
    CHECK(got == SIGUSR1);
}

TEST_CASE("EventLoop: a child's exit is reported without a blocking wait") {
    EventLoop loop;
    pid_t pid = -1;
    char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>("exit 7"),
                    nullptr};
    REQUIRE(::posix_spawnp(&pid, "sh", nullptr, nullptr, argv, environ) == 0);
    int code = -1;
    EventSource child = loop.add_child(pid, [&](const siginfo_t& info) {
        CHECK(info.si_code == CLD_EXITED);
        code = info.si_status;
    });
    REQUIRE(loop.run_until([&] { return code != -1; }, kDeadline));
    CHECK(code == 7);
}

TEST_CASE("EventLoop: run returns the exit code; run_until gives up at its deadline") {
    EventLoop loop;
    loop.post([&] { loop.exit(7); });
    CHECK(loop.run() == 7);

    EventLoop other;
    const auto before = std::chrono::steady_clock::now();
    CHECK_FALSE(other.run_until([] { return false; }, 30ms));
    CHECK(std::chrono::steady_clock::now() - before >= 30ms);
}
