// ExecProbe with real commands, including one that ignores SIGTERM.
#include "health/exec_probe.hpp"

#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "http_test_server.hpp"

using namespace std::chrono_literals;
using failoverd::EventLoop;
using failoverd::health::ExecProbe;
using failoverd::health::ExecProbeParams;
using failoverd::health::Probe;
using failoverd::health::ProbeResult;
using failoverd::health::Verdict;
using failoverd::testing::kDeadline;
using failoverd::testing::poll_until;

namespace {

ProbeResult run_probe(EventLoop& loop, Probe& probe) {
    std::optional<ProbeResult> result;
    probe.start([&](ProbeResult r) { result = std::move(r); });
    CHECK_FALSE(result.has_value());
    REQUIRE(loop.run_until([&] { return result.has_value(); }, kDeadline));
    return *result;
}

ExecProbeParams shell(const std::string& script, failoverd::Duration timeout = 10s) {
    ExecProbeParams p;
    p.command = {"sh", "-c", script};
    p.timeout = timeout;
    return p;
}

pid_t read_pid(const std::string& pid_file) {
    std::ifstream in(pid_file);
    std::string line;
    // Only a complete line: the shell may be half-way through writing it.
    if (!std::getline(in, line) || in.eof()) {
        return 0;
    }
    return static_cast<pid_t>(std::stol(line));
}

bool pid_file_process_gone(const std::string& pid_file) {
    const pid_t pid = read_pid(pid_file);
    if (pid <= 0) {
        return false;
    }
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(stat, text)) {
        return true;
    }
    const auto close = text.rfind(')');
    return close + 2 < text.size() && text[close + 2] == 'Z';
}

}  // namespace

TEST_CASE("ExecProbe: exit 0 passes with the first output line in the reason") {
    EventLoop loop;
    ExecProbe probe(loop, shell("echo; echo all good; echo more"));
    const ProbeResult r = run_probe(loop, probe);
    CHECK(r.verdict == Verdict::Pass);
    CHECK(r.reason == "exit 0: all good");
    CHECK(run_probe(loop, probe).verdict == Verdict::Pass);
}

TEST_CASE("ExecProbe: a non-zero exit fails; stderr is used when stdout is silent") {
    EventLoop loop;
    ExecProbe probe(loop, shell("echo disk full >&2; exit 3"));
    const ProbeResult r = run_probe(loop, probe);
    CHECK(r.verdict == Verdict::Fail);
    CHECK(r.reason == "exit 3: disk full");

    ExecProbe quiet(loop, shell("exit 1"));
    CHECK(run_probe(loop, quiet).reason == "exit 1");
}

TEST_CASE("ExecProbe: a command that cannot run is an error") {
    EventLoop loop;
    ExecProbeParams p;
    p.command = {"/nonexistent/check"};
    ExecProbe probe(loop, p);
    const ProbeResult r = run_probe(loop, probe);
    CHECK(r.verdict == Verdict::Error);
    CHECK(r.reason == "cannot run /nonexistent/check: No such file or directory");
}

TEST_CASE("ExecProbe: a script ignoring SIGTERM is killed after its timeout") {
    EventLoop loop;
    ExecProbeParams p = shell("trap '' TERM; echo started; while :; do sleep 1; done", 300ms);
    p.kill_grace = 300ms;
    ExecProbe probe(loop, p);
    const ProbeResult r = run_probe(loop, probe);
    CHECK(r.verdict == Verdict::TimedOut);
    CHECK(r.reason == "timed out after 300 ms, killed by SIGKILL: started");
}

TEST_CASE("ExecProbe: cancel terminates the command in the background, no result") {
    EventLoop loop;
    char tmpl[] = "/tmp/failoverd-exec-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string pid_file = std::string(tmpl) + "/pid";
    ExecProbeParams p =
        shell("trap '' TERM; sleep 60 & echo $! > " + pid_file + "; echo ready; wait");
    p.kill_grace = 200ms;
    bool called = false;
    {
        ExecProbe probe(loop, p);
        probe.start([&](ProbeResult) { called = true; });
        REQUIRE(poll_until(
            loop, [&] { return read_pid(pid_file) > 0; }, kDeadline));
        probe.cancel();
        // The grandchild ignores SIGTERM too: only the SIGKILL after the grace ends it.
        CHECK(poll_until(
            loop, [&] { return pid_file_process_gone(pid_file); }, kDeadline));
    }
    CHECK_FALSE(called);
    std::filesystem::remove_all(tmpl);
}
