// ExecProvider with small shell scripts in a temporary directory: exit statuses, timeout,
// arguments and environment, the per-term memory that answers ReadHolder, and release.
#include "provider/exec_provider.hpp"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "http_test_server.hpp"

using namespace std::chrono_literals;
using failoverd::CallProvider;
using failoverd::EventLoop;
using failoverd::ExecProvider;
using failoverd::ProviderConfig;
using failoverd::ProviderOp;
using failoverd::ProviderOutcome;
using failoverd::ProviderReplied;
using failoverd::ProviderType;
using failoverd::Role;
using failoverd::testing::kDeadline;
using failoverd::testing::poll_until;

namespace {

constexpr const char* kIp = "203.0.113.10";

// A script that records its arguments and FAILOVERD_* environment, one line per run, prints a
// line, then exits with the number in DIR/exit (0 when absent). With DIR/hold present it waits
// until DIR/go exists; with DIR/hang present it sleeps.
class Scripts {
  public:
    Scripts() {
        char tmpl[] = "/tmp/failoverd-exec-provider-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        command_ = dir_ + "/move-ip";
        std::ofstream out(command_);
        out << "#!/bin/sh\n"
            << "d=" << dir_ << "\n"
            << "echo \"$*|$FAILOVERD_RESERVED_IP|$FAILOVERD_INSTANCE|$FAILOVERD_ROLE|"
               "$FAILOVERD_OP|$FAILOVERD_NODE|$FAILOVERD_IP\" >> $d/calls\n"
            << "[ -e $d/hang ] && exec sleep 60\n"
            << "if [ -e $d/hold ]; then while [ ! -e $d/go ]; do sleep 0.01; done; fi\n"
            << "echo \"moving $FAILOVERD_IP\"\n"
            << "echo \"last words of $FAILOVERD_OP\" >&2\n"
            << "code=0; [ -e $d/exit ] && code=$(cat $d/exit)\n"
            << "exit $code\n";
        out.close();
        REQUIRE(::chmod(command_.c_str(), 0755) == 0);
    }
    ~Scripts() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    void set_exit(int code) const { std::ofstream(dir_ + "/exit") << code; }
    void touch(const std::string& name) const { std::ofstream(dir_ + "/" + name) << ""; }
    std::vector<std::string> calls() const {
        std::vector<std::string> out;
        std::ifstream in(dir_ + "/calls");
        std::string line;
        while (std::getline(in, line)) {
            out.push_back(line);
        }
        return out;
    }
    const std::string& command() const { return command_; }

  private:
    std::string dir_;
    std::string command_;
};

struct Harness {
    Harness() {
        config.type = ProviderType::Exec;
        config.exec_command = {scripts.command(), "--profile", "prod"};
        config.request_timeout = 10s;
        provider = std::make_unique<ExecProvider>(loop, config, "node-a");
    }

    ProviderReplied call(ProviderOp op, const std::string& instance = "web") {
        CallProvider c;
        c.instance = instance;
        c.request_id = ++next_id;
        c.op = op;
        c.ip = kIp;
        c.action_id = op == ProviderOp::ReadAction ? "1" : "";
        std::optional<ProviderReplied> reply;
        provider->call(c, [&](ProviderReplied r) { reply = std::move(r); });
        CHECK_FALSE(reply.has_value());
        REQUIRE(loop.run_until([&] { return reply.has_value(); }, kDeadline));
        CHECK(reply->instance == instance);
        CHECK(reply->request_id == c.request_id);
        return *reply;
    }

    std::string holder(const std::string& instance = "web") {
        const auto r = call(ProviderOp::ReadHolder, instance);
        CHECK(r.outcome == ProviderOutcome::Ok);
        return r.holder;
    }

    Scripts scripts;
    EventLoop loop;
    ProviderConfig config;
    std::unique_ptr<ExecProvider> provider;
    std::uint64_t next_id = 0;
};

}  // namespace

TEST_CASE("ExecProvider: exit 0 assigns; arguments and environment reach the command") {
    Harness h;
    CHECK(h.provider->identity() == "node-a");
    CHECK(h.holder().empty());  // nothing assigned in this term yet
    const auto r = h.call(ProviderOp::Assign);
    CHECK(r.outcome == ProviderOutcome::Ok);
    CHECK(r.action_id.empty());  // done: nothing to poll
    CHECK(r.http_status == 0);
    CHECK(r.detail == "exit 0: last words of assign");
    REQUIRE(h.scripts.calls().size() == 1);
    CHECK(h.scripts.calls()[0] ==
          "--profile prod assign 203.0.113.10 web master|203.0.113.10|web|MASTER|assign|node-a|"
          "203.0.113.10");
    CHECK(h.holder() == "node-a");
    CHECK(h.holder("other").empty());  // per instance
    const auto status = h.provider->status();
    CHECK(status.at("type") == "exec");
    CHECK(status.at("assigned") == nlohmann::json::array({"web"}));
    CHECK(status.at("outcomes").at("ok") == 4);
}

TEST_CASE("ExecProvider: a non-zero exit is transient, 77 is rejected") {
    Harness h;
    h.scripts.set_exit(1);
    const auto failed = h.call(ProviderOp::Assign);
    CHECK(failed.outcome == ProviderOutcome::Transient);
    CHECK(failed.detail == "exit 1: last words of assign");
    CHECK(h.holder().empty());

    h.scripts.set_exit(ExecProvider::kExitRejected);
    const auto refused = h.call(ProviderOp::Assign);
    CHECK(refused.outcome == ProviderOutcome::Rejected);
    CHECK(refused.detail == "exit 77: last words of assign");
    CHECK(h.holder().empty());
    CHECK(h.provider->status().at("failures") == 2);
    CHECK(h.provider->status().at("last_error") == "assign: exit 77: last words of assign");
}

TEST_CASE("ExecProvider: a command that hangs is killed at request_timeout: transient") {
    Harness h;
    h.config.request_timeout = 300ms;
    h.provider = std::make_unique<ExecProvider>(h.loop, h.config, "node-a");
    h.scripts.touch("hang");
    const auto start = std::chrono::steady_clock::now();
    const auto r = h.call(ProviderOp::Assign);
    CHECK(r.outcome == ProviderOutcome::Transient);
    CHECK(r.detail.rfind("timed out after 300 ms", 0) == 0);
    CHECK(std::chrono::steady_clock::now() - start < 10s);
    CHECK(h.provider->assigns_running() == 0);
}

TEST_CASE("ExecProvider: a command that cannot run is transient") {
    Harness h;
    h.config.exec_command = {h.config.exec_command[0] + ".absent"};
    h.provider = std::make_unique<ExecProvider>(h.loop, h.config, "node-a");
    const auto r = h.call(ProviderOp::Assign);
    CHECK(r.outcome == ProviderOutcome::Transient);
    CHECK(r.detail.rfind("cannot run", 0) == 0);
}

TEST_CASE("ExecProvider: read-action has nothing to read") {
    Harness h;
    CHECK(h.call(ProviderOp::ReadAction).outcome == ProviderOutcome::NotFound);
}

TEST_CASE("ExecProvider: leaving Master forgets the assignment and runs release") {
    Harness h;
    const struct {
        Role role;
        const char* word;
        const char* env_role;
    } rows[] = {{Role::Backup, "backup", "BACKUP"},
                {Role::Fault, "fault", "FAULT"},
                {Role::Init, "stop", "STOP"}};
    std::size_t expected_calls = 0;
    for (const auto& row : rows) {
        CAPTURE(row.word);
        h.provider->on_role("web", kIp, Role::Master);
        CHECK(h.holder().empty());
        REQUIRE(h.call(ProviderOp::Assign).outcome == ProviderOutcome::Ok);
        CHECK(h.holder() == "node-a");
        h.provider->on_role("web", kIp, row.role);
        CHECK(h.holder().empty());
        expected_calls += 2;
        REQUIRE(poll_until(
            h.loop,
            [&] {
                return h.provider->releases_running() == 0 &&
                       h.scripts.calls().size() == expected_calls;
            },
            kDeadline));
        CHECK(h.scripts.calls().back() == "--profile prod release 203.0.113.10 web " +
                                              std::string(row.word) + "|203.0.113.10|web|" +
                                              row.env_role + "|release|node-a|203.0.113.10");
    }
    // A failing release is logged and counted, nothing else.
    h.scripts.set_exit(3);
    h.provider->on_role("web", kIp, Role::Backup);
    REQUIRE(poll_until(
        h.loop, [&] { return h.provider->status().at("releases").at("failed") == 1; }, kDeadline));
    CHECK(h.provider->status().at("releases").at("started") == 4);
}

TEST_CASE("ExecProvider: an assign that finishes after the term ended does not count") {
    Harness h;
    h.scripts.touch("hold");
    CallProvider c;
    c.instance = "web";
    c.request_id = 1;
    c.op = ProviderOp::Assign;
    c.ip = kIp;
    std::optional<ProviderReplied> reply;
    h.provider->call(c, [&](ProviderReplied r) { reply = std::move(r); });
    REQUIRE(poll_until(
        h.loop, [&] { return h.scripts.calls().size() == 1; }, kDeadline));
    h.provider->on_role("web", kIp, Role::Backup);
    h.scripts.touch("go");
    REQUIRE(h.loop.run_until([&] { return reply.has_value(); }, kDeadline));
    CHECK(reply->outcome == ProviderOutcome::Ok);
    CHECK(h.holder().empty());
}

TEST_CASE("ExecProvider: cancel_all kills running assigns without an answer") {
    Harness h;
    h.scripts.touch("hang");
    CallProvider c;
    c.instance = "web";
    c.request_id = 1;
    c.op = ProviderOp::Assign;
    c.ip = kIp;
    bool answered = false;
    h.provider->call(c, [&](ProviderReplied) { answered = true; });
    REQUIRE(poll_until(
        h.loop, [&] { return h.scripts.calls().size() == 1; }, kDeadline));
    CHECK(h.provider->assigns_running() == 1);
    c.op = ProviderOp::ReadHolder;
    h.provider->call(c, [&](ProviderReplied) { answered = true; });
    h.provider->cancel_all();
    CHECK(h.provider->assigns_running() == 0);
    bool marker = false;
    h.loop.post([&] { marker = true; });
    REQUIRE(h.loop.run_until([&] { return marker; }, kDeadline));
    CHECK_FALSE(answered);
}
