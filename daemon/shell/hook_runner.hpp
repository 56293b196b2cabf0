// Runs the notify hooks of each instance as child processes: one FIFO queue per instance, so
// hooks of one instance never overlap and every transition runs its hooks exactly once, in
// order (the role's hook, then the generic `notify`). Each run has a timeout (SIGTERM to the
// process group, then SIGKILL), its output is logged line by line under the hook's name,
// escaped and rate-limited (the first lines of each run, and a token bucket per hook across
// runs; one line says how much was not logged), and its exit status is logged and counted.
// When a hook exits, what it left running in its process group is terminated unless the
// instance says `hook_cleanup = none`. A failing hook never stops the daemon.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/core/backoff.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/child_process.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd {

enum class HookType { NotifyMaster, NotifyBackup, NotifyFault, NotifyStop, Notify };

constexpr std::string_view to_string(HookType t) {
    switch (t) {
        case HookType::NotifyMaster:
            return "notify_master";
        case HookType::NotifyBackup:
            return "notify_backup";
        case HookType::NotifyFault:
            return "notify_fault";
        case HookType::NotifyStop:
            return "notify_stop";
        case HookType::Notify:
            return "notify";
    }
    return "?";
}

// The commands of one instance, argv each; an empty argv means no hook.
struct HookCommands {
    std::vector<std::string> notify_master;
    std::vector<std::string> notify_backup;
    std::vector<std::string> notify_fault;
    std::vector<std::string> notify_stop;
    std::vector<std::string> notify;
    ProcessCleanup cleanup = ProcessCleanup::ProcessGroup;

    static HookCommands from(const InstanceConfig& instance);
    const std::vector<std::string>& of(HookType type) const;
    bool operator==(const HookCommands&) const = default;
};

// One transition as hooks see it. Roles are upper case, as keepalived passes them:
// "MASTER", "BACKUP", "FAULT", "STOP" (and "INIT" as an old role).
struct HookEvent {
    std::string instance;
    std::string role;
    std::string old_role;
    std::string reason;
};

struct HookRunnerOptions {
    Duration timeout = std::chrono::seconds(60);  // per run
    Duration kill_grace = std::chrono::seconds(2);
    std::size_t max_queue = 64;  // waiting runs per instance; the oldest waiting one is dropped
    // Output lines logged per run; the rest are counted in one line at the end of the run.
    std::size_t output_lines_per_run = 100;
    // Across runs, per hook (instance and hook type): a bucket of this many lines, refilled
    // with one line every output_line_period, so a flapping instance cannot flood the journal.
    std::int64_t output_lines_burst = 300;
    Duration output_line_period = std::chrono::milliseconds(200);
};

struct HookCounters {
    std::uint64_t runs = 0;      // finished runs, whatever the outcome
    std::uint64_t failures = 0;  // non-zero exit, killed, timed out or could not start
    std::uint64_t timeouts = 0;
    std::uint64_t dropped = 0;  // removed from a full queue or at shutdown without running
    std::uint64_t output_lines_not_logged = 0;  // over the output limits
};

class HookRunner {
  public:
    HookRunner(EventLoop& loop, std::string node_name, HookRunnerOptions options = {});
    // Kills running hooks (SIGKILL to their groups); the loop reaps them.
    ~HookRunner();
    HookRunner(const HookRunner&) = delete;
    HookRunner& operator=(const HookRunner&) = delete;

    // Start-up and reload: the hooks and reserved IP of an instance. Runs already queued keep
    // the commands they were queued with.
    void configure(const std::string& instance, HookCommands commands, std::string reserved_ip);
    // Reload: forgets an instance that left the config; its queued runs still happen.
    void remove(const std::string& instance);

    // Queues the role's hook and then the generic `notify` for one transition; starts the
    // first at once when the instance's queue is idle. Unknown roles queue only `notify`.
    void on_transition(const HookEvent& event);

    // Nothing running and nothing queued, for every instance.
    bool idle() const;
    // Called from the loop each time the last running hook finishes and nothing is queued
    // (shutdown waits on it).
    void set_on_idle(std::function<void()> on_idle) { on_idle_ = std::move(on_idle); }
    std::size_t queued(const std::string& instance) const;

    // Shutdown: drops every queued run (counted) and sends SIGTERM to running ones (SIGKILL
    // after the grace period). Their results are still logged.
    void terminate_all();

    const HookCounters& counters() const { return totals_; }
    HookCounters counters(const std::string& instance) const;
    const HookRunnerOptions& options() const { return options_; }

  private:
    struct Job {
        HookType type;
        std::vector<std::string> argv;
        std::vector<std::pair<std::string, std::string>> env;
        ProcessCleanup cleanup = ProcessCleanup::ProcessGroup;
    };
    // The current run's output as logged so far.
    struct RunOutput {
        std::size_t lines_logged = 0;
        std::size_t lines_not_logged = 0;
        std::size_t bytes_not_logged = 0;
    };
    struct Queue {
        HookCommands commands;
        std::string reserved_ip;
        std::deque<Job> waiting;
        std::unique_ptr<ChildProcess> running;
        HookType running_type = HookType::Notify;
        RunOutput output;
        std::map<HookType, TokenBucket> output_budget;
        HookCounters counters;
        bool removed = false;  // left the config; erased once its queue is empty
    };

    void push(const std::string& instance, Queue& queue, Job job);
    void start_next(const std::string& instance);
    void finished(const std::string& instance, const ChildExit& exit);
    void log_output(const std::string& instance, OutputStream stream, std::string_view line);

    EventLoop& loop_;
    std::string node_name_;
    HookRunnerOptions options_;
    std::map<std::string, Queue> queues_;
    HookCounters totals_;
    std::function<void()> on_idle_;
};

}  // namespace failoverd
