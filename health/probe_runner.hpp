// Runs named probes on their interval (with a little jitter) and enforces each timeout in one
// place: a probe that does not answer in time is cancelled and reported as TimedOut.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/core/rng.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/event_loop.hpp"
#include "health/probe.hpp"
#include "health/probe_result.hpp"

namespace failoverd::health {

struct ProbeSchedule {
    Duration interval = std::chrono::seconds(2);
    Duration timeout = std::chrono::seconds(1);
};

struct ProbeRunnerOptions {
    double jitter_fraction = 0.05;  // each period is interval * (1 +- jitter_fraction)
    Duration first_run_spread = std::chrono::milliseconds(100);  // first periodic run within
};

class ProbeRunner {
  public:
    // Called once per finished run (including timeouts). May call stop(), remove() or add(),
    // but must not destroy the runner.
    using ResultCallback = std::function<void(const std::string& name, const ProbeResult&)>;

    // `rng` (jitter) is seeded by the caller.
    ProbeRunner(EventLoop& loop, Rng rng, ResultCallback on_result,
                ProbeRunnerOptions options = {});
    ~ProbeRunner();
    ProbeRunner(const ProbeRunner&) = delete;
    ProbeRunner& operator=(const ProbeRunner&) = delete;

    // Set-up time: throws std::invalid_argument on a duplicate name or a non-positive
    // interval or timeout. A probe added while started is scheduled right away.
    void add(const std::string& name, std::unique_ptr<Probe> probe, ProbeSchedule schedule);
    // Cancels a running probe of that name; unknown names are ignored.
    void remove(const std::string& name);
    bool contains(const std::string& name) const;
    std::vector<std::string> names() const;
    std::size_t size() const { return entries_.size(); }

    // Periodic mode: runs every probe on its interval until stop().
    void start();
    // Cancels runs in progress (no results for them) and disarms every timer; a round from
    // run_once_all is abandoned too (its done is not called).
    void stop();
    bool started() const { return started_; }

    // Runs every probe once, concurrently, now; `done` is called once all have reported (each
    // result also goes to on_result). Not while started() or while a round is running.
    // With no probes, `done` is posted to the loop.
    void run_once_all(std::function<void()> done);
    bool round_running() const { return static_cast<bool>(round_done_); }

    // Runs the probe now (from the loop, on the next turn) instead of waiting for its interval;
    // the interval counts again from this run, so the periodic run still follows it. A run in
    // progress is not interrupted: the probe runs again right after it. Ignored while not
    // started() and for unknown names. Event-driven re-checks (docker events) use it.
    void run_now(const std::string& name);
    std::uint64_t runs_on_demand(const std::string& name) const;

    // Whether a run of that probe is in progress; when its next run is due (none while one
    // runs, or when stopped).
    bool running(const std::string& name) const;
    std::optional<Instant> next_run(const std::string& name) const;

    // The probe of that name, or null.
    const Probe* probe(const std::string& name) const;

    // Last result of a probe, if it ever finished.
    const ProbeResult* last_result(const std::string& name) const;

  private:
    struct Entry;

    void launch(Entry& entry);
    void on_probe_done(Entry& entry, std::uint64_t run, ProbeResult result);
    void on_timeout(Entry& entry);
    void complete(Entry& entry, ProbeResult result);
    void schedule_next(Entry& entry, Instant started, Instant finished);
    Duration jittered(Duration interval);

    EventLoop& loop_;
    Rng rng_;
    ResultCallback on_result_;
    ProbeRunnerOptions options_;
    std::map<std::string, std::unique_ptr<Entry>> entries_;
    bool started_ = false;
    std::function<void()> round_done_;
    std::size_t round_pending_ = 0;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // guards posted callbacks
};

}  // namespace failoverd::health
