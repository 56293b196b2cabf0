#include "daemon/shell/hook_runner.hpp"

#include <spdlog/spdlog.h>

#include <utility>

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

}  // namespace

HookCommands HookCommands::from(const InstanceConfig& instance) {
    return HookCommands{instance.notify_master, instance.notify_backup, instance.notify_fault,
                        instance.notify_stop, instance.notify};
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
        push(event.instance, queue, Job{specific, queue.commands.of(specific), env});
    }
    if (!queue.commands.notify.empty()) {
        std::vector<std::string> argv = queue.commands.notify;
        argv.insert(argv.end(), {event.instance, event.role, event.old_role, event.reason});
        push(event.instance, queue, Job{HookType::Notify, std::move(argv), std::move(env)});
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
    spec.argv = std::move(job.argv);
    spec.env = std::move(job.env);
    spec.timeout = options_.timeout;
    spec.kill_grace = options_.kill_grace;
    // Output is data: logged as an argument, never as a format string.
    spec.on_line = [instance, name](OutputStream stream, std::string_view line) {
        spdlog::info("[{}] hook {} {}: {}", instance, name, to_string(stream), line);
    };
    spdlog::debug("[{}] hook {} starting: {}", instance, name, spec.argv.front());
    queue.running_type = job.type;
    queue.running = std::make_unique<ChildProcess>(loop_, std::move(spec));
    queue.running->start([this, instance](const ChildExit& exit) { finished(instance, exit); });
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
