// What the shell (or the simulator) hands to the core: everything that happened, as data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "daemon/core/action.hpp"
#include "daemon/core/time.hpp"
#include "health/probe_result.hpp"

namespace failoverd {

// A datagram arrived on the advert socket from an allowed peer. `from` is the peer address as
// text ("10.0.0.2:5405"), for status only; source filtering is the shell's job.
struct AdvertReceived {
    std::vector<std::uint8_t> bytes;
    std::string from;
};

// One probe run of a configured check finished (passed, failed, timed out or errored).
struct ProbeCompleted {
    std::string check;
    health::ProbeResult result;
};

// How a provider call ended, already classified by the provider layer.
enum class ProviderOutcome {
    Ok,            // 2xx: the fields for the op are valid
    Locked,        // 422 pending event on the IP or droplet: retry after a short delay
    RateLimited,   // 429: wait retry_after (from retry-after or ratelimit-reset)
    Unauthorized,  // 401/403: token bad or lacking scope; retrying does not cure it
    NotFound,      // 404: on ReadAction fall back to reading the holder; else a config error
    Rejected,      // other 4xx (e.g. 422 region mismatch, droplet already holds another IP)
    Transient,     // 5xx, timeout, dropped connection, unparsable body: back off and retry
};

constexpr std::string_view to_string(ProviderOutcome o) {
    switch (o) {
        case ProviderOutcome::Ok:
            return "ok";
        case ProviderOutcome::Locked:
            return "locked";
        case ProviderOutcome::RateLimited:
            return "rate-limited";
        case ProviderOutcome::Unauthorized:
            return "unauthorized";
        case ProviderOutcome::NotFound:
            return "not-found";
        case ProviderOutcome::Rejected:
            return "rejected";
        case ProviderOutcome::Transient:
            return "transient";
    }
    return "?";
}

enum class ActionStatus { Pending, Completed, Errored };

constexpr std::string_view to_string(ActionStatus s) {
    switch (s) {
        case ActionStatus::Pending:
            return "pending";
        case ActionStatus::Completed:
            return "completed";
        case ActionStatus::Errored:
            return "errored";
    }
    return "?";
}

// The answer to one CallProvider (same instance and request_id). Which fields matter depends on
// the op of that call: ReadHolder -> holder, locked; Assign -> action_id (empty when the
// provider already knows the assignment is done); ReadAction -> action_status.
struct ProviderReplied {
    std::string instance;
    std::uint64_t request_id = 0;
    ProviderOutcome outcome = ProviderOutcome::Transient;
    std::string holder;  // provider identity of the holder; empty = unassigned
    // False when the reply does not say who holds the IP (DigitalOcean leaves the droplet out
    // for a token without droplet:read): nothing may be concluded from `holder` then.
    bool holder_known = true;
    bool locked = false;
    std::string action_id;
    ActionStatus action_status = ActionStatus::Pending;
    std::optional<Duration> retry_after;  // RateLimited (and Locked, if the provider knows)
    int http_status = 0;                  // 0 for transport errors
    std::string detail;                   // message and request id for status; never the token
};

// Operator: the Master of `instance` (empty = every instance this node is Master of) resigns in
// favour of `to_node` (any backup when absent).
struct AdminHandover {
    std::string instance;
    std::optional<std::string> to_node;
};

// Operator: maintenance on puts every instance in Fault ("maintenance"); off lets them recover.
struct AdminMaintenance {
    bool on = false;
};

// The shell tried to send one of the instance's SendAdverts to each of its `peers` peers, and
// the kernel refused `failed` of those sends (ENETUNREACH, EHOSTUNREACH, ENOBUFS...). Reported
// for every send with a failure and for the first send after it that had none; a clean send
// after a clean send need not be reported.
struct AdvertSendResult {
    std::string instance;
    std::size_t peers = 0;
    std::size_t failed = 0;
};

// The daemon is stopping: Masters resign, every instance goes to Init. Send the resulting
// adverts, then exit.
struct Shutdown {};

using Input = std::variant<AdvertReceived, ProbeCompleted, ProviderReplied, AdminHandover,
                           AdminMaintenance, AdvertSendResult, Shutdown>;

}  // namespace failoverd
