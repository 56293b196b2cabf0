// Named scenarios: each scripts one fault against real Nodes, measures a figure in virtual time
// and asserts the protocol bound. Nodes are addressed by role, never by index.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <string>

#include "tests/sim/sim_cluster.hpp"
#include "tests/sim/sim_fixtures.hpp"

using namespace failoverd;
using namespace failoverd::sim;
using namespace std::chrono_literals;

namespace {

std::string report(const SimCluster& c) {
    return (c.ok() ? std::string("no violation") : c.violations()[0]) + "\nseed " +
           std::to_string(c.options().seed) + ", trace tail:\n" + c.trace_tail(60);
}

void require_ok(const SimCluster& c) {
    REQUIRE_MESSAGE(c.ok(), report(c));
}

// Brings the cluster up and proves it stable for a while before the fault.
void bring_up(SimCluster& c) {
    REQUIRE_MESSAGE(converge(c, 120s), report(c));
    c.set_steady(true);
    c.run_for(60s);
    require_ok(c);
    c.set_steady(false);
}

// After the scenario: the cluster converges and stays converged.
void settle_and_hold(SimCluster& c, Duration limit, Duration hold = 120s) {
    REQUIRE_MESSAGE(converge(c, limit), report(c));
    c.set_steady(true);
    c.run_for(hold);
    require_ok(c);
    c.set_steady(false);
}

}  // namespace

TEST_CASE("sim: master crash - a backup takes over within master_down_interval + one advert") {
    const SimOptions o = hot_standby({150, 100});
    SimCluster c(o);
    bring_up(c);
    const auto old_master = c.master("web");
    REQUIRE(old_master);
    const auto backup = c.backups("web").at(0);

    const Instant fault = c.now();
    c.crash(*old_master);
    REQUIRE_MESSAGE(c.run_until([&] { return c.master("web") == backup; }, 60s), report(c));
    const Duration to_master = c.now() - fault;
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == backup; }, 60s), report(c));
    const Duration to_ip = c.now() - fault;
    require_ok(c);

    const Duration advert = c.advert_interval("web");
    const Duration mdi = c.worst_master_down_interval("web");
    MESSAGE("master crash: new MASTER after "
            << fmt_s(to_master) << " (bound " << fmt_s(mdi + advert) << "), IP moved after "
            << fmt_s(to_ip) << " (bound " << fmt_s(mdi + advert + provider_bound(o)) << ")");
    CHECK(to_master <= mdi + advert);
    CHECK(to_ip <= mdi + advert + provider_bound(o));
    CHECK(c.moves_since("web", fault) == 1);
    settle_and_hold(c, 60s);
}

TEST_CASE("sim: graceful stop of the master - the named successor takes over on receipt") {
    const SimOptions o = hot_standby({150, 100});
    SimCluster c(o);
    bring_up(c);
    const auto old_master = c.master("web");
    REQUIRE(old_master);
    const auto backup = c.backups("web").at(0);
    // The resign names the backup (fast resign): no skew_time wait, one network delay.
    const Duration skew = o.net_delay_max;

    const Instant fault = c.now();
    c.stop(*old_master);
    REQUIRE_MESSAGE(c.run_until([&] { return c.master("web") == backup; }, 60s), report(c));
    const Duration to_master = c.now() - fault;
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == backup; }, 60s), report(c));
    const Duration to_ip = c.now() - fault;
    require_ok(c);
    MESSAGE("graceful stop: new MASTER after "
            << fmt_s(to_master) << " (bound one network delay " << fmt_s(skew)
            << "), IP moved after " << fmt_s(to_ip) << " (bound " << fmt_s(skew + provider_bound(o))
            << ")");
    CHECK(to_master <= skew);
    CHECK(to_ip <= skew + provider_bound(o));
    settle_and_hold(c, 60s);
}

TEST_CASE("sim: master's containers drop from 10 to 9 - fault, resign, backup takes over") {
    const SimOptions o = hot_standby({150, 100});
    SimCluster c(o);
    bring_up(c);
    const auto old_master = c.master("web");
    REQUIRE(old_master);
    const auto backup = c.backups("web").at(0);
    // The resign names the backup as successor: it takes over on receipt, no skew_time.
    const Duration skew = o.net_delay_max;

    const Instant fault = c.now();
    c.set_health(*old_master, "containers", health::Verdict::Fail, "9/10 running; missing: web-3");
    REQUIRE_MESSAGE(c.run_until([&] { return c.role(*old_master, "web") == Role::Fault; }, 60s),
                    report(c));
    const Duration to_fault = c.now() - fault;
    const Instant faulted = c.now();
    const auto t = c.first_transition("web", Role::Fault, fault);
    REQUIRE(t);
    CHECK(t->reason.find("9/10 running; missing: web-3") != std::string::npos);
    REQUIRE_MESSAGE(c.run_until([&] { return c.master("web") == backup; }, 60s), report(c));
    const Duration to_master = c.now() - faulted;
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == backup; }, 60s), report(c));
    const Duration to_ip = c.now() - faulted;
    require_ok(c);

    const Duration detect = o.checks[0].policy.fall * o.checks[0].interval;
    MESSAGE("containers 10 -> 9: FAULT after "
            << fmt_s(to_fault) << " (bound fall x interval " << fmt_s(detect) << "), backup MASTER "
            << fmt_s(to_master) << " after the resign (bound one network delay " << fmt_s(skew)
            << "), IP moved " << fmt_s(to_ip) << " after the resign (bound "
            << fmt_s(skew + provider_bound(o)) << ")");
    CHECK(to_fault <= detect);
    CHECK(to_master <= skew);
    CHECK(to_ip <= skew + provider_bound(o));
    const auto took = c.first_transition("web", Role::Master, faulted);
    REQUIRE(took);
    CHECK(took->reason.find("named this node its successor") != std::string::npos);
    settle_and_hold(c, 60s);
}

namespace {

// Runs until `done`, tracking the most Masters of `instance` seen at once (after every event).
bool run_counting_masters(SimCluster& c, const std::function<bool()>& done, Duration limit,
                          std::size_t& most) {
    return c.run_until(
        [&] {
            most = std::max(most, c.masters("web").size());
            return done();
        },
        limit);
}

// A fast-resign takeover: the Master's check fails at `fault`, it reaches Fault at `faulted`;
// `successor` is Master `to_master` later (and holds the IP, if asked), with `most` Masters of
// "web" at once seen on the way.
struct Takeover {
    Instant fault{};
    Instant faulted{};
    Duration to_master{};
    std::size_t most = 0;
};

Takeover fail_master_until(SimCluster& c, NodeId old_master, NodeId successor, bool until_holder) {
    Takeover t;
    t.fault = c.now();
    c.set_health(old_master, "containers", health::Verdict::Fail, "0/10 running");
    REQUIRE_MESSAGE(c.run_until([&] { return c.role(old_master, "web") == Role::Fault; }, 60s),
                    report(c));
    t.faulted = c.now();
    REQUIRE_MESSAGE(run_counting_masters(
                        c, [&] { return c.master("web") == successor; }, 60s, t.most),
                    report(c));
    t.to_master = c.now() - t.faulted;
    if (until_holder) {
        REQUIRE_MESSAGE(run_counting_masters(
                            c, [&] { return c.holder("web") == successor; }, 60s, t.most),
                        report(c));
    }
    return t;
}

NodeId with_priority(const SimCluster& c, int priority) {
    for (int n = 0; n < c.size(); ++n) {
        if (c.node(n) != nullptr && c.node(n)->election("web")->configured_priority() == priority) {
            return n;
        }
    }
    FAIL("no node with priority " << priority);
    return 0;
}

}  // namespace

TEST_CASE("sim: fast resign - three nodes, the best backup is named and takes over at once") {
    const SimOptions o = hot_standby({150, 100, 50});
    SimCluster c(o);
    bring_up(c);
    const auto old_master = c.master("web");
    REQUIRE(old_master);
    const NodeId best = with_priority(c, 100);
    const NodeId low = with_priority(c, 50);

    const auto [fault, faulted, to_master, most] = fail_master_until(c, *old_master, best, true);
    c.run_for(2 * c.worst_master_down_interval("web"));  // the others' down timers run out
    require_ok(c);
    MESSAGE("fast resign, 3 nodes: " << c.name(best) << " MASTER " << fmt_s(to_master)
                                     << " after the resign (bound one network delay "
                                     << fmt_s(o.net_delay_max) << "), most masters at once "
                                     << most);
    CHECK(to_master <= o.net_delay_max);
    CHECK(most == 1);
    CHECK(c.master("web") == best);
    CHECK(c.role(low, "web") == Role::Backup);
    CHECK(c.moves_since("web", fault) == 1);
    settle_and_hold(c, 60s);
}

TEST_CASE("sim: fast resign - equal priorities, the greater name is named, the other waits") {
    const SimOptions o = hot_standby({150, 100, 100});
    SimCluster c(o);
    bring_up(c);
    const auto old_master = c.master("web");
    REQUIRE(old_master);
    const auto backups = c.backups("web");
    REQUIRE(backups.size() == 2);
    const NodeId named = c.name(backups[0]) > c.name(backups[1]) ? backups[0] : backups[1];

    const auto [fault, faulted, to_master, most] = fail_master_until(c, *old_master, named, true);
    c.run_for(2 * c.worst_master_down_interval("web"));
    require_ok(c);
    MESSAGE("fast resign, tie 100/100: " << c.name(named) << " MASTER after " << fmt_s(to_master)
                                         << ", most masters at once " << most);
    CHECK(to_master <= o.net_delay_max);
    CHECK(most == 1);
    CHECK(c.master("web") == named);
    CHECK(c.moves_since("web", fault) == 1);
    settle_and_hold(c, 60s);
}

TEST_CASE("sim: fast resign - the named successor is dead, the next backup takes over after MDI") {
    const SimOptions o = hot_standby({150, 100, 50});
    SimCluster c(o);
    bring_up(c);
    const auto old_master = c.master("web");
    REQUIRE(old_master);
    const NodeId best = with_priority(c, 100);
    const NodeId low = with_priority(c, 50);

    // The best backup dies just before the master's check fails: the master still has its
    // recent presence notice and names it; nobody answers.
    c.crash(best);
    c.run_for(500ms);
    const auto [fault, faulted, to_master, most] = fail_master_until(c, *old_master, low, true);
    require_ok(c);
    const Election* e = c.node(low)->election("web");
    const Duration bound = e->master_down_interval() + e->tie_stagger() + o.net_delay_max;
    const auto took = c.first_transition("web", Role::Master, faulted);
    REQUIRE(took);
    MESSAGE("fast resign to a dead successor: "
            << c.name(low) << " MASTER after " << fmt_s(to_master) << " (bound MDI + stagger + "
            << "network " << fmt_s(bound) << "): " << took->reason);
    CHECK(took->reason.find("hand-over to " + c.name(best) + " not taken up") != std::string::npos);
    CHECK(to_master <= bound);
    CHECK(most == 1);
    CHECK(c.moves_since("web", fault) == 1);
    // Back up, it preempts the lower node (preempt on); then the cluster holds still.
    c.restart(best);
    REQUIRE_MESSAGE(
        c.run_until([&] { return c.master("web") == best && c.holder("web") == best; }, 120s),
        report(c));
    settle_and_hold(c, 120s);
}

TEST_CASE("sim: fast resign - a successor in Fault is not named, the healthy one is") {
    const SimOptions o = hot_standby({150, 100, 50});
    SimCluster c(o);
    bring_up(c);
    const auto old_master = c.master("web");
    REQUIRE(old_master);
    const NodeId best = with_priority(c, 100);
    const NodeId low = with_priority(c, 50);

    c.set_health(best, "containers", health::Verdict::Fail, "0/10 running");
    REQUIRE_MESSAGE(c.run_until([&] { return c.role(best, "web") == Role::Fault; }, 60s),
                    report(c));
    c.run_for(100ms);  // its Fault presence notice reaches the master
    const auto [fault, faulted, to_master, most] = fail_master_until(c, *old_master, low, false);
    MESSAGE("fast resign past a faulted backup: " << c.name(low) << " MASTER after "
                                                  << fmt_s(to_master));
    CHECK(to_master <= o.net_delay_max);
    CHECK(most == 1);
    CHECK(c.moves_since("web", fault) <= 1);
    require_ok(c);
}

TEST_CASE("sim: health flapping around the threshold does not flap the IP") {
    SimOptions o = hot_standby({150, 100});
    o.checks[0].policy = health::CheckPolicy{2, 3, 0};  // rise 2, fall 3
    SimCluster c(o);
    bring_up(c);
    const auto master = c.master("web");
    REQUIRE(master);
    const auto backup = c.backups("web").at(0);

    // Two failures, one pass, again and again: never `fall` failures in a row, on both nodes.
    const Instant start = c.now();
    c.set_health_pattern(*master, "containers",
                         {health::Verdict::Fail, health::Verdict::Fail, health::Verdict::Pass});
    c.set_health_pattern(
        backup, "containers",
        {health::Verdict::Pass, health::Verdict::TimedOut, health::Verdict::TimedOut});
    c.set_steady(true);  // any role change or IP move is a violation from here on
    c.run_for(600s);
    require_ok(c);
    const std::size_t transitions = c.transitions().size();
    MESSAGE("flapping 2-of-3 failures for 600 s: " << c.moves_since("web", start)
                                                   << " IP moves, master unchanged");
    CHECK(c.moves_since("web", start) == 0);
    CHECK(c.master("web") == master);

    // One more failure in a row crosses the threshold exactly once: one clean failover.
    c.set_steady(false);
    const Instant cross = c.now();
    c.set_health_pattern(*master, "containers",
                         {health::Verdict::Fail, health::Verdict::Fail, health::Verdict::Fail,
                          health::Verdict::Fail, health::Verdict::Fail, health::Verdict::Pass});
    c.set_health(backup, "containers", health::Verdict::Pass);
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == backup; }, 120s), report(c));
    c.run_for(60s);
    require_ok(c);
    MESSAGE("crossing the threshold: " << c.moves_since("web", cross) << " IP move(s), "
                                       << c.transitions().size() - transitions
                                       << " role changes in 60 s after the move");
    CHECK(c.moves_since("web", cross) == 1);
}

namespace {

struct PartitionCase {
    const char* name;
    std::vector<int> priorities;
    bool preempt;
};

// The node that must end as Master after the heal: with preempt the highest priority; without
// it, among the Masters at heal time the one that outranks the others (RFC 5798 §6.4.3).
NodeId expected_after_heal(const SimCluster& c, const std::vector<NodeId>& masters, bool preempt) {
    std::optional<NodeId> best = preempt ? c.highest("web") : std::nullopt;
    if (best) {
        return *best;
    }
    NodeId winner = masters.at(0);
    for (NodeId m : masters) {
        const int pm = c.node(m)->election("web")->effective_priority();
        const int pw = c.node(winner)->election("web")->effective_priority();
        if (pm > pw || (pm == pw && c.name(m) > c.name(winner))) {
            winner = m;
        }
    }
    return winner;
}

}  // namespace

TEST_CASE("sim: partition between peers that both reach the provider, then heal") {
    const PartitionCase cases[] = {
        {"2 nodes 150/100, preempt", {150, 100}, true},
        {"2 nodes 150/100, nopreempt", {150, 100}, false},
        {"2 nodes 100/100 (tie on name)", {100, 100}, true},
        {"3 nodes 150/100/50, master cut from both", {150, 100, 50}, true},
    };
    for (const auto& pc : cases) {
        CAPTURE(std::string(pc.name));
        SimOptions o = hot_standby(pc.priorities);
        o.instances[0].preempt = pc.preempt;
        SimCluster c(o);
        bring_up(c);
        const auto master = c.master("web");
        REQUIRE(master);
        std::vector<NodeId> others;
        for (NodeId n = 0; n < c.size(); ++n) {
            if (n != *master) {
                others.push_back(n);
            }
        }

        const Instant cut = c.now();
        c.partition({*master}, others);
        REQUIRE_MESSAGE(c.run_until([&] { return c.masters("web").size() == 2; }, 60s), report(c));
        const Duration to_second = c.now() - cut;
        c.run_for(300s);
        require_ok(c);
        const int moves_during = c.moves_since("web", cut);
        const auto masters = c.masters("web");
        CHECK(masters.size() == 2);  // both sides believe they are master: that is the point
        const NodeId expected = expected_after_heal(c, masters, pc.preempt);

        const Instant heal = c.now();
        c.recover();
        REQUIRE_MESSAGE(c.run_until([&] { return c.masters("web").size() == 1; }, 60s), report(c));
        const Duration to_single = c.now() - heal;
        REQUIRE_MESSAGE(converge(c, 120s), report(c));
        const Duration to_converged = c.now() - heal;
        c.set_steady(true);
        c.run_for(120s);
        require_ok(c);
        const int moves = c.moves_since("web", cut);
        MESSAGE(std::string(pc.name)
                << ": second MASTER " << fmt_s(to_second) << " after the cut; " << moves_during
                << " IP move(s) in 300 s of partition; one MASTER " << fmt_s(to_single)
                << " after the heal, converged after " << fmt_s(to_converged) << "; " << moves
                << " move(s) in all");
        CHECK(moves <= 2);
        CHECK(c.master("web") == expected);
        CHECK(c.holder("web") == expected);
    }
}

TEST_CASE("sim: a heal where the backup steps down before the master hears it as MASTER") {
    // Issue 21, case 8: the backup took over and moved the IP behind a partition; at the heal
    // it heard the master first and stepped down, so the master never heard a MASTER advert,
    // only the backup's presence notices again after a silence. The master must re-read the
    // holder then, not at its next periodic read (reconcile_interval, 30 s).
    SimOptions o = hot_standby({150, 100});
    o.advert_interval = 100ms;
    o.provider.action_min = 500ms;
    o.provider.action_max = 1s;
    SimCluster c(o);
    bring_up(c);
    const auto master = c.master("web");
    REQUIRE(master);
    const auto backups = c.backups("web");
    REQUIRE(backups.size() == 1);
    const NodeId backup = backups[0];
    // Cut just after the master's periodic read, so the next one falls long after the heal.
    auto last_read = [&] { return c.node(*master)->status().instances[0].provider.last_read_at; };
    const auto read_before = last_read();
    REQUIRE_MESSAGE(c.run_until([&] { return last_read() != read_before; }, 40s), report(c));
    const std::uint64_t reads_before = c.provider_calls(*master);

    const Instant cut = c.now();
    c.drop(*master, backup, 1.0);
    c.drop(backup, *master, 1.0);
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == backup; }, 20s), report(c));
    CHECK(c.role(*master, "web") == Role::Master);
    CHECK(c.provider_calls(*master) == reads_before);  // it knows nothing of the move
    // The master's adverts get through first: the backup steps down while its own adverts,
    // MASTER and then the BACKUP presence notice, are still lost.
    c.drop(*master, backup, 0.0);
    REQUIRE_MESSAGE(c.run_until([&] { return c.role(backup, "web") == Role::Backup; }, 5s),
                    report(c));
    const Instant heal = c.now();
    c.recover();
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == *master; }, 25s), report(c));
    const Duration back = c.now() - heal;
    MESSAGE("IP on the backup " << fmt_s(heal - cut) << " after the cut; back on the master "
                                << fmt_s(back) << " after the heal");
    // The next presence notice (every 500 ms), a read, an assign and the action (at most 1 s).
    CHECK(back <= 3s);
    CHECK(c.moves_since("web", cut) == 2);
    settle_and_hold(c, 60s);
    CHECK(c.moves_since("web", cut) == 2);
}

TEST_CASE("sim: preempt vs nopreempt when the old master returns") {
    struct Case {
        const char* name;
        bool preempt;
        Duration preempt_delay;
    };
    const Case cases[] = {
        {"preempt", true, 0s},
        {"preempt_delay 30 s", true, 30s},
        {"nopreempt", false, 0s},
    };
    for (const auto& pc : cases) {
        CAPTURE(std::string(pc.name));
        SimOptions o = hot_standby({150, 100});
        o.instances[0].preempt = pc.preempt;
        o.instances[0].preempt_delay = pc.preempt_delay;
        SimCluster c(o);
        bring_up(c);
        const auto high = c.master("web");
        REQUIRE(high);
        const auto low = c.backups("web").at(0);
        c.crash(*high);
        REQUIRE_MESSAGE(
            c.run_until([&] { return c.holder("web") == low && c.master("web") == low; }, 60s),
            report(c));
        c.run_for(60s);

        const Instant back = c.now();
        c.restart(*high);
        const Duration mdi = c.node(*high)->election("web")->master_down_interval();
        const Duration bound =
            o.checks[0].interval + mdi + pc.preempt_delay + c.advert_interval("web");
        if (pc.preempt) {
            REQUIRE_MESSAGE(c.run_until([&] { return c.master("web") == high; }, 120s), report(c));
            const Duration to_master = c.now() - back;
            REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == high; }, 60s), report(c));
            const Duration to_ip = c.now() - back;
            MESSAGE(std::string(pc.name)
                    << ": returning node MASTER again " << fmt_s(to_master)
                    << " after restart (bound first probe + master_down_interval"
                    << " + preempt_delay + advert = " << fmt_s(bound) << "), IP back after "
                    << fmt_s(to_ip));
            CHECK(to_master <= bound);
            CHECK(to_ip <= bound + provider_bound(o));
        } else {
            c.set_steady(true);
            c.run_for(600s);
            require_ok(c);
            MESSAGE(std::string(pc.name) << ": returning node stays BACKUP for 600 s, IP stays, "
                                         << c.moves_since("web", back) << " moves");
            CHECK(c.master("web") == low);
            CHECK(c.moves_since("web", back) == 0);
            c.set_steady(false);
        }
        settle_and_hold(c, 120s);
    }
}

TEST_CASE("sim: hand-over to a named peer") {
    SimOptions o = hot_standby({150, 100, 50});
    SimCluster c(o);
    bring_up(c);
    const auto master = c.master("web");
    REQUIRE(master);
    // The named peer is the lowest-priority backup, so the election alone would not pick it.
    NodeId target = c.backups("web").at(0);
    for (NodeId b : c.backups("web")) {
        if (c.node(b)->election("web")->effective_priority() <
            c.node(target)->election("web")->effective_priority()) {
            target = b;
        }
    }
    const Duration skew = o.net_delay_max;  // the named peer takes over on receipt

    const Instant asked = c.now();
    c.handover(*master, "web", target);
    REQUIRE_MESSAGE(c.run_until([&] { return c.master("web") == target; }, 60s), report(c));
    const Duration to_master = c.now() - asked;
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == target; }, 60s), report(c));
    const Duration to_ip = c.now() - asked;
    require_ok(c);
    MESSAGE("hand-over to " << c.name(target) << ": MASTER after " << fmt_s(to_master)
                            << " (bound one network delay " << fmt_s(skew) << "), IP moved after "
                            << fmt_s(to_ip));
    CHECK(to_master <= skew);
    CHECK(to_ip <= skew + provider_bound(o));
    CHECK(c.moves_since("web", asked) == 1);

    // The old master does not preempt the peer it handed over to, though it outranks it.
    const Instant held = c.now() + 1ns;
    c.set_steady(true);
    c.run_for(600s);
    require_ok(c);
    CHECK(c.master("web") == target);
    CHECK(c.moves_since("web", held) == 0);
}

TEST_CASE("sim: active-active - two instances on two nodes, one node fails and returns") {
    SimOptions o = hot_standby({150, 100});
    SimInstanceSpec api = o.instances[0];
    api.name = "api";
    api.ip = "203.0.113.20";
    api.priorities = {100, 150};
    api.initial_holder = 1;
    o.instances.push_back(api);
    SimCluster c(o);
    bring_up(c);
    const auto web_master = c.master("web");
    const auto api_master = c.master("api");
    REQUIRE(web_master);
    REQUIRE(api_master);
    REQUIRE(*web_master != *api_master);  // each node is master of its own IP

    const Instant fault = c.now();
    c.crash(*web_master);
    REQUIRE_MESSAGE(c.run_until([&] { return c.master("web") == api_master; }, 60s), report(c));
    const Duration to_master = c.now() - fault;
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == api_master; }, 60s), report(c));
    const Duration to_ip = c.now() - fault;
    CHECK(c.master("api") == api_master);
    CHECK(c.moves_since("api", fault) == 0);
    c.run_for(120s);

    const Instant back = c.now();
    c.restart(*web_master);
    REQUIRE_MESSAGE(
        c.run_until([&] { return c.master("web") == web_master && c.holder("web") == web_master; },
                    120s),
        report(c));
    const Duration to_back = c.now() - back;
    require_ok(c);
    MESSAGE("active-active: surviving node MASTER of both after "
            << fmt_s(to_master) << ", IP moved after " << fmt_s(to_ip)
            << "; returning node has its IP back after " << fmt_s(to_back)
            << "; the other IP moved " << c.moves_since("api", fault) << " times");
    CHECK(to_master <= c.worst_master_down_interval("web") + c.advert_interval("web"));
    CHECK(c.moves_since("api", fault) == 0);
    CHECK(c.moves_since("web", fault) == 2);
    settle_and_hold(c, 60s);
    CHECK(c.master("api") == api_master);
}

TEST_CASE("sim: provider outage (5xx, 429) then recovery - the IP ends on the master") {
    SimOptions o = hot_standby({150, 100});
    SimCluster c(o);
    bring_up(c);
    const auto old_master = c.master("web");
    REQUIRE(old_master);
    const auto backup = c.backups("web").at(0);

    // Every call fails: 5xx for 70 %, 429 (retry-after 5 s) for the rest.
    ProviderFaults outage;
    outage.server_error = 0.7;
    outage.rate_limited = 1.0;
    outage.retry_after = 5s;
    c.set_provider_faults(outage);
    const Instant fault = c.now();
    c.crash(*old_master);
    REQUIRE_MESSAGE(c.run_until([&] { return c.master("web") == backup; }, 60s), report(c));
    const Duration to_master = c.now() - fault;
    c.run_for(300s);
    const std::uint64_t calls_in_outage = c.provider_calls(backup);

    const Instant recovered = c.now();
    c.set_provider_faults(ProviderFaults{});
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == backup; }, 300s), report(c));
    const Duration to_ip = c.now() - recovered;
    require_ok(c);
    // After the outage the next attempt waits at most one capped backoff (or a request timeout),
    // then one provider round.
    const Duration bound =
        o.backoff.cap + o.request_timeout + provider_bound(o) + o.action_poll_interval;
    MESSAGE("provider outage: MASTER after "
            << fmt_s(to_master) << " regardless; " << calls_in_outage
            << " calls in 300 s of outage; IP on the master " << fmt_s(to_ip)
            << " after recovery (bound " << fmt_s(bound) << "); busiest minute "
            << c.max_calls_per_minute(backup) << " calls (limit 250), busiest hour "
            << c.max_calls_per_hour(backup) << " (limit 5000)");
    CHECK(to_master <= c.worst_master_down_interval("web") + c.advert_interval("web"));
    CHECK(to_ip <= bound);
    CHECK(c.max_calls_per_minute(backup) <= 250);
    CHECK(c.max_calls_per_hour(backup) <= 5000);
    settle_and_hold(c, 60s);
}

TEST_CASE("sim: a 429 storm is waited out without exceeding the budget") {
    SimOptions o = hot_standby({150, 100});
    SimCluster c(o);
    bring_up(c);
    const auto old_master = c.master("web");
    REQUIRE(old_master);
    const auto backup = c.backups("web").at(0);

    ProviderFaults storm;
    storm.rate_limited = 1.0;
    storm.retry_after = 30s;
    c.set_provider_faults(storm);
    const Instant fault = c.now();
    // Counted from the fault: the backup may have made a call or two while the cluster came up.
    const std::uint64_t calls_before = c.provider_calls(backup);
    c.crash(*old_master);
    c.run_for(600s);
    const std::uint64_t calls = c.provider_calls(backup) - calls_before;
    c.set_provider_faults(ProviderFaults{});
    const Instant recovered = c.now();
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == backup; }, 120s), report(c));
    require_ok(c);
    MESSAGE("429 storm (retry-after 30 s) for 600 s: " << calls << " calls made ("
                                                       << fmt_s(c.now() - recovered)
                                                       << " to move the IP once it ended)");
    // Retry-After is waited exactly: at most one call per 30 s, plus the first.
    CHECK(calls <= 600 / 30 + 1);
    CHECK(c.moves_since("web", fault) == 1);
    settle_and_hold(c, 60s);
}

TEST_CASE("sim: a hung provider does not disturb the election") {
    SimOptions o = hot_standby({150, 100});
    o.reconcile_interval = 5s;
    SimCluster c(o);
    bring_up(c);
    const auto master = c.master("web");
    REQUIRE(master);
    ProviderFaults hung;
    hung.lost = 1.0;
    c.set_provider_faults(hung);
    c.set_steady(true);  // no role change, the IP stays
    c.run_for(300s);
    require_ok(c);
    const auto* status = c.node(*master)->status().find("web");
    REQUIRE(status != nullptr);
    MESSAGE("hung provider for 300 s: master kept, " << status->provider.failures
                                                     << " timed-out calls, adverts sent "
                                                     << status->adverts_sent);
    CHECK(status->provider.failures > 0);
    c.set_steady(false);
    c.set_provider_faults(ProviderFaults{});
    settle_and_hold(c, 120s);
}

TEST_CASE("sim: DigitalOcean's one-IP-per-droplet rule stops active-active from consolidating") {
    SimOptions o = hot_standby({150, 100});
    o.provider.one_ip_per_droplet = true;
    o.fold_holder_422 = false;  // the provider layer passes the 422 on
    SimInstanceSpec api = o.instances[0];
    api.name = "api";
    api.ip = "203.0.113.20";
    api.priorities = {100, 150};
    api.initial_holder = 1;
    o.instances.push_back(api);
    SimCluster c(o);
    bring_up(c);
    const auto web_master = c.master("web");
    const auto api_master = c.master("api");
    REQUIRE(web_master);
    REQUIRE(api_master);

    const Instant fault = c.now();
    c.crash(*web_master);
    c.run_for(300s);
    require_ok(c);
    const auto t = c.first_transition("web", Role::Fault, fault);
    MESSAGE("one IP per droplet: after the web node died the survivor's web instance "
            << (t ? "went FAULT: " + t->reason : std::string("did not go FAULT"))
            << "; web IP still on the dead droplet: " << (c.holder("web") == web_master)
            << "; survivor's busiest minute " << c.max_calls_per_minute(*api_master) << " calls");
    CHECK(c.holder("web") == web_master);  // refused with 422; the IP stays where it was
    CHECK(c.holder("api") == api_master);
    CHECK(c.moves_since("api", fault) == 0);
    CHECK(c.max_calls_per_minute(*api_master) <= 250);

    c.restart(*web_master);
    settle_and_hold(c, 180s);
    CHECK(c.master("web") == web_master);
}

namespace {

// Replays `capture` to node `to` as if from `as`, one datagram per advert interval (cycling),
// until `done()` holds or `limit` passes; returns whether it held.
bool replay_until(SimCluster& c, const std::deque<std::vector<std::uint8_t>>& capture, NodeId to,
                  NodeId as, const std::function<bool()>& done, Duration limit) {
    const Instant end = c.now() + limit;
    std::size_t next = 0;
    while (c.now() < end) {
        if (done()) {
            return true;
        }
        c.inject(to, as, capture[next++ % capture.size()]);
        if (!c.run_for(c.advert_interval("web"))) {
            return false;
        }
    }
    return done();
}

}  // namespace

TEST_CASE("sim: a restarted backup ignores replays of the dead master's adverts and takes over") {
    const SimOptions o = hot_standby({150, 100});
    SimCluster c(o);
    bring_up(c);
    const NodeId old_master = c.master("web").value();
    const NodeId backup = c.backups("web").at(0);
    const auto capture = c.captured(old_master);
    REQUIRE(capture.size() >= 10);

    c.crash(old_master);
    c.crash(backup);
    c.restart(backup);
    const Instant restart = c.now();
    REQUIRE_MESSAGE(
        replay_until(
            c, capture, backup, old_master, [&] { return c.master("web") == backup; }, 60s),
        report(c));
    const Duration to_master = c.now() - restart;
    REQUIRE_MESSAGE(
        replay_until(
            c, capture, backup, old_master, [&] { return c.holder("web") == backup; }, 60s),
        report(c));
    // Start-up waits for the first passing check, then the master down interval; the replay is
    // stepped one advert interval at a time.
    const Duration bound =
        c.max_check_interval() + c.worst_master_down_interval("web") + 2 * c.advert_interval("web");
    MESSAGE("restarted backup under replay: MASTER after " << fmt_s(to_master) << " (bound "
                                                           << fmt_s(bound) << ")");
    CHECK(to_master <= bound);
    CHECK(c.node(backup)->status().adverts_not_fresh > 0);

    // The replay goes on: the new master neither yields nor moves the IP.
    const Instant steady_from = c.now();
    replay_until(
        c, capture, backup, old_master, [] { return false; }, 30s);
    require_ok(c);
    CHECK(c.master("web") == backup);
    CHECK(c.moves_since("web", steady_from) == 0);
}

TEST_CASE("sim: a restarted master ignores replays of a higher peer's old adverts") {
    const SimOptions o = hot_standby({150, 100});
    SimCluster c(o);
    bring_up(c);
    const NodeId higher = c.master("web").value();
    const NodeId lower = c.backups("web").at(0);
    const auto capture = c.captured(higher);

    c.crash(higher);
    REQUIRE_MESSAGE(c.run_until([&] { return c.holder("web") == lower; }, 60s), report(c));
    REQUIRE(c.master("web") == lower);

    // Still master, same boot: the captures are replays within the window and are dropped.
    // (The clock stopped at the move itself; step past it so that it is not counted below.)
    REQUIRE(c.run_for(1s));
    const auto replays_before = c.node(lower)->status().drops_for(DropReason::Replay);
    const Instant held = c.now();
    replay_until(
        c, capture, lower, higher, [] { return false; }, 10s);
    CHECK(c.master("web") == lower);
    CHECK(c.node(lower)->status().drops_for(DropReason::Replay) > replays_before);

    // Restarted, the replay window is empty; the captures are not fresh for the new boot.
    c.crash(lower);
    c.restart(lower);
    const Instant restart = c.now();
    REQUIRE_MESSAGE(replay_until(
                        c, capture, lower, higher, [&] { return c.master("web") == lower; }, 60s),
                    report(c));
    const Duration to_master = c.now() - restart;
    const Duration bound =
        c.max_check_interval() + c.worst_master_down_interval("web") + 2 * c.advert_interval("web");
    MESSAGE("restarted master under replay of a higher peer: MASTER after "
            << fmt_s(to_master) << " (bound " << fmt_s(bound) << ")");
    CHECK(to_master <= bound);
    replay_until(
        c, capture, lower, higher, [] { return false; }, 30s);
    require_ok(c);
    CHECK(c.master("web") == lower);
    CHECK(c.holder("web") == lower);
    CHECK(c.moves_since("web", held) == 0);
    CHECK(c.node(lower)->status().adverts_not_fresh > 0);
}
