// Rise/fall bookkeeping per check and the aggregate verdict per instance. Pure: no I/O, no clock.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "health/probe_result.hpp"

namespace failoverd::health {

struct CheckPolicy {
    int rise = 2;    // successes in a row to turn Passing
    int fall = 2;    // failures in a row to turn Failing
    int weight = 0;  // 0: failing puts the instance in Fault; < 0: lowers priority by |weight|
};

enum class CheckState { Unknown, Passing, Failing };

constexpr const char* to_string(CheckState s) {
    switch (s) {
        case CheckState::Unknown:
            return "unknown";
        case CheckState::Passing:
            return "passing";
        case CheckState::Failing:
            return "failing";
    }
    return "?";
}

// One check's counters, Envoy style: explicit runs instead of keepalived's packed integer.
// The first result after start decides the state at once (no rise/fall wait from Unknown).
class CheckTracker {
  public:
    explicit CheckTracker(CheckPolicy policy) : policy_(policy) {}

    // Feed one probe result. Returns true when the state changed. A failing result with
    // confirms_event (the engine announced the failure, the probe saw it) counts as the full
    // `fall` at once; `rise` is unchanged.
    bool record(const ProbeResult& result);

    CheckState state() const { return state_; }
    const CheckPolicy& policy() const { return policy_; }
    int successes_in_a_row() const { return successes_in_a_row_; }
    int failures_in_a_row() const { return failures_in_a_row_; }
    const ProbeResult& last_result() const { return last_; }
    // The most recent non-passing result, kept so a recovering check can still say why it failed.
    const ProbeResult& last_failure() const { return last_failure_; }
    long results_seen() const { return results_seen_; }

  private:
    CheckPolicy policy_;
    CheckState state_ = CheckState::Unknown;
    int successes_in_a_row_ = 0;
    int failures_in_a_row_ = 0;
    long results_seen_ = 0;
    ProbeResult last_;
    ProbeResult last_failure_;
};

// What the checks of one instance mean for its election.
struct InstanceHealth {
    bool fault = false;      // a weight-0 check is failing or has no result yet
    int priority_delta = 0;  // sum of the negative weights of failing checks (<= 0)
    std::string reason;      // "web failing: 9/10 running; missing: web-3", or "all checks passing"
};

class HealthTracker {
  public:
    // Replaces any earlier policy for this name and resets its counters. The config loader
    // guarantees rise >= 1, fall >= 1 and weight <= 0; anything else is a bug (asserted).
    void add_check(const std::string& name, CheckPolicy policy);
    void remove_check(const std::string& name);

    // Returns true when the check's state changed; results for unknown names are ignored (false).
    bool record(const std::string& name, const ProbeResult& result);

    const CheckTracker* find(const std::string& name) const;
    const std::map<std::string, CheckTracker>& checks() const { return checks_; }

    // Aggregate over the named checks (an instance's `checks =` list). Unknown state of a
    // weight-0 check counts as fault ("waiting for first result"); a name with no tracker too.
    InstanceHealth evaluate(const std::vector<std::string>& names) const;

  private:
    std::map<std::string, CheckTracker> checks_;
};

}  // namespace failoverd::health
