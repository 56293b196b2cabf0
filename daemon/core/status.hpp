// A read-only snapshot of the core's state for `failoverctl status`, STATUS= and metrics.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/core/advert.hpp"
#include "daemon/core/election.hpp"
#include "daemon/core/reconciler.hpp"
#include "daemon/core/time.hpp"
#include "health/health_tracker.hpp"

namespace failoverd {

struct TransitionRecord {
    Role from = Role::Init;
    Role to = Role::Init;
    std::string reason;
    Instant at{};
};

struct CheckStatus {
    std::string name;
    health::CheckState state = health::CheckState::Unknown;
    int weight = 0;
    int successes_in_a_row = 0;
    int failures_in_a_row = 0;
    std::string last_reason;  // the last probe's own words
};

struct InstanceStatus {
    std::string name;
    std::string reserved_ip;
    Role role = Role::Init;
    int configured_priority = 0;
    int effective_priority = 0;
    bool preempt = true;
    std::string master;  // current master's node name ("" = none known)
    std::optional<std::string> fault_reason;
    std::string health_reason;  // "all checks passing", "web failing: 9/10 running"
    std::optional<std::string> yielding_to;
    Duration advertisement_interval{};
    Duration master_adver_interval{};
    Duration master_down_interval{};
    std::optional<TransitionRecord> last_transition;
    std::uint64_t transitions = 0;
    std::vector<CheckStatus> checks;
    std::vector<PeerInfo> peers;
    std::uint64_t adverts_sent = 0;
    std::uint64_t adverts_received = 0;   // verified adverts for this instance
    std::uint64_t adverts_ignored = 0;    // verified but not acted on by the election
    std::uint64_t adverts_not_fresh = 0;  // verified but not echoing this boot: not acted on
    bool provider_enabled = false;
    ReconcilerStatus provider;
};

// Adverts from a peer for an instance this node does not have (instance names differ).
struct ForeignInstance {
    std::string peer;      // the sender's node name
    std::string instance;  // the instance name it advertises
    std::uint64_t adverts = 0;
};

struct NodeStatus {
    std::string node_name;
    std::string provider_id;
    std::uint64_t boot_epoch = 0;
    bool maintenance = false;
    bool stopped = false;
    std::vector<InstanceStatus> instances;

    std::uint64_t adverts_sent = 0;
    std::uint64_t adverts_received = 0;   // verified
    std::uint64_t adverts_not_fresh = 0;  // verified, but the sender has not heard this boot
    std::vector<ForeignInstance> foreign_instances;
    std::array<std::uint64_t, kDropReasonCount> drops{};
    std::uint64_t provider_calls = 0;
    std::uint64_t provider_failures = 0;
    std::uint64_t provider_stale_replies = 0;
    std::uint64_t provider_budget_deferrals = 0;
    std::uint64_t probe_results = 0;
    std::uint64_t probe_results_unknown_check = 0;
    std::uint64_t handovers_ignored = 0;

    std::uint64_t drops_for(DropReason r) const { return drops[static_cast<std::size_t>(r)]; }
    std::uint64_t drops_total() const {
        std::uint64_t total = 0;
        for (auto d : drops) {
            total += d;
        }
        return total;
    }
    const InstanceStatus* find(const std::string& instance) const {
        for (const auto& i : instances) {
            if (i.name == instance) {
                return &i;
            }
        }
        return nullptr;
    }
};

}  // namespace failoverd
