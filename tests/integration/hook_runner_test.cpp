// HookRunner with real child processes: order under a burst, one hook at a time per instance,
// the environment and arguments hooks get, timeout escalation to SIGKILL, failures counted and
// logged, output logged as data.
#include "daemon/shell/hook_runner.hpp"

#include <doctest/doctest.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/shell/event_loop.hpp"

using namespace std::chrono_literals;
using failoverd::Duration;
using failoverd::EventLoop;
using failoverd::HookCommands;
using failoverd::HookEvent;
using failoverd::HookRunner;
using failoverd::HookRunnerOptions;

namespace {

constexpr Duration kDeadline = 30s;

class TempDir {
  public:
    TempDir() {
        char tmpl[] = "/tmp/failoverd-hooks-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    const std::string& path() const { return path_; }

    std::string script(const std::string& name, const std::string& body) const {
        const std::string file = path_ + "/" + name;
        std::ofstream(file) << "#!/bin/sh\n" << body << "\n";
        ::chmod(file.c_str(), 0755);
        return file;
    }
    std::string read(const std::string& name) const {
        std::ifstream in(path_ + "/" + name);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

  private:
    std::string path_;
};

// Captures the default logger's lines for the duration of a test.
class LogCapture {
  public:
    LogCapture() : previous_(spdlog::default_logger()) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out_);
        auto logger = std::make_shared<spdlog::logger>("capture", sink);
        logger->set_pattern("%l %v");
        logger->set_level(spdlog::level::trace);
        spdlog::set_default_logger(logger);
    }
    ~LogCapture() { spdlog::set_default_logger(previous_); }
    std::string text() const { return out_.str(); }

  private:
    std::shared_ptr<spdlog::logger> previous_;
    std::ostringstream out_;
};

// Appends "TAG args..." to log; fails loudly (into the log) if another hook of the same
// instance is running at the same time.
std::string recorder(const TempDir& dir, const std::string& name, const std::string& tag) {
    return dir.script(name, "lock=" + dir.path() +
                                "/lock\n"
                                "mkdir \"$lock\" 2>/dev/null || echo OVERLAP >> " +
                                dir.path() +
                                "/log\n"
                                "echo \"" +
                                tag +
                                " $FAILOVERD_ROLE $FAILOVERD_OLD_ROLE $FAILOVERD_REASON"
                                " | $*\" >> " +
                                dir.path() +
                                "/log\n"
                                "rmdir \"$lock\"");
}

}  // namespace

TEST_CASE("HookRunner: a burst of transitions runs every hook once, in order, one at a time") {
    EventLoop loop;
    TempDir dir;
    HookRunner runner(loop, "node-a");
    HookCommands commands;
    commands.notify_master = {recorder(dir, "master.sh", "master")};
    commands.notify_backup = {recorder(dir, "backup.sh", "backup")};
    commands.notify_fault = {recorder(dir, "fault.sh", "fault")};
    commands.notify = {recorder(dir, "notify.sh", "notify")};
    runner.configure("web", commands, "203.0.113.10");

    const std::vector<std::string> roles{"BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"};
    std::string expected;
    std::string old_role = "INIT";
    for (int round = 0; round < 4; ++round) {
        for (const std::string& role : roles) {
            const std::string reason = "step " + std::to_string(round) + " " + role;
            runner.on_transition(HookEvent{"web", role, old_role, reason});
            std::string lower = role;
            for (char& c : lower) {
                c = static_cast<char>(std::tolower(c));
            }
            expected += lower + " " + role + " " + old_role + " " + reason + " | \n";
            expected += "notify " + role + " " + old_role + " " + reason + " | web " + role + " " +
                        old_role + " " + reason + "\n";
            old_role = role;
        }
    }
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));
    CHECK(dir.read("log") == expected);
    CHECK(runner.counters().runs == 40);
    CHECK(runner.counters().failures == 0);
    CHECK(runner.counters().dropped == 0);
    CHECK(runner.counters("web").runs == 40);
}

TEST_CASE("HookRunner: hooks get the transition in their environment") {
    EventLoop loop;
    TempDir dir;
    HookRunner runner(loop, "node-a");
    HookCommands commands;
    commands.notify_master = {
        dir.script("env.sh", "env | grep ^FAILOVERD_ | sort > " + dir.path() + "/env")};
    runner.configure("web", commands, "203.0.113.10");
    runner.on_transition(HookEvent{"web", "MASTER", "BACKUP", "master down interval expired"});
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));
    CHECK(dir.read("env") ==
          "FAILOVERD_INSTANCE=web\n"
          "FAILOVERD_NODE=node-a\n"
          "FAILOVERD_OLD_ROLE=BACKUP\n"
          "FAILOVERD_REASON=master down interval expired\n"
          "FAILOVERD_RESERVED_IP=203.0.113.10\n"
          "FAILOVERD_ROLE=MASTER\n");
}

TEST_CASE("HookRunner: a hook that ignores SIGTERM is killed after the grace period") {
    EventLoop loop;
    TempDir dir;
    LogCapture log;
    HookRunnerOptions options;
    options.timeout = 300ms;
    options.kill_grace = 300ms;
    HookRunner runner(loop, "node-a", options);
    HookCommands commands;
    commands.notify_master = {dir.script("stuck.sh", "trap '' TERM\necho stuck\nsleep 60")};
    commands.notify = {dir.script("after.sh", "echo \"$2\" >> " + dir.path() + "/after")};
    runner.configure("web", commands, "");

    const auto started = std::chrono::steady_clock::now();
    runner.on_transition(HookEvent{"web", "MASTER", "BACKUP", "test"});
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));
    CHECK(std::chrono::steady_clock::now() - started < 20s);  // not the hook's 60 s

    CHECK(runner.counters().runs == 2);
    CHECK(runner.counters().timeouts == 1);
    CHECK(runner.counters().failures == 1);
    CHECK(dir.read("after") == "MASTER\n");  // the queue went on after the kill
    const std::string text = log.text();
    CHECK(text.find("[web] hook notify_master stdout: stuck") != std::string::npos);
    CHECK(text.find("[web] hook notify_master failed: timed out") != std::string::npos);
    CHECK(text.find("SIGKILL") != std::string::npos);
}

TEST_CASE("HookRunner: a failing hook is logged with its exit status and never stops the rest") {
    EventLoop loop;
    TempDir dir;
    LogCapture log;
    HookRunner runner(loop, "node-a");
    HookCommands commands;
    commands.notify_backup = {dir.script("fail.sh", "echo 'braces {} {:>5} %s' >&2\nexit 3")};
    commands.notify_master = {dir.path() + "/missing.sh"};
    commands.notify = {dir.script("ok.sh", "echo \"$2\" >> " + dir.path() + "/ok")};
    runner.configure("web", commands, "");

    runner.on_transition(HookEvent{"web", "BACKUP", "INIT", "start"});
    runner.on_transition(HookEvent{"web", "MASTER", "BACKUP", "takeover"});
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));

    CHECK(runner.counters().runs == 4);
    CHECK(runner.counters().failures == 2);
    CHECK(runner.counters().timeouts == 0);
    CHECK(dir.read("ok") == "BACKUP\nMASTER\n");
    const std::string text = log.text();
    CHECK(text.find("[web] hook notify_backup failed: exit 3") != std::string::npos);
    // Output is data, so format specifiers in it come out verbatim.
    CHECK(text.find("[web] hook notify_backup stderr: braces {} {:>5} %s") != std::string::npos);
    CHECK(text.find("[web] hook notify_master failed: cannot run") != std::string::npos);
}

TEST_CASE("HookRunner: instances have separate queues") {
    EventLoop loop;
    TempDir dir;
    HookRunner runner(loop, "node-a");
    HookCommands slow;
    slow.notify_master = {dir.script("slow.sh", "sleep 60")};
    HookCommands quick;
    quick.notify_master = {dir.script("quick.sh", "touch " + dir.path() + "/quick")};
    runner.configure("slow", slow, "");
    runner.configure("quick", quick, "");

    runner.on_transition(HookEvent{"slow", "MASTER", "BACKUP", "x"});
    runner.on_transition(HookEvent{"quick", "MASTER", "BACKUP", "x"});
    REQUIRE(loop.run_until([&] { return runner.queued("quick") == 0; }, kDeadline));
    CHECK(std::filesystem::exists(dir.path() + "/quick"));
    CHECK(runner.queued("slow") == 1);

    runner.terminate_all();
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));
    CHECK(runner.counters("slow").failures == 1);
    CHECK(runner.counters("quick").failures == 0);
}

TEST_CASE("HookRunner: a full queue drops its oldest waiting run and counts it") {
    EventLoop loop;
    TempDir dir;
    HookRunnerOptions options;
    options.max_queue = 3;
    HookRunner runner(loop, "node-a", options);
    HookCommands commands;
    commands.notify = {dir.script("n.sh", "echo \"$4\" >> " + dir.path() + "/log")};
    runner.configure("web", commands, "");

    for (int i = 0; i < 10; ++i) {
        runner.on_transition(HookEvent{"web", "BACKUP", "MASTER", "r" + std::to_string(i)});
    }
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));
    CHECK(runner.counters().dropped == 6);
    CHECK(runner.counters().runs == 4);
    CHECK(dir.read("log") == "r0\nr7\nr8\nr9\n");
}

TEST_CASE("HookRunner: terminate_all drops waiting runs and stops the running one") {
    EventLoop loop;
    TempDir dir;
    HookRunner runner(loop, "node-a");
    HookCommands commands;
    commands.notify = {dir.script("slow.sh", "sleep 60")};
    runner.configure("web", commands, "");
    runner.on_transition(HookEvent{"web", "BACKUP", "INIT", "a"});
    runner.on_transition(HookEvent{"web", "MASTER", "BACKUP", "b"});
    runner.on_transition(HookEvent{"web", "STOP", "MASTER", "c"});
    CHECK(runner.queued("web") == 3);
    int idle_calls = 0;
    runner.set_on_idle([&] { ++idle_calls; });

    runner.terminate_all();
    REQUIRE(loop.run_until([&] { return idle_calls == 1; }, kDeadline));
    CHECK(runner.idle());
    CHECK(runner.counters().dropped == 2);
    CHECK(runner.counters().runs == 1);
    CHECK(runner.counters().failures == 1);
}

namespace {

std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
        ++n;
    }
    return n;
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

// Runs the loop until `done` or `max_wait`, waking every 10 ms to look.
bool poll(EventLoop& loop, const std::function<bool()>& done, Duration max_wait) {
    failoverd::Timer tick;
    tick = failoverd::Timer(loop, [&tick] { tick.arm_after(10ms); });
    tick.arm_after(10ms);
    return loop.run_until(done, max_wait);
}

}  // namespace

TEST_CASE("HookRunner: 8 MB of short lines log the first lines and one count of the rest") {
    EventLoop loop;
    TempDir dir;
    LogCapture log;
    HookRunner runner(loop, "node-a");
    HookCommands commands;
    commands.notify_master = {dir.script("flood.sh", "seq 1 1100000")};
    runner.configure("web", commands, "");

    runner.on_transition(HookEvent{"web", "MASTER", "BACKUP", "test"});
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));
    const std::string text = log.text();
    const std::size_t per_run = runner.options().output_lines_per_run;
    CHECK(count_of(text, "[web] hook notify_master stdout: ") == per_run);
    CHECK(text.find("[web] hook notify_master stdout: 1\n") != std::string::npos);
    CHECK(text.find("[web] hook notify_master stdout: 100\n") != std::string::npos);
    CHECK(text.find("[web] hook notify_master stdout: 101\n") == std::string::npos);
    // Every line the hook printed is either logged or counted.
    CHECK(runner.counters().output_lines_not_logged == 1100000 - per_run);
    CHECK(runner.counters("web").output_lines_not_logged == 1100000 - per_run);
    CHECK(text.find("warning [web] hook notify_master output: 1099900 more lines (7.7 MB) not "
                    "logged (limits: 100 lines per run;") != std::string::npos);
    CHECK(count_of(text, "\n") < per_run + 5);
    CHECK(text.find("[web] hook notify_master finished: exit 0") != std::string::npos);
}

TEST_CASE("HookRunner: across runs a hook's lines come from a bucket that refills slowly") {
    EventLoop loop;
    TempDir dir;
    LogCapture log;
    HookRunnerOptions options;
    options.output_lines_burst = 5;
    options.output_line_period = 1h;
    HookRunner runner(loop, "node-a", options);
    HookCommands commands;
    commands.notify_master = {dir.script("three.sh", "echo a; echo b; echo c")};
    commands.notify_backup = {dir.script("one.sh", "echo backup")};
    runner.configure("web", commands, "");

    for (int i = 0; i < 3; ++i) {
        runner.on_transition(HookEvent{"web", "MASTER", "BACKUP", "up"});
        runner.on_transition(HookEvent{"web", "BACKUP", "MASTER", "down"});
    }
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));
    const std::string text = log.text();
    CHECK(count_of(text, "[web] hook notify_master stdout: ") == 5);
    CHECK(count_of(text, "[web] hook notify_master output: 1 more lines (2 B) not logged") == 1);
    CHECK(count_of(text, "[web] hook notify_master output: 3 more lines (6 B) not logged") == 1);
    // Each hook has its own bucket.
    CHECK(count_of(text, "[web] hook notify_backup stdout: backup") == 3);
    CHECK(runner.counters().output_lines_not_logged == 4);
}

TEST_CASE("HookRunner: hook output is logged escaped, never as raw bytes") {
    EventLoop loop;
    TempDir dir;
    LogCapture log;
    HookRunner runner(loop, "node-a");
    HookCommands commands;
    commands.notify_master = {
        dir.script("binary.sh",
                   "printf 'colour \\033[31mred\\033[0m, title \\033]0;x\\007, byte \\377, "
                   "csi \\302\\233, ok caf\\303\\251\\n'; printf 'err\\033c' >&2")};
    runner.configure("web", commands, "");

    runner.on_transition(HookEvent{"web", "MASTER", "BACKUP", "test"});
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));
    const std::string text = log.text();
    CHECK(text.find("[web] hook notify_master stdout: colour \\x1b[31mred\\x1b[0m, title "
                    "\\x1b]0;x\\x07, byte \\xff, csi \\u009b, ok caf\xc3\xa9\n") !=
          std::string::npos);
    CHECK(text.find("[web] hook notify_master stderr: err\\x1bc\n") != std::string::npos);
    CHECK(text.find('\x1b') == std::string::npos);
    CHECK(text.find('\xff') == std::string::npos);
}

TEST_CASE("HookRunner: a hook's background process is terminated when the hook exits") {
    EventLoop loop;
    TempDir dir;
    LogCapture log;
    HookRunner runner(loop, "node-a");
    HookCommands commands;
    commands.notify_master = {
        dir.script("spawn.sh", "sleep 1000 &\necho $! > " + dir.path() + "/sleeper")};
    runner.configure("web", commands, "");

    runner.on_transition(HookEvent{"web", "MASTER", "BACKUP", "test"});
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));
    const pid_t sleeper = std::stoi(dir.read("sleeper"));
    CHECK(poll(
        loop, [&] { return process_gone(sleeper); }, kDeadline));
    CHECK(log.text().find("[web] hook notify_master left processes running: SIGTERM to its "
                          "process group") != std::string::npos);
}

TEST_CASE("HookRunner: with hook_cleanup = none a hook's background process keeps running") {
    EventLoop loop;
    TempDir dir;
    HookRunnerOptions options;
    options.kill_grace = 100ms;
    HookRunner runner(loop, "node-a", options);
    HookCommands commands;
    commands.notify_master = {
        dir.script("daemon.sh", "sleep 1000 &\necho $! > " + dir.path() + "/sleeper")};
    commands.cleanup = failoverd::ProcessCleanup::None;
    runner.configure("web", commands, "");

    runner.on_transition(HookEvent{"web", "MASTER", "BACKUP", "test"});
    REQUIRE(loop.run_until([&] { return runner.idle(); }, kDeadline));
    const pid_t sleeper = std::stoi(dir.read("sleeper"));
    // Well past the grace period a cleanup would have used.
    CHECK_FALSE(poll(
        loop, [&] { return process_gone(sleeper); }, 1s));
    CHECK(::kill(sleeper, SIGKILL) == 0);
    CHECK(poll(
        loop, [&] { return process_gone(sleeper); }, kDeadline));
}
