// SimCluster: N real Nodes, a virtual clock, a seeded event queue, a SimNetwork and a
// FakeProvider, all driven by one seed. Nothing here reads a clock or sleeps: time jumps to
// the next event. Invariants are checked after every event; a violation stops the run and
// keeps the seed-reproducible trace tail for the report.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/core/node.hpp"
#include "daemon/core/rng.hpp"
#include "daemon/core/time.hpp"
#include "health/probe_result.hpp"
#include "tests/sim/event_queue.hpp"
#include "tests/sim/fake_provider.hpp"
#include "tests/sim/sim_network.hpp"

namespace failoverd::sim {

using NodeId = int;

struct SimCheckSpec {
    std::string name;
    health::CheckPolicy policy;
    Duration interval = std::chrono::seconds(1);  // probes complete at this cadence
};

struct SimInstanceSpec {
    std::string name;
    std::string ip;
    std::vector<int> priorities;  // per node; a missing entry is 100
    bool preempt = true;
    Duration preempt_delay{0};
    std::optional<Duration> advert_interval;
    std::vector<std::string> checks;
    std::optional<NodeId> initial_holder;  // who holds the IP at the provider at start
};

struct SimOptions {
    std::uint64_t seed = 1;
    int nodes = 2;
    Duration advert_interval = std::chrono::seconds(1);
    std::vector<SimCheckSpec> checks;  // every node runs every check
    std::vector<SimInstanceSpec> instances;
    FakeProviderOptions provider;
    Duration net_delay_min = std::chrono::microseconds(200);
    Duration net_delay_max = std::chrono::milliseconds(2);
    Duration request_timeout = std::chrono::seconds(10);  // a lost reply is Transient after it
    // The provider layer turns DigitalOcean's 422 "already the holder" into Ok after a GET
    // (provider-apis.md §4); off, the core sees Rejected and must re-read itself.
    bool fold_holder_422 = true;
    Duration reconcile_interval = std::chrono::seconds(30);
    Duration action_poll_interval = std::chrono::seconds(1);
    Duration locked_retry = std::chrono::seconds(2);
    Duration action_deadline = std::chrono::seconds(120);
    BackoffPolicy backoff;
};

struct SimCounters {
    std::uint64_t adverts_delivered = 0;
    std::uint64_t deadline_calls = 0;
    std::uint64_t stale_wakes = 0;  // a timer event superseded by a later re-arm
    std::uint64_t probes = 0;
    std::uint64_t provider_calls = 0;
};

struct TraceTransition {
    Instant at;
    NodeId node = 0;
    std::string instance;
    Role from = Role::Init;
    Role to = Role::Init;
    std::string reason;
};

class SimCluster {
  public:
    static constexpr std::size_t kCapturedAdverts = 64;

    explicit SimCluster(SimOptions options);
    ~SimCluster();
    SimCluster(const SimCluster&) = delete;
    SimCluster& operator=(const SimCluster&) = delete;

    static Instant start_time() { return Instant{std::chrono::seconds(1000)}; }
    Instant now() const { return queue_.now(); }
    const SimOptions& options() const { return options_; }
    int size() const { return static_cast<int>(nodes_.size()); }

    // Runs events up to and including `until` (the clock ends at `until`). Stops early on a
    // violation; returns false then.
    bool run_until(Instant until);
    bool run_for(Duration d) { return run_until(now() + d); }
    // Runs until `done()` holds (checked after every event) or `limit` passes. Returns whether
    // it held; the clock stops at the event that made it true.
    bool run_until(const std::function<bool()>& done, Duration limit);

    // Roles, addressed by role rather than by index.
    std::optional<NodeId> master(const std::string& instance) const;  // the one Master
    std::vector<NodeId> masters(const std::string& instance) const;
    std::vector<NodeId> backups(const std::string& instance) const;
    std::optional<Role> role(NodeId n, const std::string& instance) const;  // nullopt: down
    std::optional<NodeId> holder(const std::string& instance) const;        // at the provider
    // The node that should be Master now: up, not faulted, highest effective priority
    // (ties: greater name), as the core reports it.
    std::optional<NodeId> highest(const std::string& instance) const;
    bool up(NodeId n) const { return nodes_[static_cast<std::size_t>(n)].node != nullptr; }
    const Node* node(NodeId n) const { return nodes_[static_cast<std::size_t>(n)].node.get(); }
    const std::string& name(NodeId n) const { return nodes_[static_cast<std::size_t>(n)].name; }
    std::int64_t droplet(NodeId n) const { return nodes_[static_cast<std::size_t>(n)].droplet; }
    const SimInstanceSpec& instance(const std::string& name) const;

    // Faults and operator actions; each is written to the trace.
    SimNetwork& network() { return network_; }
    FakeProvider& provider() { return provider_; }
    void cut(NodeId a, NodeId b);
    void isolate(NodeId n);
    void partition(const std::vector<NodeId>& left, const std::vector<NodeId>& right);
    void drop(NodeId a, NodeId b, double p);
    void recover();
    void set_provider_faults(const ProviderFaults& f);
    void crash(NodeId n);    // stops at once: no resign, no more sending or receiving
    void restart(NodeId n);  // a new Node with a new boot epoch
    void stop(NodeId n);     // graceful: Shutdown (resign adverts go out), then down
    // What the node's probes of `check` report from now on ("9/10 running; missing: web-3").
    void set_health(NodeId n, const std::string& check, health::Verdict v,
                    const std::string& reason = "");
    // The probes report this sequence, one entry per probe run, cycling (flapping health).
    void set_health_pattern(NodeId n, const std::string& check,
                            std::vector<health::Verdict> pattern);
    void set_all_health(health::Verdict v);
    void handover(NodeId n, const std::string& instance, std::optional<NodeId> to);
    void maintenance(NodeId n, bool on);
    void note(const std::string& text);  // a line in the trace
    // The last kCapturedAdverts datagrams node n sent (an attacker on the wire keeps them).
    const std::deque<std::vector<std::uint8_t>>& captured(NodeId n) const {
        return nodes_[static_cast<std::size_t>(n)].sent;
    }
    // Delivers `bytes` to node `to` now, as if from node `as`'s address (a replay).
    void inject(NodeId to, NodeId as, const std::vector<std::uint8_t>& bytes);

    // After this, every event must leave the cluster converged: one healthy Master per
    // instance (the highest-priority one where preempt is on), the IP on it at the provider,
    // and no node entering or leaving Master. Call it only once the network is whole, health
    // is good and the settle time has passed.
    void set_steady(bool on);
    bool steady() const { return steady_; }
    // Checks the converged invariants once, now; returns false (and records why) on failure.
    bool check_converged(bool record = true);
    // Converged, and nothing left that could still change it: every node up, every check
    // passing, every instance in Backup or Master, no provider request on its way to the API.
    // The end of a quiet period.
    bool settled();
    int provider_requests_in_flight() const { return provider_in_flight_; }

    const std::vector<std::string>& violations() const { return violations_; }
    bool ok() const { return violations_.empty(); }
    std::string trace_tail(std::size_t lines = 40) const;
    const std::vector<TraceTransition>& transitions() const { return transitions_; }
    // First transition of `instance` into `to` at or after `since`.
    std::optional<TraceTransition> first_transition(const std::string& instance, Role to,
                                                    Instant since) const;
    // First holder change of the instance's IP at or after `since`.
    std::optional<HolderChange> first_move(const std::string& instance, Instant since) const;
    int moves_since(const std::string& instance, Instant since) const;

    std::uint64_t events() const { return queue_.executed(); }
    const SimCounters& counters() const { return counters_; }
    std::uint64_t provider_calls(NodeId n) const;
    std::uint64_t assigns(NodeId n) const;
    // Most calls this node made in any rolling minute / hour so far.
    int max_calls_per_minute(NodeId n) const;
    int max_calls_per_hour(NodeId n) const;

    // Longest master down interval any node can compute for this instance (priority 1), plus
    // the core's tie stagger (< 1/16 of the interval).
    Duration worst_master_down_interval(const std::string& instance) const;
    Duration advert_interval(const std::string& instance) const;
    Duration max_check_interval() const;

  private:
    // An independent copy of the rise/fall rule (health_tracker.hpp): the first result decides,
    // then `rise` passes or `fall` failures in a row flip the state.
    struct ShadowCheck {
        enum class State { Unknown, Passing, Failing };
        State state = State::Unknown;
        int passes_in_a_row = 0;
        int failures_in_a_row = 0;
        void record(bool passed, const health::CheckPolicy& p);
    };
    struct SimNode {
        NodeId id = 0;
        std::string name;
        std::int64_t droplet = 0;
        std::uint64_t boot_epoch = 0;
        std::uint64_t incarnation = 0;
        std::unique_ptr<Node> node;
        std::uint64_t timer_gen = 0;
        std::optional<Instant> armed;
        std::uint64_t deadline_calls_at_same_instant = 0;
        Instant last_deadline_call{};
        bool maintenance = false;
        std::map<std::string, health::Verdict> health;
        std::map<std::string, std::string> health_reason;
        std::map<std::string, std::vector<health::Verdict>> pattern;
        std::map<std::string, std::size_t> pattern_pos;
        std::map<std::string, ShadowCheck> shadow;
        std::map<std::string, Role> roles;
        std::deque<Instant> calls_minute;
        std::deque<Instant> calls_hour;
        std::deque<std::vector<std::uint8_t>> sent;
        int max_minute = 0;
        int max_hour = 0;
        std::uint64_t calls = 0;
        std::uint64_t assigns = 0;
    };

    SimNode& at(NodeId n) { return nodes_[static_cast<std::size_t>(n)]; }
    const SimNode& at(NodeId n) const { return nodes_[static_cast<std::size_t>(n)]; }
    NodeSpec spec_for(const SimNode& n) const;
    void boot(SimNode& n);
    void deliver(NodeId n, std::uint64_t incarnation, const Input& input);
    void fire_deadline(NodeId n, std::uint64_t gen);
    void after_core_call(SimNode& n);
    void execute(SimNode& n, std::vector<Action>& actions);
    void send_advert(SimNode& n, const SendAdvert& a);
    void call_provider(SimNode& n, const CallProvider& c);
    void provider_round_trip(NodeId n, std::uint64_t incarnation, CallProvider call,
                             FakeRequest req, Instant sent_at, bool fold_step);
    void schedule_probe(NodeId n, const SimCheckSpec& check, Instant at);
    void rearm(SimNode& n);
    void count_call(SimNode& n);
    void check_after_event();
    void check_not_master_when_unhealthy(const SimNode& n);
    // Every weight-0 check of the instance is Passing by the rise/fall rule, no maintenance.
    bool healthy(const SimNode& n, const SimInstanceSpec& inst, std::string* why) const;
    const SimCheckSpec* check_spec(const std::string& name) const;
    void violation(const std::string& what);
    void trace(const std::string& line);
    std::string stamp() const;
    int priority_of(NodeId n, const SimInstanceSpec& inst) const;

    SimOptions options_;
    Rng rng_;
    EventQueue queue_;
    SimNetwork network_;
    FakeProvider provider_;
    std::vector<SimNode> nodes_;
    std::vector<std::uint8_t> key_;
    bool steady_ = false;
    std::vector<std::string> violations_;
    std::deque<std::string> trace_;
    std::vector<TraceTransition> transitions_;
    SimCounters counters_;
    int provider_in_flight_ = 0;
    // Set by every event that can change what check_converged() looks at (roles, health,
    // the provider's holder or lock, nodes going down or up); adverts that change no role
    // cannot, so the steady check skips them.
    bool dirty_ = true;
};

}  // namespace failoverd::sim
