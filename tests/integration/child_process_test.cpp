// ChildProcess with real processes: exit status, output lines, timeout escalation to the
// whole process group, spawn failures, many children at once.
#include "daemon/shell/child_process.hpp"

#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_test_server.hpp"

using namespace std::chrono_literals;
using failoverd::ChildExit;
using failoverd::ChildProcess;
using failoverd::ChildSpec;
using failoverd::EventLoop;
using failoverd::OutputStream;
using failoverd::testing::kDeadline;
using failoverd::testing::poll_until;

namespace {

struct Run {
    std::optional<ChildExit> exit;
    std::vector<std::string> out;
    std::vector<std::string> err;
};

// Runs `spec` to completion in `loop` and returns what it saw.
Run run(EventLoop& loop, ChildSpec spec) {
    Run r;
    spec.on_line = [&r](OutputStream s, std::string_view line) {
        (s == OutputStream::Stdout ? r.out : r.err).emplace_back(line);
    };
    ChildProcess child(loop, std::move(spec));
    child.start([&r](const ChildExit& e) { r.exit = e; });
    CHECK_FALSE(r.exit.has_value());  // never reported from inside start()
    REQUIRE(loop.run_until([&r] { return r.exit.has_value(); }, kDeadline));
    return r;
}

ChildSpec shell(const std::string& script) {
    ChildSpec spec;
    spec.argv = {"sh", "-c", script};
    return spec;
}

// Gone, or a zombie waiting for its new parent: either way it no longer runs.
bool process_gone(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(stat, text)) {
        return true;
    }
    const auto close = text.rfind(')');
    return close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'Z';
}

}  // namespace

TEST_CASE("ChildProcess: reports the exit code") {
    EventLoop loop;
    const Run ok = run(loop, shell("exit 0"));
    CHECK(ok.exit->spawned);
    CHECK(ok.exit->success());
    CHECK(ok.exit->describe() == "exit 0");
    const Run bad = run(loop, shell("exit 3"));
    CHECK(bad.exit->exit_code == 3);
    CHECK_FALSE(bad.exit->success());
    CHECK_FALSE(bad.exit->timed_out);
    CHECK(bad.exit->describe() == "exit 3");
}

TEST_CASE("ChildProcess: stdout and stderr arrive as lines, the last one without newline too") {
    EventLoop loop;
    const Run r = run(loop, shell("echo one; echo two >&2; printf 'a\\r\\nb\\n\\nthree'"));
    CHECK(r.out == std::vector<std::string>{"one", "a", "b", "", "three"});
    CHECK(r.err == std::vector<std::string>{"two"});
}

TEST_CASE("ChildProcess: over-long lines are cut and total output is capped") {
    EventLoop loop;
    ChildSpec spec = shell("head -c 10000 /dev/zero | tr '\\0' x; echo; echo next");
    spec.max_line_bytes = 100;
    const Run cut = run(loop, spec);
    CHECK(cut.out == std::vector<std::string>{std::string(100, 'x'), "next"});

    ChildSpec capped = shell("head -c 100000 /dev/zero | tr '\\0' y; echo");
    capped.max_line_bytes = 10;
    capped.max_output_bytes = 1000;
    const Run c = run(loop, capped);
    CHECK(c.exit->success());
    CHECK(c.exit->output_bytes_dropped == 100001 - 1000);
    CHECK(c.exit->output_lines_dropped == 0);  // the one line began before the cap
    CHECK(c.out == std::vector<std::string>{std::string(10, 'y')});

    // Every line is either delivered (the one cut by the cap too) or counted as dropped.
    ChildSpec many = shell("seq 1 1000");
    many.max_output_bytes = 1002;  // 1..277 fill 1000 bytes
    const Run m = run(loop, many);
    CHECK(m.exit->output_bytes_dropped == 3893 - 1002);
    REQUIRE(m.out.size() == 278);
    CHECK(m.out.back() == "27");  // "278" cut short by the cap
    CHECK(m.exit->output_lines_dropped == 1000 - 278);
}

TEST_CASE("ChildProcess: what a command leaves running in its group is cleaned up at its exit") {
    EventLoop loop;
    const Run r = run(loop, shell("sleep 1000 & echo $!"));
    CHECK(r.exit->success());
    CHECK(r.exit->left_processes);
    REQUIRE(r.out.size() == 1);
    const pid_t sleeper = std::stoi(r.out[0]);
    CHECK(poll_until(
        loop, [&] { return process_gone(sleeper); }, kDeadline));

    const Run alone = run(loop, shell("exit 0"));
    CHECK_FALSE(alone.exit->left_processes);
}

TEST_CASE("ChildProcess: a leftover that ignores SIGTERM gets SIGKILL after the grace period") {
    EventLoop loop;
    // It reports once its trap is set, so the SIGTERM cannot arrive before it.
    ChildSpec spec = shell(
        "f=$(mktemp -u /tmp/failoverd-trap.XXXXXX); "
        "sh -c \"trap '' TERM; : > $f; exec sleep 1000\" & "
        "while [ ! -e $f ]; do sleep 0.01; done; rm -f $f; echo $!");
    spec.kill_grace = 300ms;
    Run r = run(loop, spec);
    CHECK(r.exit->left_processes);
    REQUIRE(r.out.size() == 1);
    const pid_t stubborn = std::stoi(r.out[0]);
    const auto exited = std::chrono::steady_clock::now();
    CHECK(poll_until(
        loop, [&] { return process_gone(stubborn); }, kDeadline));
    CHECK(std::chrono::steady_clock::now() - exited >= 250ms);  // it survived the SIGTERM
}

TEST_CASE("ChildProcess: ProcessCleanup::None leaves the group alone") {
    EventLoop loop;
    ChildSpec spec = shell("sleep 1000 & echo $!");
    spec.cleanup = failoverd::ProcessCleanup::None;
    spec.kill_grace = 100ms;
    const Run r = run(loop, spec);
    CHECK(r.exit->success());
    CHECK_FALSE(r.exit->left_processes);
    REQUIRE(r.out.size() == 1);
    const pid_t sleeper = std::stoi(r.out[0]);
    // Well past the grace period a cleanup would have used.
    CHECK_FALSE(poll_until(
        loop, [&] { return process_gone(sleeper); }, 1s));
    CHECK(::kill(sleeper, SIGKILL) == 0);
    CHECK(poll_until(
        loop, [&] { return process_gone(sleeper); }, kDeadline));
}

TEST_CASE("ChildProcess: ProcessCleanup::None signals only the command on a timeout") {
    EventLoop loop;
    ChildSpec spec = shell("sleep 1000 & echo $!; exec sleep 60");
    spec.cleanup = failoverd::ProcessCleanup::None;
    spec.timeout = 1s;
    const Run r = run(loop, spec);
    CHECK(r.exit->timed_out);
    CHECK(r.exit->signal == SIGTERM);
    REQUIRE(r.out.size() == 1);
    const pid_t sleeper = std::stoi(r.out[0]);
    CHECK_FALSE(process_gone(sleeper));
    CHECK(::kill(sleeper, SIGKILL) == 0);
    CHECK(poll_until(
        loop, [&] { return process_gone(sleeper); }, kDeadline));
}

TEST_CASE("ChildProcess: environment additions, PATH lookup and a clean signal mask") {
    EventLoop loop;
    ChildSpec spec =
        shell("echo \"$FAILOVERD_TEST_VAR\"; grep -E '^Sig(Blk|Ign)' /proc/self/status");
    spec.env = {{"FAILOVERD_TEST_VAR", "hello there"}};
    const Run r = run(loop, spec);
    REQUIRE(r.out.size() == 3);
    CHECK(r.out[0] == "hello there");
    // The loop blocks SIGCHLD; the child must not inherit that, nor ignored signals (1-31;
    // glibc's internal real-time signals 32 and 33 are out of our hands).
    CHECK(r.out[1] == "SigBlk:\t0000000000000000");
    REQUIRE(r.out[2].rfind("SigIgn:\t", 0) == 0);
    CHECK((std::stoull(r.out[2].substr(8), nullptr, 16) & 0x7fffffffULL) == 0);
}

TEST_CASE("ChildProcess: a command that cannot be run is reported, not thrown") {
    EventLoop loop;
    ChildSpec spec;
    spec.argv = {"/nonexistent/failoverd-check"};
    const Run r = run(loop, spec);
    CHECK_FALSE(r.exit->spawned);
    CHECK(r.exit->describe() ==
          "cannot run: /nonexistent/failoverd-check: No such file or directory");

    ChildSpec empty;
    const Run e = run(loop, empty);
    CHECK_FALSE(e.exit->spawned);
    CHECK(e.exit->spawn_error == "empty command");
}

TEST_CASE("ChildProcess: timeout sends SIGTERM to the group") {
    EventLoop loop;
    ChildSpec spec;
    spec.argv = {"sleep", "60"};
    spec.timeout = 200ms;
    const Run r = run(loop, spec);
    CHECK(r.exit->timed_out);
    CHECK_FALSE(r.exit->killed);
    CHECK(r.exit->signal == SIGTERM);
    CHECK(r.exit->runtime >= 200ms);
    CHECK(r.exit->describe(200ms) == "timed out after 200 ms, killed by SIGTERM");
}

TEST_CASE("ChildProcess: a command ignoring SIGTERM is killed, and so is its grandchild") {
    EventLoop loop;
    // The grandchild inherits the ignored SIGTERM; both must die by SIGKILL to the group.
    ChildSpec spec = shell("trap '' TERM; sleep 60 & echo $!; while :; do sleep 1; done");
    spec.timeout = 200ms;
    spec.kill_grace = 300ms;
    const Run r = run(loop, spec);
    CHECK(r.exit->timed_out);
    CHECK(r.exit->killed);
    CHECK(r.exit->signal == SIGKILL);
    CHECK(r.exit->runtime >= 500ms);
    CHECK(r.exit->describe(200ms) == "timed out after 200 ms, killed by SIGKILL");
    REQUIRE(r.out.size() == 1);
    const pid_t grandchild = std::stoi(r.out[0]);
    CHECK(poll_until(
        loop, [&] { return process_gone(grandchild); }, kDeadline));
}

TEST_CASE("ChildProcess: terminate() ends a running command early") {
    EventLoop loop;
    ChildSpec spec;
    spec.argv = {"sleep", "60"};
    ChildProcess child(loop, spec);
    std::optional<ChildExit> exit;
    child.start([&](const ChildExit& e) { exit = e; });
    CHECK(child.running());
    loop.post([&] { child.terminate(); });
    REQUIRE(loop.run_until([&] { return exit.has_value(); }, kDeadline));
    CHECK_FALSE(exit->timed_out);
    CHECK(exit->signal == SIGTERM);
    CHECK_FALSE(child.running());
}

TEST_CASE("ChildProcess: destroying a running child kills its group, no callback") {
    EventLoop loop;
    pid_t pid = -1;
    bool called = false;
    {
        ChildSpec spec;
        spec.argv = {"sleep", "60"};
        ChildProcess child(loop, spec);
        child.start([&](const ChildExit&) { called = true; });
        pid = child.pid();
        REQUIRE(pid > 0);
    }
    // The loop reaps it; a zombie would stay visible in /proc as 'Z'.
    CHECK(poll_until(
        loop, [&] { return !std::ifstream("/proc/" + std::to_string(pid) + "/stat").good(); },
        kDeadline));
    CHECK_FALSE(called);
}

TEST_CASE("ChildProcess: many children at once all report") {
    EventLoop loop;
    constexpr int kChildren = 40;
    std::vector<std::unique_ptr<ChildProcess>> children;
    std::vector<std::optional<ChildExit>> exits(kChildren);
    std::vector<std::string> lines(kChildren);
    int done = 0;
    for (int i = 0; i < kChildren; ++i) {
        ChildSpec spec = shell("echo child-$0; exit $(( $0 % 5 ))");
        spec.argv.push_back(std::to_string(i));
        spec.on_line = [&lines, i](OutputStream, std::string_view line) { lines[i] = line; };
        children.push_back(std::make_unique<ChildProcess>(loop, std::move(spec)));
        children.back()->start([&exits, &done, i](const ChildExit& e) {
            exits[i] = e;
            ++done;
        });
    }
    REQUIRE(loop.run_until([&] { return done == kChildren; }, kDeadline));
    for (int i = 0; i < kChildren; ++i) {
        CHECK(exits[i]->exit_code == i % 5);
        CHECK(lines[i] == "child-" + std::to_string(i));
    }
}

TEST_CASE("ChildProcess: the done callback may destroy the ChildProcess") {
    EventLoop loop;
    auto child = std::make_unique<ChildProcess>(loop, shell("echo bye"));
    bool done = false;
    child->start([&](const ChildExit& e) {
        CHECK(e.success());
        child.reset();
        done = true;
    });
    REQUIRE(loop.run_until([&] { return done; }, kDeadline));
    CHECK(child == nullptr);
}
