#include "tests/sim/seed_sweep.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "daemon/core/rng.hpp"
#include "tests/sim/sim_cluster.hpp"

namespace failoverd::sim {

namespace {

using namespace std::chrono_literals;

template <typename T, std::size_t N>
const T& pick(Rng& r, const T (&items)[N]) {
    return items[r.below(N)];
}

Duration uniform(Rng& r, Duration lo, Duration hi) {
    const auto span = static_cast<std::uint64_t>((hi - lo).count());
    return lo + Duration{static_cast<Duration::rep>(r.below(span + 1))};
}

struct Shape {
    SimOptions options;
    Duration fault_phase{};
    bool fast_provider = true;
};

Shape draw_shape(std::uint64_t seed, Rng& r) {
    Shape s;
    SimOptions& o = s.options;
    o.seed = seed;
    o.nodes = 2 + static_cast<int>(r.below(4));
    // Sub-second adverts are common in the draw but cost events; their shapes get a fast
    // provider and short retry timings so a seed stays a few thousand events.
    static const Duration intervals[] = {50ms,  100ms, 100ms, 200ms, 200ms, 200ms, 500ms,
                                         500ms, 500ms, 500ms, 1s,    1s,    1s,    1s,
                                         1s,    1s,    1s,    2s,    2s,    2s};
    o.advert_interval = pick(r, intervals);
    const bool sub_second = o.advert_interval < 500ms;

    static const Duration check_intervals[] = {250ms, 500ms, 1s, 2s};
    o.checks.push_back(SimCheckSpec{
        "containers",
        health::CheckPolicy{1 + static_cast<int>(r.below(3)), 1 + static_cast<int>(r.below(3)), 0},
        pick(r, check_intervals)});
    const bool weighted = r.chance(0.5);
    if (weighted) {
        o.checks.push_back(SimCheckSpec{
            "latency",
            health::CheckPolicy{1 + static_cast<int>(r.below(3)), 1 + static_cast<int>(r.below(3)),
                                -(10 + static_cast<int>(r.below(60)))},
            pick(r, check_intervals)});
    }

    static const char* names[] = {"web", "api", "db"};
    static const int priorities[] = {1, 50, 100, 100, 150, 200, 254};
    const int instances = 1 + static_cast<int>(r.below(3));
    for (int i = 0; i < instances; ++i) {
        SimInstanceSpec inst;
        inst.name = names[i];
        inst.ip = "203.0.113." + std::to_string(10 + i);
        for (int n = 0; n < o.nodes; ++n) {
            inst.priorities.push_back(pick(r, priorities));
        }
        inst.preempt = r.chance(0.7);
        if (r.chance(0.2)) {
            static const Duration delays[] = {500ms, 2s, 5s};
            inst.preempt_delay = pick(r, delays);
        }
        if (r.chance(0.2)) {
            inst.advert_interval = std::max(o.advert_interval, pick(r, intervals));
        }
        if (r.chance(0.9)) {
            inst.checks.push_back("containers");
        }
        if (weighted && r.chance(0.6)) {
            inst.checks.push_back("latency");
        }
        if (r.chance(0.7)) {
            inst.initial_holder = static_cast<NodeId>(r.below(static_cast<std::uint64_t>(o.nodes)));
        }
        o.instances.push_back(std::move(inst));
    }

    s.fast_provider = sub_second || r.chance(0.5);
    if (s.fast_provider) {
        // A real API call is never faster than a TLS round trip inside the region.
        o.provider.latency_min = 10ms;
        o.provider.latency_max = uniform(r, 10ms, 40ms);
        o.provider.action_min = 50ms;
        o.provider.action_max = uniform(r, 200ms, 2s);
    }
    o.provider.holder_null_while_pending = r.chance(0.5);
    o.fold_holder_422 = r.chance(0.5);
    // Peers share a region: latency well below the advert interval, as RFC 5798's timers (and
    // the core's tie stagger, < 1/16 of the interval) assume. Larger delays are a fault below.
    // (Per-instance intervals are never shorter than the node's.)
    o.net_delay_min = uniform(r, 50us, 1ms);
    o.net_delay_max =
        o.net_delay_min + uniform(r, 0ms, std::min<Duration>(10ms, o.advert_interval / 20));

    // Only what a config file can set varies (reconcile_interval, request_timeout); the other
    // provider pacing knobs keep the defaults the daemon runs with.
    static const Duration reconciles[] = {2s, 5s, 10s, 30s};
    static const Duration timeouts[] = {1s, 3s, 10s};
    o.reconcile_interval = reconciles[r.below(sub_second ? 2 : 4)];
    o.request_timeout = timeouts[r.below(sub_second ? 2 : 3)];
    s.fault_phase = sub_second ? uniform(r, 5s, 20s) : uniform(r, 10s, 60s);
    return s;
}

std::string describe(const Shape& s) {
    const SimOptions& o = s.options;
    char buf[256];
    std::snprintf(
        buf, sizeof buf,
        "%d nodes, %zu instance(s), advert %s, %s provider (action <= %s), reconcile %s, "
        "request timeout %s, 422 %s, fault phase %s",
        o.nodes, o.instances.size(), format_duration(o.advert_interval).c_str(),
        s.fast_provider ? "fast" : "realistic", format_duration(o.provider.action_max).c_str(),
        format_duration(o.reconcile_interval).c_str(), format_duration(o.request_timeout).c_str(),
        o.fold_holder_422 ? "folded" : "raw", format_duration(s.fault_phase).c_str());
    std::string out = buf;
    for (const auto& inst : o.instances) {
        out += "; " + inst.name + " prio";
        for (int p : inst.priorities) {
            out += " " + std::to_string(p);
        }
        out += inst.preempt ? " preempt" : " nopreempt";
        if (inst.preempt_delay > Duration::zero()) {
            out += " delay " + format_duration(inst.preempt_delay);
        }
        if (inst.advert_interval) {
            out += " advert " + format_duration(*inst.advert_interval);
        }
        out += " checks";
        for (const auto& c : inst.checks) {
            out += " " + c;
        }
    }
    return out;
}

// Every way the cluster can suffer, drawn at random; the cluster writes each to its trace.
void random_fault(SimCluster& c, Rng& r, std::vector<bool>& maintenance) {
    const SimOptions& o = c.options();
    const auto node = [&] {
        return static_cast<NodeId>(r.below(static_cast<std::uint64_t>(c.size())));
    };
    const auto other = [&](NodeId a) {
        return static_cast<NodeId>(
            (a + 1 + static_cast<NodeId>(r.below(static_cast<std::uint64_t>(c.size() - 1)))) %
            c.size());
    };
    const std::string& inst = o.instances[r.below(o.instances.size())].name;
    switch (r.below(20)) {
        case 0: {
            const NodeId a = node();
            c.cut(a, other(a));
            return;
        }
        case 1:
            c.isolate(node());
            return;
        case 2: {
            std::vector<NodeId> left;
            std::vector<NodeId> right;
            for (NodeId n = 0; n < c.size(); ++n) {
                (r.chance(0.5) ? left : right).push_back(n);
            }
            if (!left.empty() && !right.empty()) {
                c.partition(left, right);
            }
            return;
        }
        case 3: {
            static const double ps[] = {0.1, 0.3, 0.5, 0.9, 1.0};
            const NodeId a = node();
            c.drop(a, other(a), pick(r, ps));
            return;
        }
        case 4:
            c.recover();
            return;
        case 5: {
            // Latency up to a few advert intervals: late adverts look like a dead master.
            const Duration hi = uniform(r, 1ms, 3 * o.advert_interval);
            c.network().set_delay(o.net_delay_min, hi);
            c.note("fault: delay up to " + format_duration(hi));
            return;
        }
        case 6: {
            const double p = 0.05 + 0.5 * r.unit();
            c.network().set_duplicate(p);
            c.note("fault: duplicate " + std::to_string(static_cast<int>(p * 100)) + "%");
            return;
        }
        case 7: {
            const double p = 0.05 + 0.5 * r.unit();
            const Duration extra = uniform(r, 1ms, 2 * o.advert_interval);
            c.network().set_reorder(p, extra);
            c.note("fault: reorder " + std::to_string(static_cast<int>(p * 100)) + "% by up to " +
                   format_duration(extra));
            return;
        }
        case 8:
        case 9: {
            const NodeId n = node();
            if (c.up(n)) {
                c.crash(n);
            } else {
                c.restart(n);
            }
            return;
        }
        case 10: {
            const NodeId n = node();
            if (c.up(n)) {
                c.stop(n);
            } else {
                c.restart(n);
            }
            return;
        }
        case 11:
        case 12: {
            static const health::Verdict verdicts[] = {
                health::Verdict::Fail, health::Verdict::TimedOut, health::Verdict::Pass};
            const auto& check = o.checks[r.below(o.checks.size())].name;
            c.set_health(node(), check, pick(r, verdicts));
            return;
        }
        case 13: {
            std::vector<health::Verdict> pattern;
            const std::uint64_t len = 2 + r.below(4);
            for (std::uint64_t i = 0; i < len; ++i) {
                pattern.push_back(r.chance(0.5) ? health::Verdict::Pass : health::Verdict::Fail);
            }
            const auto& check = o.checks[r.below(o.checks.size())].name;
            c.set_health_pattern(node(), check, std::move(pattern));
            return;
        }
        case 14: {
            ProviderFaults f;
            f.server_error = r.chance(0.5) ? r.unit() * 0.8 : 0.0;
            f.rate_limited = r.chance(0.4) ? r.unit() * 0.8 : 0.0;
            f.lost = r.chance(0.4) ? r.unit() * 0.5 : 0.0;
            f.action_errored = r.chance(0.3) ? r.unit() * 0.5 : 0.0;
            f.retry_after = uniform(r, 1s, 5s);
            c.set_provider_faults(f);
            return;
        }
        case 15:
            c.set_provider_faults(ProviderFaults{});
            return;
        case 16: {
            const NodeId n = node();
            const Duration busy = uniform(r, 1s, 20s);
            c.provider().set_droplet_busy(c.droplet(n), c.now() + busy);
            c.note("fault: droplet of " + c.name(n) + " busy for " + format_duration(busy));
            return;
        }
        case 17:
        case 18: {
            const auto m = c.masters(inst);
            if (m.empty()) {
                return;
            }
            const NodeId from = m[r.below(m.size())];
            std::optional<NodeId> to;
            if (r.chance(0.7)) {
                to = other(from);
            }
            c.handover(from, inst, to);
            return;
        }
        case 19: {
            const NodeId n = node();
            maintenance[static_cast<std::size_t>(n)] = !maintenance[static_cast<std::size_t>(n)];
            c.maintenance(n, maintenance[static_cast<std::size_t>(n)]);
            return;
        }
    }
}

// Ends every fault: the network is whole, the provider answers, health is good, every node is
// up and out of maintenance.
void quiet(SimCluster& c, std::vector<bool>& maintenance) {
    c.note("quiet period starts");
    c.recover();
    c.network().set_delay(c.options().net_delay_min, c.options().net_delay_max);
    c.set_provider_faults(ProviderFaults{});
    c.set_all_health(health::Verdict::Pass);
    for (NodeId n = 0; n < c.size(); ++n) {
        if (!c.up(n)) {
            c.restart(n);
        }
        if (maintenance[static_cast<std::size_t>(n)]) {
            maintenance[static_cast<std::size_t>(n)] = false;
            c.maintenance(n, false);
        }
    }
}

// Before this much quiet time the cluster may look converged while a Backup that has not heard
// the Master since the heal is about to time out (or a preempt_delay is about to run out).
Duration election_settle(const SimCluster& c) {
    const SimOptions& o = c.options();
    Duration election{0};
    for (const auto& inst : o.instances) {
        election = std::max(election, c.worst_master_down_interval(inst.name) + inst.preempt_delay +
                                          2 * c.advert_interval(inst.name));
    }
    return election + 2 * o.net_delay_max;
}

// How long after the quiet period starts the cluster must have converged. Each term is a
// worst case of one stage; they are added because they can happen one after another.
Duration settle_bound(const SimCluster& c, bool after_restart) {
    const SimOptions& o = c.options();
    Duration health{0};
    if (after_restart) {
        int rise = 1;
        for (const auto& ch : o.checks) {
            rise = std::max(rise, ch.policy.rise);
        }
        health = (rise + 1) * c.max_check_interval();
    }
    // A reconciler may be waiting out a backoff, a Retry-After or a lost reply; an action of an
    // earlier master may still be pending; then it reads, assigns, waits for the action and
    // verifies. Call-budget pacing and backoff jitter get a margin on top.
    const Duration round_trip = 2 * o.provider.latency_max;
    const Duration provider = std::max<Duration>(o.backoff.cap, 5s) + o.request_timeout +
                              o.provider.action_max + o.locked_retry + 4 * round_trip +
                              o.provider.action_max + 2 * o.action_poll_interval + 15s;
    return health + election_settle(c) + provider;
}

// The node that must hold the instance after the heal when preempt is off: among the nodes that
// were Master at the heal or became Master within the election settle time after it (a side
// that had not yet timed out does so just after the heal), the one that outranks the others
// (RFC 5798 §6.4.3: two Masters resolve by priority, then identity).
std::optional<NodeId> outranking(const SimCluster& c, const std::string& inst,
                                 const std::vector<NodeId>& at_heal, Instant from, Instant to) {
    std::vector<NodeId> candidates = at_heal;
    for (const auto& t : c.transitions()) {
        if (t.instance == inst && t.to == Role::Master && t.at >= from && t.at <= to) {
            candidates.push_back(t.node);
        }
    }
    std::optional<NodeId> best;
    int best_priority = 0;
    for (NodeId m : candidates) {
        const int p = c.node(m)->election(inst)->effective_priority();
        if (!best || p > best_priority || (p == best_priority && c.name(m) > c.name(*best))) {
            best = m;
            best_priority = p;
        }
    }
    return best;
}

}  // namespace

SeedResult run_seed(std::uint64_t seed, std::size_t trace_lines) {
    // Hash the seed first: SplitMix64 streams of nearby raw seeds are shifted copies.
    Rng r(Rng(seed).next());
    const Shape shape = draw_shape(seed, r);
    SeedResult result;
    result.seed = seed;
    result.config = describe(shape);
    SimCluster c(shape.options);
    std::vector<bool> maintenance(static_cast<std::size_t>(c.size()), false);
    const auto count = [&] {
        result.events = c.events();
        result.virtual_time = c.now() - SimCluster::start_time();
        result.adverts = c.counters().adverts_delivered;
        result.wakes = c.counters().deadline_calls;
        result.stale_wakes = c.counters().stale_wakes;
        result.probes = c.counters().probes;
    };
    const auto fail = [&](const std::string& why) {
        result.ok = false;
        result.failure = why + "\n" + c.trace_tail(trace_lines);
        count();
        return result;
    };
    const auto first_violation = [&] {
        return c.violations().empty() ? std::string() : c.violations()[0];
    };

    // Phase 1: random faults.
    const Instant faults_end = c.now() + shape.fault_phase;
    const Duration max_gap = std::max<Duration>(shape.fault_phase / 6, 100ms);
    while (c.ok() && c.now() < faults_end) {
        c.run_until(std::min(faults_end, c.now() + uniform(r, 0ms, max_gap)));
        if (c.ok() && c.now() < faults_end) {
            random_fault(c, r, maintenance);
            ++result.faults;
        }
    }
    if (!c.ok()) {
        return fail("during the fault phase: " + first_violation());
    }

    // Phase 2: quiet period, then converged and stable.
    // Converging earlier than the bound is the common case; running on to the bound would
    // only add events, the steady window after it checks stability.
    quiet(c, maintenance);
    const Duration bound = settle_bound(c, true);
    const Instant quiet_start = c.now();
    c.run_for(election_settle(c));
    if (!c.run_until([&] { return c.settled(); }, bound - election_settle(c))) {
        if (!c.ok()) {
            return fail("during the quiet period: " + first_violation());
        }
        c.check_converged();
        return fail("not converged " + format_duration(bound) +
                    " after the quiet period started: " + first_violation());
    }
    result.settle_time = std::max(result.settle_time, c.now() - quiet_start);
    const Duration hold = c.options().reconcile_interval * 6 / 5 + 10 * c.options().advert_interval;
    c.set_steady(true);
    c.run_for(hold);
    c.set_steady(false);
    if (!c.ok()) {
        return fail("while steady after the quiet period: " + first_violation());
    }

    // Phase 3: one partition between peers that both still reach the provider, then the heal.
    std::vector<NodeId> left;
    std::vector<NodeId> right;
    const NodeId split = 1 + static_cast<NodeId>(r.below(static_cast<std::uint64_t>(c.size() - 1)));
    for (NodeId n = 0; n < c.size(); ++n) {
        (n < split ? left : right).push_back(n);
    }
    const Instant cut = c.now();
    c.partition(left, right);
    c.run_for(uniform(r, 1s, 3 * c.options().reconcile_interval + 10s));
    if (!c.ok()) {
        return fail("during the partition: " + first_violation());
    }
    std::vector<std::vector<NodeId>> masters_at_heal;
    for (const auto& inst : c.options().instances) {
        masters_at_heal.push_back(c.masters(inst.name));
    }
    c.recover();
    const Duration heal_bound = settle_bound(c, false);
    const Instant healed = c.now();
    c.run_for(election_settle(c));
    if (!c.run_until([&] { return c.settled(); }, heal_bound - election_settle(c))) {
        if (!c.ok()) {
            return fail("after the heal: " + first_violation());
        }
        c.check_converged();
        return fail("not converged " + format_duration(heal_bound) +
                    " after the heal: " + first_violation());
    }
    result.heal_time = c.now() - healed;
    c.set_steady(true);
    c.run_for(hold);
    c.set_steady(false);
    if (!c.ok()) {
        return fail("while steady after the heal: " + first_violation());
    }
    for (std::size_t i = 0; i < c.options().instances.size(); ++i) {
        const auto& inst = c.options().instances[i];
        const int moves = c.moves_since(inst.name, cut);
        result.partition_moves = std::max(result.partition_moves, moves);
        if (moves > 2) {
            return fail("[" + inst.name + "] the IP moved " + std::to_string(moves) +
                        " times for one partition event (at most 2)");
        }
        const auto expected = inst.preempt ? std::nullopt
                                           : outranking(c, inst.name, masters_at_heal[i], healed,
                                                        healed + election_settle(c));
        if (expected && c.master(inst.name) != expected) {
            return fail("[" + inst.name + "] after the heal the master is not " +
                        c.name(*expected) + ", the master that outranked the others (nopreempt)");
        }
    }
    count();
    return result;
}

}  // namespace failoverd::sim
