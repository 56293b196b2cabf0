#include "health/probe_runner.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <utility>

namespace failoverd::health {

struct ProbeRunner::Entry {
    std::string name;
    std::unique_ptr<Probe> probe;
    ProbeSchedule schedule;
    Timer interval_timer;
    Timer timeout_timer;
    bool running = false;
    bool in_round = false;
    bool run_again = false;  // run_now during a run: run once more right after it
    std::uint64_t on_demand = 0;
    std::uint64_t run = 0;  // bumped per start and by cancel, so a stale done is ignored
    Instant started{};
    std::optional<ProbeResult> last;
    std::shared_ptr<int> alive = std::make_shared<int>(0);
};

ProbeRunner::ProbeRunner(EventLoop& loop, Rng rng, ResultCallback on_result,
                         ProbeRunnerOptions options)
    : loop_(loop), rng_(rng), on_result_(std::move(on_result)), options_(options) {}

ProbeRunner::~ProbeRunner() {
    stop();
    round_done_ = nullptr;
    entries_.clear();
}

void ProbeRunner::add(const std::string& name, std::unique_ptr<Probe> probe,
                      ProbeSchedule schedule) {
    if (entries_.count(name) != 0) {
        throw std::invalid_argument("duplicate probe name '" + name + "'");
    }
    if (schedule.interval <= Duration{0} || schedule.timeout <= Duration{0}) {
        throw std::invalid_argument("probe '" + name + "': interval and timeout must be > 0");
    }
    if (!probe) {
        throw std::invalid_argument("probe '" + name + "' is null");
    }
    auto entry = std::make_unique<Entry>();
    Entry& e = *entry;
    e.name = name;
    e.probe = std::move(probe);
    e.schedule = schedule;
    e.interval_timer = Timer(loop_, [this, &e] {
        if (!e.running) {
            launch(e);
        }
    });
    e.timeout_timer = Timer(loop_, [this, &e] { on_timeout(e); });
    entries_.emplace(name, std::move(entry));
    if (started_) {
        e.interval_timer.arm_at(loop_.now() + Duration(rng_.below(static_cast<std::uint64_t>(
                                                  options_.first_run_spread.count()))));
    }
}

void ProbeRunner::remove(const std::string& name) {
    const auto it = entries_.find(name);
    if (it == entries_.end()) {
        return;
    }
    Entry& e = *it->second;
    if (e.running) {
        e.probe->cancel();
    }
    const bool was_in_round = e.in_round;
    entries_.erase(it);
    if (was_in_round && round_pending_ > 0 && --round_pending_ == 0) {
        loop_.post([this, alive = std::weak_ptr<int>(alive_)] {
            if (!alive.expired() && round_done_ && round_pending_ == 0) {
                auto done = std::move(round_done_);
                round_done_ = nullptr;
                done();
            }
        });
    }
}

bool ProbeRunner::contains(const std::string& name) const {
    return entries_.count(name) != 0;
}

std::vector<std::string> ProbeRunner::names() const {
    std::vector<std::string> out;
    out.reserve(entries_.size());
    for (const auto& [name, entry] : entries_) {
        out.push_back(name);
    }
    return out;
}

void ProbeRunner::start() {
    if (started_) {
        return;
    }
    if (round_running()) {
        throw std::logic_error("ProbeRunner::start during run_once_all");
    }
    started_ = true;
    const Instant now = loop_.now();
    for (auto& [name, entry] : entries_) {
        const auto spread = static_cast<std::uint64_t>(options_.first_run_spread.count());
        entry->interval_timer.arm_at(now + Duration(rng_.below(spread)));
    }
}

void ProbeRunner::stop() {
    started_ = false;
    for (auto& [name, entry] : entries_) {
        Entry& e = *entry;
        e.interval_timer.disarm();
        e.timeout_timer.disarm();
        if (e.running) {
            e.probe->cancel();
            e.running = false;
            ++e.run;
        }
        e.in_round = false;
        e.run_again = false;
    }
    round_pending_ = 0;
    round_done_ = nullptr;
}

void ProbeRunner::run_once_all(std::function<void()> done) {
    if (started_ || round_running()) {
        throw std::logic_error("ProbeRunner::run_once_all while started or in a round");
    }
    if (entries_.empty()) {
        loop_.post(std::move(done));
        return;
    }
    round_done_ = std::move(done);
    round_pending_ = entries_.size();
    for (auto& [name, entry] : entries_) {
        entry->in_round = true;
    }
    // By name, because a misbehaving probe might report (and its callback remove entries)
    // from inside start().
    for (const std::string& name : names()) {
        const auto it = entries_.find(name);
        if (it != entries_.end() && !it->second->running && it->second->in_round) {
            launch(*it->second);
        }
    }
}

void ProbeRunner::run_now(const std::string& name) {
    const auto it = entries_.find(name);
    if (!started_ || it == entries_.end()) {
        return;
    }
    Entry& e = *it->second;
    ++e.on_demand;
    if (e.running) {
        e.run_again = true;
        return;
    }
    // Through the interval timer: the launch happens outside the caller's stack, and the next
    // periodic run is armed from this one when it completes.
    e.interval_timer.arm_at(loop_.now());
}

std::uint64_t ProbeRunner::runs_on_demand(const std::string& name) const {
    const auto it = entries_.find(name);
    return it == entries_.end() ? 0 : it->second->on_demand;
}

bool ProbeRunner::running(const std::string& name) const {
    const auto it = entries_.find(name);
    return it != entries_.end() && it->second->running;
}

std::optional<Instant> ProbeRunner::next_run(const std::string& name) const {
    const auto it = entries_.find(name);
    if (it == entries_.end() || it->second->running) {
        return std::nullopt;
    }
    return it->second->interval_timer.deadline();
}

const Probe* ProbeRunner::probe(const std::string& name) const {
    const auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : it->second->probe.get();
}

const ProbeResult* ProbeRunner::last_result(const std::string& name) const {
    const auto it = entries_.find(name);
    if (it == entries_.end() || !it->second->last) {
        return nullptr;
    }
    return &*it->second->last;
}

void ProbeRunner::launch(Entry& entry) {
    entry.running = true;
    const std::uint64_t run = ++entry.run;
    entry.started = loop_.now();
    entry.timeout_timer.arm_at(entry.started + entry.schedule.timeout);
    entry.probe->start(
        [this, &entry, run, alive = std::weak_ptr<int>(entry.alive)](ProbeResult result) {
            if (!alive.expired()) {
                on_probe_done(entry, run, std::move(result));
            }
        });
}

void ProbeRunner::on_probe_done(Entry& entry, std::uint64_t run, ProbeResult result) {
    if (!entry.running || run != entry.run) {
        return;
    }
    entry.timeout_timer.disarm();
    result.latency = loop_.now() - entry.started;
    complete(entry, std::move(result));
}

void ProbeRunner::on_timeout(Entry& entry) {
    if (!entry.running) {
        return;
    }
    entry.probe->cancel();
    ++entry.run;
    ProbeResult result;
    result.verdict = Verdict::TimedOut;
    result.reason = "timed out after " + format_duration(entry.schedule.timeout);
    result.latency = loop_.now() - entry.started;
    complete(entry, std::move(result));
}

void ProbeRunner::complete(Entry& entry, ProbeResult result) {
    entry.running = false;
    entry.last = result;
    if (started_ && entry.run_again) {
        entry.interval_timer.arm_at(loop_.now());
    } else if (started_) {
        schedule_next(entry, entry.started, loop_.now());
    }
    entry.run_again = false;
    bool round_finished = false;
    if (entry.in_round) {
        entry.in_round = false;
        round_finished = --round_pending_ == 0;
    }
    const std::string name = entry.name;  // on_result may remove the entry
    try {
        on_result_(name, result);
    } catch (const std::exception& e) {
        loop_.note_callback_error();
        spdlog::error("ignoring exception in probe result callback for '{}': {}", name, e.what());
    } catch (...) {
        loop_.note_callback_error();
        spdlog::error("ignoring unknown exception in probe result callback for '{}'", name);
    }
    if (round_finished && round_done_) {
        auto done = std::move(round_done_);
        round_done_ = nullptr;
        done();
    }
}

void ProbeRunner::schedule_next(Entry& entry, Instant started, Instant finished) {
    // Never two runs of one probe at once: a run longer than the interval delays the next.
    entry.interval_timer.arm_at(std::max(started + jittered(entry.schedule.interval), finished));
}

Duration ProbeRunner::jittered(Duration interval) {
    const double f = options_.jitter_fraction;
    if (f <= 0.0) {
        return interval;
    }
    const double offset = (rng_.unit() * 2.0 - 1.0) * f * static_cast<double>(interval.count());
    return interval + Duration(static_cast<Duration::rep>(offset));
}

}  // namespace failoverd::health
