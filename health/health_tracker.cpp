// Rise/fall per check and the instance verdict. No I/O and no clock in this file.
#include "health/health_tracker.hpp"

#include "daemon/core/assert.hpp"

namespace failoverd::health {

namespace {

std::string describe(const ProbeResult& r) {
    if (!r.reason.empty()) {
        return r.reason;
    }
    return std::string(to_string(r.verdict));
}

}  // namespace

bool CheckTracker::record(const ProbeResult& result) {
    ++results_seen_;
    last_ = result;
    if (result.passed()) {
        ++successes_in_a_row_;
        failures_in_a_row_ = 0;
    } else {
        ++failures_in_a_row_;
        successes_in_a_row_ = 0;
        last_failure_ = result;
    }

    const CheckState before = state_;
    switch (state_) {
        case CheckState::Unknown:
            // First-result fast path: a fresh daemon must not wait rise intervals to know.
            state_ = result.passed() ? CheckState::Passing : CheckState::Failing;
            break;
        case CheckState::Passing:
            // The engine announced the failure and the probe confirmed it: the fall count
            // guards against flaky probes, and this is not one.
            if (failures_in_a_row_ >= policy_.fall || (result.confirms_event && !result.passed())) {
                state_ = CheckState::Failing;
            }
            break;
        case CheckState::Failing:
            if (successes_in_a_row_ >= policy_.rise) {
                state_ = CheckState::Passing;
            }
            break;
    }
    return state_ != before;
}

void HealthTracker::add_check(const std::string& name, CheckPolicy policy) {
    FAILOVERD_ASSERT(policy.rise >= 1 && policy.fall >= 1 && policy.weight <= 0);
    checks_.insert_or_assign(name, CheckTracker(policy));
}

void HealthTracker::remove_check(const std::string& name) {
    checks_.erase(name);
}

bool HealthTracker::record(const std::string& name, const ProbeResult& result) {
    const auto it = checks_.find(name);
    if (it == checks_.end()) {
        return false;
    }
    return it->second.record(result);
}

const CheckTracker* HealthTracker::find(const std::string& name) const {
    const auto it = checks_.find(name);
    return it == checks_.end() ? nullptr : &it->second;
}

InstanceHealth HealthTracker::evaluate(const std::vector<std::string>& names) const {
    InstanceHealth out;
    // Fault reasons first: they decide the role; priority reductions only adjust it.
    std::vector<std::string> fault_reasons;
    std::vector<std::string> lowered_reasons;
    for (const auto& name : names) {
        const CheckTracker* t = find(name);
        if (t == nullptr) {
            out.fault = true;
            fault_reasons.push_back(name + ": no such check");
            continue;
        }
        if (t->state() == CheckState::Passing) {
            continue;
        }
        std::string why;
        if (t->state() == CheckState::Unknown) {
            why = name + " waiting for first result";
        } else if (t->last_result().passed()) {
            // Recovering: still Failing until rise passes in a row; say why it failed.
            why = name + " failing (" + std::to_string(t->successes_in_a_row()) + "/" +
                  std::to_string(t->policy().rise) +
                  " passes to recover): " + describe(t->last_failure());
        } else {
            why = name + " failing: " + describe(t->last_result());
        }
        const int weight = t->policy().weight;
        if (weight < 0) {
            // Unknown lowers the priority too: a node should not win an election on health it
            // has not measured yet.
            out.priority_delta += weight;
            lowered_reasons.push_back(why + " (priority " + std::to_string(weight) + ")");
        } else {
            out.fault = true;
            fault_reasons.push_back(why);
        }
    }

    if (fault_reasons.empty() && lowered_reasons.empty()) {
        out.reason = names.empty() ? "no checks" : "all checks passing";
        return out;
    }
    for (const auto* list : {&fault_reasons, &lowered_reasons}) {
        for (const auto& r : *list) {
            if (!out.reason.empty()) {
                out.reason += " | ";
            }
            out.reason += r;
        }
    }
    return out;
}

}  // namespace failoverd::health
