// Node: the whole decision-making of one daemon, sans-I/O (quinn-proto / ngtcp2 shape).
// The shell and the simulator talk only to it: feed inputs with `now`, execute the actions,
// re-arm one timer to next_deadline(). No clock, socket, file, log or randomness in here.
#pragma once

#include <array>
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
#include "daemon/core/election.hpp"
#include "daemon/core/input.hpp"
#include "daemon/core/reconciler.hpp"
#include "daemon/core/rng.hpp"
#include "daemon/core/status.hpp"
#include "daemon/core/time.hpp"
#include "health/health_tracker.hpp"

namespace failoverd {

struct InstanceSpec {
    std::string name;  // must match across nodes (its FNV-1a hash is the wire id)
    std::string reserved_ip;
    int priority = 100;  // 1..254
    bool preempt = true;
    Duration preempt_delay{0};
    std::optional<Duration> advert_interval;  // default: NodeSpec::advert_interval
    std::vector<std::string> checks;          // names of entries in NodeSpec::checks
};

// Pure data the shell builds from Config (and the simulator builds directly).
struct NodeSpec {
    std::string node_name;    // 1..63 bytes, unique in the cluster
    std::string provider_id;  // droplet id; required when provider_enabled
    // Must strictly increase across restarts of this node (peers drop an older epoch as
    // StaleEpoch and, within an equal one, a not-newer sequence as Replay). The shell passes
    // CLOCK_REALTIME in nanoseconds; the simulator a counter.
    std::uint64_t boot_epoch = 0;
    std::vector<std::uint8_t> hmac_key;  // shared by the cluster, at least 16 bytes
    Duration advert_interval = std::chrono::seconds(1);
    std::vector<InstanceSpec> instances;
    std::map<std::string, health::CheckPolicy> checks;
    bool provider_enabled = false;
    Duration reconcile_interval = std::chrono::seconds(30);
    std::uint64_t seed = 0;    // jitter for retries and re-reads
    bool maintenance = false;  // start in maintenance (the flag survives restarts in state_dir)
    // The first health round, taken by the shell before the Node exists, so start-up decides
    // on real results instead of passing through Fault ("waiting for first result") first.
    std::map<std::string, health::ProbeResult> initial_results;
    // Provider pacing; the defaults fit DigitalOcean (provider-apis.md §1.5, §1.6).
    Duration action_poll_interval = std::chrono::seconds(1);
    Duration locked_retry = std::chrono::seconds(2);
    Duration action_deadline = std::chrono::seconds(120);
    // After the provider refuses us (401/403, 404 on the IP, other 4xx) the instance stays in
    // Fault this long, then tries again as a Backup (a rotated token is picked up).
    Duration provider_fault_hold = std::chrono::seconds(60);
    BackoffPolicy backoff;
    BudgetPolicy budget;
};

class Node {
  public:
    // Validates the spec (throws std::invalid_argument: start-up only), starts every instance
    // in Backup (or Fault while a weight-0 check has no result yet, or in maintenance) and
    // queues the resulting Transitioned/RunHook actions and presence adverts.
    explicit Node(NodeSpec spec, Instant now);

    // Call for every input, with the loop's `now` for this turn; then call take_actions() and
    // re-arm the timer to next_deadline(). May emit every kind of Action:
    //  - AdvertReceived: verified or counted as a drop; may change roles (Transitioned,
    //    RunHook), answer with a SendAdvert, or (as Master) trigger a CallProvider re-read
    //    (with a LogNotice when the peer had gone missing or newly advertises as master).
    //  - ProbeCompleted: updates the check; a changed verdict may change roles and priorities.
    //  - ProviderReplied: advances that instance's reconciler (CallProvider) or, when the
    //    provider refuses us, puts the instance in Fault (resign SendAdvert, Transitioned).
    //  - AdminHandover, AdminMaintenance: resign adverts and transitions.
    //  - AdvertSendResult: sends that work again after failing may make a Master re-read
    //    the holder (CallProvider, LogNotice).
    //  - Shutdown: resign adverts from every Master and Transitioned(..., Init, "shutdown");
    //    afterwards every input is ignored and next_deadline() is empty.
    void handle(const Input& input, Instant now);

    // Call when the timer armed to next_deadline() fires (now >= it). Spurious or early calls
    // are harmless. May emit SendAdvert (advert and presence timers), Transitioned/RunHook
    // (master down interval, preempt delay, end of a provider fault) and CallProvider.
    void on_deadline(Instant now);

    // Call after a configuration reload, then take_actions(). Throws std::invalid_argument
    // and changes nothing when `spec` is invalid or changes what needs a restart: node_name,
    // provider_id, boot_epoch, provider_enabled. An instance that stays keeps its role, timers
    // and peers (Election::reconfigure applies new election values in place; a changed
    // reserved IP or provider timing restarts its reconciler); a new instance starts as in
    // the constructor; a removed one stops as at Shutdown (a Master resigns) and disappears.
    // A check whose rise, fall and weight are unchanged keeps its counters; a new or changed
    // one starts Unknown. A new hmac_key replaces the verifier (old captures fail its MAC).
    // Maintenance is kept as it is. May emit every kind of Action.
    void reconfigure(NodeSpec spec, Instant now);

    // The earliest instant the core wants on_deadline(); empty when it waits only for inputs.
    std::optional<Instant> next_deadline() const;

    // Everything queued since the last call, in order. Call after every handle()/on_deadline().
    std::vector<Action> take_actions();

    // Snapshot, current as of the last handle()/on_deadline()/constructor. Built on first use
    // after a change: the simulator calls handle() millions of times and status() rarely.
    const NodeStatus& status() const {
        if (status_stale_) {
            refresh_status();
        }
        return status_;
    }

    // Node-wide counters, current without rebuilding status(): the shell reads them after
    // every datagram, and a full rebuild per advert costs O(instances).
    const std::array<std::uint64_t, kDropReasonCount>& drop_counts() const { return status_.drops; }
    std::uint64_t adverts_accepted() const { return status_.adverts_received; }
    std::uint64_t adverts_not_fresh() const { return status_.adverts_not_fresh; }
    // After an UnknownInstance drop: the sender and the instance name it advertised.
    const std::optional<std::pair<std::string, std::string>>& last_unknown_instance() const {
        return verifier_.last_unknown();
    }

    const std::string& name() const { return spec_.node_name; }
    const NodeSpec& spec() const { return spec_; }
    // nullptr for an unknown instance.
    const Election* election(std::string_view instance) const;
    std::optional<Role> role(std::string_view instance) const;

  private:
    struct InstanceState {
        InstanceState(InstanceSpec s, Election e, Reconciler r)
            : spec(std::move(s)),
              wire_id(instance_id_of(spec.name)),
              election(std::move(e)),
              reconciler(std::move(r)) {}

        InstanceSpec spec;
        std::uint32_t wire_id = 0;
        Election election;
        Reconciler reconciler;
        PeerTable peers;
        std::optional<std::string> provider_fault;
        std::optional<Instant> provider_fault_until;
        std::optional<TransitionRecord> last_transition;
        std::uint64_t transitions = 0;
        std::uint64_t adverts_sent = 0;
        std::uint64_t adverts_received = 0;
        std::uint64_t adverts_not_fresh = 0;
        std::uint64_t sequence = 0;      // per instance: the replay window is per instance
        std::uint64_t failed_sends = 0;  // adverts in a row that did not reach every peer
        Instant sends_failing_since{};   // the first of them
    };

    void on_advert(const AdvertReceived& in, Instant now);
    void on_probe(const ProbeCompleted& in, Instant now);
    void on_provider(const ProviderReplied& in, Instant now);
    void on_handover(const AdminHandover& in, Instant now);
    void on_maintenance(const AdminMaintenance& in, Instant now);
    void on_send_result(const AdvertSendResult& in, Instant now);
    // A partition may have healed: a Master re-reads the holder and logs why.
    void recheck_after_heal(InstanceState& inst, const std::string& reason, Instant now);
    void on_shutdown(Instant now);

    InstanceState make_instance(const InstanceSpec& spec) const;
    void apply_health(InstanceState& inst, Instant now);
    void drain(InstanceState& inst, Instant now);
    ReconcilerContext ctx() { return ReconcilerContext{budget_, rng_, request_ids_}; }
    InstanceState* find(std::string_view instance);
    const InstanceState* find(std::string_view instance) const;
    void refresh_status() const;
    // Records the boot epoch heard from `sender`; true when it is a boot not heard before.
    bool learn_epoch(const std::string& sender, std::uint64_t boot_epoch, Instant now);
    // The peers' boots our adverts echo: the kAdvertEchoMax most recently heard.
    std::vector<EpochEcho> echoes() const;
    void count_foreign(const std::string& peer, const std::string& instance);

    struct PeerEpoch {
        std::uint64_t boot_epoch = 0;
        Instant heard{};
    };
    // Bounds the epoch and foreign-instance tables; only key holders can add entries.
    static constexpr std::size_t kMaxPeerEpochs = AdvertVerifier::kMaxSenders;
    static constexpr std::size_t kMaxForeignInstances = 64;

    NodeSpec spec_;
    health::HealthTracker health_;
    AdvertVerifier verifier_;
    CallBudget budget_;
    Rng rng_;
    RequestIds request_ids_;
    std::vector<InstanceState> instances_;
    bool maintenance_ = false;
    bool stopped_ = false;
    std::uint64_t stale_unrouted_ = 0;  // replies for an unknown instance or with no provider
    std::map<std::string, std::uint64_t> retired_sequences_;  // instances removed by a reload
    std::map<std::string, PeerEpoch, std::less<>> peer_epochs_;
    // (peer, instance name) -> adverts; past kMaxForeignInstances pairs only drops count them.
    std::map<std::pair<std::string, std::string>, std::uint64_t> foreign_instances_;
    std::vector<Action> actions_;
    // The counters in status_ (drops, adverts, probes, hand-overs) are kept there directly; the
    // rest is rebuilt from the state by refresh_status() when status_stale_.
    mutable NodeStatus status_;
    mutable bool status_stale_ = true;
};

}  // namespace failoverd
