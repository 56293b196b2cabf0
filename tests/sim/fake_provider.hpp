// An in-process DigitalOcean reserved-IP API for the simulator, after provider-apis.md §5.1:
// asynchronous assign that locks the IP, 422 for a pending event and for re-assign to the
// holder, 429 with retry-after, 5xx, lost replies, and a history of every holder change.
// It is driven by virtual time only; the cluster schedules its replies and completions.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "daemon/core/rng.hpp"
#include "daemon/core/time.hpp"

namespace failoverd::sim {

enum class FakeOp { ReadHolder, Assign, ReadAction };
enum class FakeActionStatus { InProgress, Completed, Errored };

const char* to_string(FakeOp op);
const char* to_string(FakeActionStatus s);

struct FakeRequest {
    std::string ip;
    FakeOp op = FakeOp::ReadHolder;
    std::int64_t caller = 0;  // the calling node's droplet id (its token, for rate limits)
    std::int64_t target = 0;  // Assign: the droplet to move the IP to
    std::int64_t action_id = 0;
};

struct FakeReply {
    int status = 200;     // 200, 201, 404, 422, 429, 500, 503; 0 when the reply is lost
    std::string message;  // DigitalOcean's wording for 4xx
    std::optional<std::int64_t> holder;
    bool locked = false;
    std::int64_t action_id = 0;
    FakeActionStatus action_status = FakeActionStatus::InProgress;
    std::optional<Duration> retry_after;  // 429 burst only
    bool lost() const { return status == 0; }
};

struct FakeProviderOptions {
    Duration latency_min = std::chrono::milliseconds(20);  // one way, per request
    Duration latency_max = std::chrono::milliseconds(150);
    Duration action_min = std::chrono::seconds(3);  // "in-progress" until completed
    Duration action_max = std::chrono::seconds(11);
    bool holder_null_while_pending = false;  // [UNVERIFIED] what GET shows mid-reassign
    bool one_ip_per_droplet = false;         // DO: a droplet may hold one reserved IP
    int limit_per_minute = 250;              // per token, rolling
    int limit_per_hour = 5000;
};

// Random failures injected for a while (an outage); cleared for the quiet period.
struct ProviderFaults {
    double server_error = 0.0;    // 500/503 before any effect
    double rate_limited = 0.0;    // 429 with retry-after before any effect
    double lost = 0.0;            // no reply; half of these take effect first (commit-then-drop)
    double action_errored = 0.0;  // an accepted action completes as errored: holder unchanged
    Duration retry_after = std::chrono::seconds(2);
    bool any() const {
        return server_error > 0 || rate_limited > 0 || lost > 0 || action_errored > 0;
    }
};

struct FakeAccepted {
    std::int64_t action_id = 0;
    Instant completes_at;
};

struct HolderChange {
    Instant at;
    std::string ip;
    std::optional<std::int64_t> from;
    std::optional<std::int64_t> to;
    std::int64_t action_id = 0;
};

struct FakeProviderCounters {
    std::uint64_t requests = 0;
    std::uint64_t assigns_accepted = 0;
    std::uint64_t rejected_pending = 0;
    std::uint64_t rejected_holder = 0;
    std::uint64_t rate_limited = 0;
    std::uint64_t server_errors = 0;
    std::uint64_t lost = 0;
    std::uint64_t errored_actions = 0;
};

class FakeProvider {
  public:
    FakeProvider(FakeProviderOptions options, std::uint64_t seed);

    void add_ip(const std::string& ip, std::optional<std::int64_t> holder);
    void set_faults(const ProviderFaults& f) { faults_ = f; }
    void clear_faults() { faults_ = ProviderFaults{}; }
    const ProviderFaults& faults() const { return faults_; }
    // The droplet refuses assigns ("Droplet already has a pending event") until `until`.
    void set_droplet_busy(std::int64_t droplet, Instant until);

    // A request reaching the API at `now`. Returns the reply (which may be lost); an accepted
    // assign also fills `accepted`: the cluster must call complete() at its time.
    FakeReply receive(const FakeRequest& req, Instant now, std::optional<FakeAccepted>& accepted);
    // Finishes the action if it is still pending (moves the holder, clears the lock).
    void complete(const std::string& ip, std::int64_t action_id, Instant now);

    Duration one_way_latency();
    const FakeProviderOptions& options() const { return options_; }

    std::optional<std::int64_t> holder(const std::string& ip) const;
    bool locked(const std::string& ip) const;
    const std::vector<HolderChange>& history() const { return history_; }
    // Holder changes of `ip` at or after `since`.
    int moves_since(const std::string& ip, Instant since) const;
    const FakeProviderCounters& counters() const { return counters_; }

  private:
    struct Action {
        std::int64_t id = 0;
        std::int64_t target = 0;
        FakeActionStatus status = FakeActionStatus::InProgress;
    };
    struct IpState {
        std::optional<std::int64_t> holder;
        std::optional<Action> pending;
    };
    struct Token {
        std::deque<Instant> minute;
        std::deque<Instant> hour;
    };

    FakeReply read_holder(const IpState& s) const;
    bool rate_limit(std::int64_t caller, Instant now, FakeReply& reply);
    bool holds_other_ip(std::int64_t droplet, const std::string& except) const;

    FakeProviderOptions options_;
    Rng rng_;
    ProviderFaults faults_;
    std::map<std::string, IpState> ips_;
    std::map<std::int64_t, FakeActionStatus> actions_;
    std::map<std::int64_t, Instant> busy_until_;
    std::map<std::int64_t, Token> tokens_;
    std::int64_t next_action_id_ = (std::int64_t{1} << 31) + 17;  // above int32, as DO
    std::vector<HolderChange> history_;
    FakeProviderCounters counters_;
};

}  // namespace failoverd::sim
