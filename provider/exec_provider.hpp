// type = exec: a configured command moves the IP, for clouds failoverd does not speak to.
//
// The command (config.provider.exec_command, argv) is run with arguments appended:
//   COMMAND assign IP INSTANCE master             when this node must take the IP
//   COMMAND release IP INSTANCE backup|fault|stop when it stopped being Master (best effort)
// and with FAILOVERD_OP (assign, release), FAILOVERD_RESERVED_IP, FAILOVERD_INSTANCE,
// FAILOVERD_ROLE (MASTER, BACKUP, FAULT, STOP) and FAILOVERD_NODE (this node's name) in its
// environment, named and spelled as the hooks get them; FAILOVERD_IP is an alias of
// FAILOVERD_RESERVED_IP kept for commands written against its first name.
// Exit status of assign:
//   0  done: the IP is on this node (Ok, no action to poll)
//   77 refused for good, e.g. bad credentials or a wrong IP (Rejected: the instance faults)
//   anything else, a signal or the timeout (request_timeout): transient; the core backs off
//   and retries with the same policy as for an HTTP provider.
// Output lines are read; the last one goes into the reply's detail and the log.
// A command cannot be asked who holds the IP, so ReadHolder answers from memory: this node
// after a successful assign in the current Master term, else unassigned. The core therefore
// assigns once per term, and again after on_role() made the provider forget.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/shell/child_process.hpp"
#include "daemon/shell/event_loop.hpp"
#include "daemon/shell/rate_limited_log.hpp"
#include "provider/provider.hpp"

namespace failoverd {

class ExecProvider final : public Provider {
  public:
    static constexpr int kExitRejected = 77;

    // Identity is the node name (what peers advertise as their provider id).
    ExecProvider(EventLoop& loop, const ProviderConfig& config, std::string node_name);
    // Kills every command still running (assign and release); no callback follows.
    ~ExecProvider() override;
    ExecProvider(const ExecProvider&) = delete;
    ExecProvider& operator=(const ExecProvider&) = delete;

    void call(const CallProvider& call, Done done) override;
    // Any role change starts a new term and forgets the assignment; leaving Master for Backup,
    // Fault or Init (stop) also runs `release` (result logged, not fed to the core).
    void on_role(const std::string& instance, const std::string& ip, Role role) override;
    // Kills the running assigns without answering them; releases keep running.
    void cancel_all() override;
    const std::string& identity() const override { return node_name_; }
    // {"type": "exec", "identity", "command", "calls", "failures", "outcomes", "running",
    //  "releases": {"started", "failed"}, "assigned": [instances], "last_error": {...}}
    nlohmann::json status() const override;

    std::size_t assigns_running() const;
    std::size_t releases_running() const;

  private:
    enum class Kind { Assign, Release };
    struct Running {
        Kind kind = Kind::Assign;
        std::unique_ptr<ChildProcess> child;
        std::string last_line;
    };
    struct Term {
        std::uint64_t number = 0;
        bool assigned = false;
    };

    std::uint64_t spawn(Kind kind, const std::string& instance, const std::string& ip,
                        const std::string& role,
                        std::function<void(const ChildExit&, const std::string&)> done);
    void answer_later(ProviderReplied reply, Done done);
    void record(const CallProvider& call, ProviderReplied& reply);

    EventLoop& loop_;
    ProviderConfig config_;
    std::string node_name_;
    std::map<std::string, Term> terms_;
    std::map<std::uint64_t, Running> running_;
    std::uint64_t next_child_ = 1;
    std::uint64_t generation_ = 0;
    std::uint64_t calls_ = 0;
    std::map<ProviderOutcome, std::uint64_t> outcomes_;
    std::uint64_t releases_started_ = 0;
    std::uint64_t releases_failed_ = 0;
    std::string last_error_;
    RateLimitedLog log_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace failoverd
