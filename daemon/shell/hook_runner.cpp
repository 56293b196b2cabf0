#include "daemon/shell/hook_runner.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "daemon/core/text_escape.hpp"

namespace failoverd {

namespace {

HookType hook_for_role(const std::string& role) {
    if (role == "MASTER") {
        return HookType::NotifyMaster;
    }
    if (role == "BACKUP") {
        return HookType::NotifyBackup;
    }
    if (role == "FAULT") {
        return HookType::NotifyFault;
    }
    if (role == "STOP") {
        return HookType::NotifyStop;
    }
    return HookType::Notify;
}

std::string format_bytes(std::size_t bytes) {
    if (bytes < 1000) {
        return std::to_string(bytes) + " B";
    }
    if (bytes < 1000 * 1000) {
        return fmt::format("{:.1f} kB", static_cast<double>(bytes) / 1e3);
    }
    return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6);
}

}  // namespace

HookCommands HookCommands::from(const InstanceConfig& instance) {
    return HookCommands{instance.notify_master, instance.notify_backup, instance.notify_fault,
                        instance.notify_stop,   instance.notify,        instance.hook_cleanup};
}

const std::vector<std::string>& HookCommands::of(HookType type) const {
    switch (type) {
        case HookType::NotifyMaster:
            return notify_master;
        case HookType::NotifyBackup:
            return notify_backup;
        case HookType::NotifyFault:
            return notify_fault;
        case HookType::NotifyStop:
            return notify_stop;
        case HookType::Notify:
            break;
    }
    return notify;
}

HookRunner::HookRunner(EventLoop& loop, std::string node_name, HookRunnerOptions options)
    : loop_(loop), node_name_(std::move(node_name)), options_(options) {}

HookRunner::~HookRunner() = default;

void HookRunner::configure(const std::string& instance, HookCommands commands,
                           std::string reserved_ip) {
    Queue& queue = queues_[instance];
    queue.commands = std::move(commands);
    queue.reserved_ip = std::move(reserved_ip);
    queue.removed = false;
}

void HookRunner::remove(const std::string& instance) {
    const auto it = queues_.find(instance);
    if (it == queues_.end()) {
        return;
    }
    if (!it->second.running && it->second.waiting.empty()) {
        queues_.erase(it);
        return;
    }
    it->second.commands = HookCommands{};
    it->second.removed = true;
}

void HookRunner::on_transition(const HookEvent& event) {
    Queue& queue = queues_[event.instance];
    std::vector<std::pair<std::string, std::string>> env{
        {"FAILOVERD_INSTANCE", event.instance},       {"FAILOVERD_ROLE", event.role},
        {"FAILOVERD_OLD_ROLE", event.old_role},       {"FAILOVERD_REASON", event.reason},
        {"FAILOVERD_RESERVED_IP", queue.reserved_ip}, {"FAILOVERD_NODE", node_name_},
    };
    const HookType specific = hook_for_role(event.role);
    if (specific != HookType::Notify && !queue.commands.of(specific).empty()) {
        push(event.instance, queue,
             Job{specific, queue.commands.of(specific), env, queue.commands.cleanup});
    }
    if (!queue.commands.notify.empty()) {
        std::vector<std::string> argv = queue.commands.notify;
        argv.insert(argv.end(), {event.instance, event.role, event.old_role, event.reason});
        push(event.instance, queue,
             Job{HookType::Notify, std::move(argv), std::move(env), queue.commands.cleanup});
    }
}

void HookRunner::push(const std::string& instance, Queue& queue, Job job) {
    if (queue.waiting.size() >= options_.max_queue) {
        const Job& oldest = queue.waiting.front();
        ++queue.counters.dropped;
        ++totals_.dropped;
        spdlog::warn("[{}] dropping queued hook {}: {} runs already waiting", instance,
                     to_string(oldest.type), queue.waiting.size());
        queue.waiting.pop_front();
    }
    queue.waiting.push_back(std::move(job));
    if (!queue.running) {
        start_next(instance);
    }
}

void HookRunner::start_next(const std::string& instance) {
    const auto it = queues_.find(instance);
    if (it == queues_.end()) {
        return;
    }
    Queue& queue = it->second;
    if (queue.running || queue.waiting.empty()) {
        return;
    }
    Job job = std::move(queue.waiting.front());
    queue.waiting.pop_front();

    const std::string name(to_string(job.type));
    ChildSpec spec;
    spec.name = "[" + instance + "] hook " + name;
    spec.argv = std::move(job.argv);
    spec.env = std::move(job.env);
    spec.timeout = options_.timeout;
    spec.kill_grace = options_.kill_grace;
    spec.cleanup = job.cleanup;
    spec.on_line = [this, instance](OutputStream stream, std::string_view line) {
        log_output(instance, stream, line);
    };
    spdlog::debug("[{}] hook {} starting: {}", instance, name, escape_text(spec.argv.front()));
    queue.running_type = job.type;
    queue.output = RunOutput{};
    if (!queue.output_budget.contains(job.type)) {
        queue.output_budget.emplace(
            job.type,
            TokenBucket(options_.output_lines_burst, options_.output_line_period, loop_.now()));
    }
    queue.running = std::make_unique<ChildProcess>(loop_, std::move(spec));
    queue.running->start([this, instance](const ChildExit& exit) { finished(instance, exit); });
}

void HookRunner::log_output(const std::string& instance, OutputStream stream,
                            std::string_view line) {
    const auto it = queues_.find(instance);
    if (it == queues_.end()) {
        return;
    }
    Queue& queue = it->second;
    RunOutput& out = queue.output;
    const auto budget = queue.output_budget.find(queue.running_type);
    if (out.lines_logged < options_.output_lines_per_run &&
        (budget == queue.output_budget.end() || budget->second.try_take(loop_.now()))) {
        ++out.lines_logged;
        // Output is data: escaped, and logged as an argument, never as a format string.
        spdlog::info("[{}] hook {} {}: {}", instance, to_string(queue.running_type),
                     to_string(stream), escape_text(line));
        return;
    }
    ++out.lines_not_logged;
    out.bytes_not_logged += line.size() + 1;
}

void HookRunner::finished(const std::string& instance, const ChildExit& exit) {
    const auto it = queues_.find(instance);
    if (it == queues_.end()) {
        return;
    }
    Queue& queue = it->second;
    const std::string_view name = to_string(queue.running_type);
    ++queue.counters.runs;
    ++totals_.runs;
    const std::size_t lines_not_logged = queue.output.lines_not_logged + exit.output_lines_dropped;
    if (lines_not_logged > 0 || exit.output_bytes_dropped > 0) {
        queue.counters.output_lines_not_logged += lines_not_logged;
        totals_.output_lines_not_logged += lines_not_logged;
        const auto budget = queue.output_budget.find(queue.running_type);
        const std::int64_t left =
            budget == queue.output_budget.end() ? 0 : budget->second.tokens(loop_.now());
        spdlog::warn(
            "[{}] hook {} output: {} more lines ({}) not logged (limits: {} lines per run; "
            "{} lines per hook at once, then one every {}; {} left now)",
            instance, name, lines_not_logged,
            format_bytes(queue.output.bytes_not_logged + exit.output_bytes_dropped),
            options_.output_lines_per_run, options_.output_lines_burst,
            format_duration(options_.output_line_period), left);
    }
    if (exit.left_processes) {
        spdlog::info(
            "[{}] hook {} left processes running: SIGTERM to its process group, SIGKILL in {} "
            "to any still there (hook_cleanup = none keeps them)",
            instance, name, format_duration(options_.kill_grace));
    }
    if (exit.timed_out) {
        ++queue.counters.timeouts;
        ++totals_.timeouts;
    }
    if (exit.success() && !exit.timed_out) {
        spdlog::info("[{}] hook {} finished: {} after {}", instance, name, exit.describe(),
                     format_duration(exit.runtime));
    } else {
        ++queue.counters.failures;
        ++totals_.failures;
        spdlog::warn("[{}] hook {} failed: {} after {}", instance, name,
                     exit.describe(options_.timeout), format_duration(exit.runtime));
    }
    // `done` may destroy its ChildProcess; the next run starts from a fresh loop turn so this
    // callback's frame is gone first.
    queue.running.reset();
    if (!queue.waiting.empty()) {
        loop_.post([this, instance] { start_next(instance); });
    } else if (queue.removed) {
        queues_.erase(it);
    }
    if (on_idle_ && idle()) {
        on_idle_();
    }
}

bool HookRunner::idle() const {
    for (const auto& [name, queue] : queues_) {
        if (queue.running || !queue.waiting.empty()) {
            return false;
        }
    }
    return true;
}

std::size_t HookRunner::queued(const std::string& instance) const {
    const auto it = queues_.find(instance);
    if (it == queues_.end()) {
        return 0;
    }
    return it->second.waiting.size() + (it->second.running ? 1 : 0);
}

void HookRunner::terminate_all() {
    for (auto& [name, queue] : queues_) {
        if (!queue.waiting.empty()) {
            queue.counters.dropped += queue.waiting.size();
            totals_.dropped += queue.waiting.size();
            spdlog::warn("[{}] dropping {} queued hook runs at shutdown", name,
                         queue.waiting.size());
            queue.waiting.clear();
        }
        if (queue.running) {
            queue.running->terminate();
        }
    }
}

HookCounters HookRunner::counters(const std::string& instance) const {
    const auto it = queues_.find(instance);
    return it == queues_.end() ? HookCounters{} : it->second.counters;
}

}  // namespace failoverd
