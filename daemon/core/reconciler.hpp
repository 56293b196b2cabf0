// Reconciler: per instance, makes the provider's idea of who holds the reserved IP match the
// election (level-triggered, not edge-triggered). Pure: it asks for provider calls and reads
// their replies; the shell or the simulator performs them. Partition rule: docs/election.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/action.hpp"
#include "daemon/core/advert.hpp"
#include "daemon/core/backoff.hpp"
#include "daemon/core/input.hpp"
#include "daemon/core/rng.hpp"
#include "daemon/core/time.hpp"

namespace failoverd {

// What this node knows about the other nodes of one instance, from verified adverts (Master
// adverts and the Backup/Fault presence notices).
struct PeerInfo {
    std::string node_name;
    std::string provider_id;
    int priority = 0;  // last advertised effective priority; 0 = resigned or faulted
    SenderState state = SenderState::Master;
    Instant last_heard{};
    std::string from;            // address the last advert came from
    Duration advert_interval{};  // the peer's advertisement interval (for freshness)
};

// How recently a peer must have been heard, in its advertisement intervals, for its state to
// count as current in the partition rule (docs/election.md).
inline constexpr int kPeerFreshAdverts = 2;

class PeerTable {
  public:
    static constexpr std::size_t kMaxPeers = 64;

    // Returns true when what the partition rule looks at (provider id, priority, state)
    // changed. A new peer past kMaxPeers is not recorded.
    bool update(const Advert& advert, const std::string& from, Instant now);

    const PeerInfo* find_by_provider_id(std::string_view provider_id) const;
    const PeerInfo* find(std::string_view node_name) const;
    const std::map<std::string, PeerInfo, std::less<>>& peers() const { return peers_; }

  private:
    std::map<std::string, PeerInfo, std::less<>> peers_;
};

// Node-wide source of provider request ids (unique across instances, never reused).
class RequestIds {
  public:
    std::uint64_t next() { return ++last_; }

  private:
    std::uint64_t last_ = 0;
};

// Shared, node-wide things a reconciler needs for each step; passed in so Node stays movable.
struct ReconcilerContext {
    CallBudget& budget;
    Rng& rng;
    RequestIds& ids;
};

struct ReconcilerConfig {
    std::string instance;
    std::string ip;
    std::string self_provider_id;  // this node's droplet id
    std::string self_name;         // this node's name (ties in the partition rule)
    Duration reconcile_interval = std::chrono::seconds(30);  // re-read the holder while Master
    Duration action_poll_interval = std::chrono::seconds(1);
    Duration locked_retry = std::chrono::seconds(2);       // after 422 pending event / locked IP
    Duration action_deadline = std::chrono::seconds(120);  // then re-read the holder
    // Retries after a failure while this node holds the IP (or knows no better).
    BackoffPolicy backoff;
    // Retries while Master without the IP: every second the IP sits on a dead node counts, so
    // they start sub-second and stay a few seconds apart (the call budget still applies).
    BackoffPolicy claim_backoff{std::chrono::milliseconds(200), 2.0, std::chrono::seconds(2), 0.5,
                                std::chrono::hours(1)};
};

enum class ReconcilePhase {
    Idle,           // not Master: never calls Assign
    Checking,       // ReadHolder in flight
    Assigning,      // Assign in flight
    PollingAction,  // ReadAction in flight or waiting to poll
    Waiting,        // waiting out a backoff, a lock or the call budget
    Settled,        // the provider says this node holds the IP
    Yielding,       // the IP is on a node the partition rule says not to take it from
    Refused,        // the provider refused us (401/403/404/4xx); the instance is in Fault
};

constexpr std::string_view to_string(ReconcilePhase p) {
    switch (p) {
        case ReconcilePhase::Idle:
            return "idle";
        case ReconcilePhase::Checking:
            return "checking";
        case ReconcilePhase::Assigning:
            return "assigning";
        case ReconcilePhase::PollingAction:
            return "polling-action";
        case ReconcilePhase::Waiting:
            return "waiting";
        case ReconcilePhase::Settled:
            return "settled";
        case ReconcilePhase::Yielding:
            return "yielding";
        case ReconcilePhase::Refused:
            return "refused";
    }
    return "?";
}

struct ReconcilerStatus {
    ReconcilePhase phase = ReconcilePhase::Idle;
    std::string observed_holder;  // last holder the provider reported ("" = unassigned)
    bool holder_known = false;
    bool holder_locked = false;
    std::optional<Instant> last_read_at;
    std::string action_id;
    std::string note;        // "IP held by web-1 (priority 150 > 100): not reclaiming"
    std::string last_error;  // "HTTP 503 (request abc): backing off 1.2 s"
    std::optional<Instant> next_call_at;
    std::uint64_t calls = 0;
    std::uint64_t failures = 0;  // replies other than Ok
    std::uint64_t assigns = 0;   // Assign calls made
    std::uint64_t moves_confirmed = 0;
    std::uint64_t stale_replies = 0;  // replies for an unknown or superseded request id
    std::uint64_t budget_deferrals = 0;
};

class Reconciler {
  public:
    explicit Reconciler(ReconcilerConfig config);

    // Call when the election makes this node Master: claims the IP. The first claim of a
    // mastership term ignores the partition rule (the election just decided the old master is
    // gone); re-claims later obey it. `assign_first`: post the assign at once, then read the
    // holder to verify (one provider round trip sooner). The node asks for it only when the
    // takeover was uncontended (the old master named this node, the others hold back); after
    // a down-interval or preempt takeover it reads first, because that round trip is also
    // the window in which two backups that took over together hear each other, and the one
    // that steps down never posts.
    void start(Instant now, bool assign_first = false);

    // Call when the node stops being Master (or the daemon stops). Forgets in-flight calls
    // (their replies will be ignored) and never calls Assign until start() again.
    void stop();

    // Re-read the holder soon (rate-limited): a second master was heard, a peer changed its
    // state or priority, or the node the IP is yielded to sent a presence notice. No effect
    // unless Master and idle between calls.
    void recheck_soon(Instant now);

    // A partition may have healed (a peer heard again after a silence, a peer newly heard as
    // master, this node's own sends working again): whoever held the IP meanwhile may have
    // moved it, so re-read the holder at once. Unlike recheck_soon it is never dropped: within
    // the rate limit it is postponed, and a read already on its way (sent before the heal)
    // is followed by one more. A claim in progress ends with a verify read and a backoff or
    // lock wait ends with a read, so those are left to run. Returns what it does, for the log
    // ("web-2 heard again after 3.40 s of silence: re-reading the holder" when `reason` is the
    // first part); empty when not Master or when a claim in progress makes it moot.
    std::string recheck_after_heal(const std::string& reason, Instant now);

    // Call with every ProviderReplied for this instance. `my_priority` is the instance's
    // effective priority now; `peers` the instance's peer table. May queue CallProviders
    // (take_calls) or a fault (take_fault).
    void on_reply(const ProviderReplied& reply, int my_priority, const PeerTable& peers,
                  ReconcilerContext ctx, Instant now);

    // Call when now >= next_deadline(); spurious calls do nothing. May queue CallProviders.
    void on_deadline(ReconcilerContext ctx, Instant now);

    std::optional<Instant> next_deadline() const;
    std::vector<CallProvider> take_calls();

    // Set when the provider refused this node (401/403, 404 on the IP, other 4xx after a
    // re-read): the reason for the instance's Fault, e.g. "provider rejected the token (HTTP
    // 401)". Taken once.
    std::optional<std::string> take_fault();

    bool active() const { return active_; }
    bool in_flight() const { return in_flight_.has_value(); }
    // True while Master and leaving the IP with `provider_id` under the partition rule.
    bool yielding_to(std::string_view provider_id) const {
        return active_ && status_.phase == ReconcilePhase::Yielding &&
               status_.observed_holder == provider_id;
    }
    const ReconcilerStatus& status() const { return status_; }
    const ReconcilerConfig& config() const { return config_; }

  private:
    enum class Step { ReadHolder, Assign, ReadAction };
    struct InFlight {
        std::uint64_t id = 0;
        Step step = Step::ReadHolder;
        Instant sent_at{};
    };

    void process_reply(const ProviderReplied& reply, int my_priority, const PeerTable& peers,
                       ReconcilerContext ctx, Instant now);
    void schedule(Step step, Instant at, ReconcilePhase phase);
    void issue(Step step, ReconcilerContext ctx, Instant now);
    void on_holder(const ProviderReplied& reply, int my_priority, const PeerTable& peers,
                   ReconcilerContext ctx, Instant sent_at, Instant now);
    std::string partition_verdict(const PeerInfo* peer, const std::string& holder, int my_priority,
                                  Instant sent_at) const;
    void on_assign(const ProviderReplied& reply, Instant now);
    void on_action(const ProviderReplied& reply, ReconcilerContext ctx, Instant now);
    void on_failure(const ProviderReplied& reply, Step retry, ReconcilerContext ctx, Instant now,
                    std::optional<Duration> floor);
    void on_assign_unknown(const ProviderReplied& reply, ReconcilerContext ctx, Instant sent_at,
                           Instant now);
    // The backoff for the next retry: the fast one while Master without the IP.
    Backoff& pacing() { return active_ && !holds_ip_ ? claim_backoff_ : backoff_; }
    void reset_backoff();
    void refuse(std::string reason);
    Duration jittered_reconcile_interval(Rng& rng) const;
    // After a read found the IP settled or yielded: the periodic re-read, or a prompt one when
    // a heal was noticed while that read was on its way.
    void schedule_next_read(ReconcilerContext ctx, Instant now, ReconcilePhase phase);
    Instant recheck_at(Instant now) const;  // `now`, or later within the rate limit
    CallPriority priority_of(Step step) const;

    ReconcilerConfig config_;
    bool active_ = false;
    bool claimed_ = false;       // this term: our assignment completed or we were seen as holder
    bool next_routine_ = false;  // the scheduled step is a periodic re-read (budget reserve)
    std::optional<InFlight> in_flight_;
    std::optional<Step> next_step_;
    Instant next_at_{};
    std::optional<Instant> action_started_;
    std::optional<Instant> last_recheck_;
    bool heal_reread_ = false;  // a heal was noticed while a read was on its way
    std::optional<std::string> pending_rejection_;  // a 4xx on Assign, confirmed by a re-read
    // When an Assign whose outcome is unknown (reply lost, timeout, 5xx) was sent: until a
    // read shows whether it was applied, no new Assign goes out.
    std::optional<Instant> assign_unknown_since_;
    bool holds_ip_ = false;  // this term's last holder read named this node
    Backoff backoff_;
    Backoff claim_backoff_;
    std::optional<std::string> fault_;
    std::vector<CallProvider> calls_;
    ReconcilerStatus status_;
};

}  // namespace failoverd
