#include "daemon/core/election.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace failoverd;
using namespace std::chrono_literals;

namespace {

const Instant t0 = Instant{} + 1000s;

ElectionConfig config(int priority, std::string name = "web-2", bool preempt = true,
                      Duration preempt_delay = 0s, Duration interval = 1s) {
    ElectionConfig c;
    c.instance = "web";
    c.node_name = std::move(name);
    c.priority = priority;
    c.preempt_mode = preempt;
    c.preempt_delay = preempt_delay;
    c.advertisement_interval = interval;
    return c;
}

struct Drained {
    std::vector<RoleChange> changes;
    std::vector<AdvertToSend> adverts;
};

Drained drain(Election& e) {
    Drained d;
    for (auto& ev : e.take_events()) {
        if (auto* c = std::get_if<RoleChange>(&ev)) {
            d.changes.push_back(*c);
        } else {
            d.adverts.push_back(std::get<AdvertToSend>(ev));
        }
    }
    return d;
}

// A started Backup with its start-up events drained.
Election backup(ElectionConfig c, Instant now = t0) {
    Election e(std::move(c));
    e.start(now);
    drain(e);
    return e;
}

// A Master reached through the down timer, events drained.
Election master(ElectionConfig c, Instant now = t0) {
    Election e = backup(std::move(c), now);
    e.on_deadline(*e.next_deadline());
    REQUIRE(e.role() == Role::Master);
    drain(e);
    return e;
}

ReceivedAdvert advert(std::string sender, int priority, Duration interval = 1s,
                      std::optional<std::string> target = std::nullopt) {
    return ReceivedAdvert{std::move(sender), priority, interval, std::move(target)};
}

std::size_t master_adverts(const Drained& d) {
    std::size_t n = 0;
    for (const auto& a : d.adverts) {
        n += a.state == SenderState::Master ? 1 : 0;
    }
    return n;
}

}  // namespace

TEST_CASE("Election: RFC 5798 timers for priority 100 at 1 s") {
    Election e(config(100));
    CHECK(e.skew_time() == 609375us);              // (256 - 100) / 256 s
    CHECK(e.master_down_interval() == 3609375us);  // 3 s + skew
    Election fast(config(100, "web-2", true, 0s, 10ms));
    CHECK(fast.master_down_interval() == 36093750ns);  // sub-second: 30 ms + 6.09 ms
}

TEST_CASE("Election: starts as backup, announces itself, and waits master_down_interval") {
    Election e(config(100));
    e.start(t0);
    auto d = drain(e);
    REQUIRE(d.changes.size() == 1);
    CHECK(d.changes[0].from == Role::Init);
    CHECK(d.changes[0].to == Role::Backup);
    REQUIRE(d.adverts.size() == 1);
    CHECK(d.adverts[0].state == SenderState::Backup);
    CHECK(d.adverts[0].priority == 100);
    CHECK(e.next_deadline() == t0 + 3609375us);
}

TEST_CASE("Election: backup takes over after master_down_interval") {
    Election e = backup(config(100));
    e.on_deadline(t0 + 3s);  // early and spurious: nothing happens
    CHECK(e.role() == Role::Backup);
    CHECK(drain(e).changes.empty());
    e.on_deadline(t0 + 3609375us);
    auto d = drain(e);
    CHECK(e.role() == Role::Master);
    REQUIRE(d.changes.size() == 1);
    CHECK(d.changes[0].reason == "master down interval expired (no advert since start for 3.61 s)");
    REQUIRE(master_adverts(d) == 1);
    CHECK(d.adverts.back().priority == 100);
    CHECK(e.master_name() == "web-2");
}

TEST_CASE("Election: a master advertises every advertisement_interval") {
    Election e = master(config(100, "web-2", true, 0s, 100ms));
    const Instant start = *e.next_deadline() - 100ms;
    int sent = 0;
    for (int i = 1; i <= 10; ++i) {
        CHECK(e.next_deadline() == start + i * 100ms);
        e.on_deadline(start + i * 100ms);
        sent += static_cast<int>(master_adverts(drain(e)));
    }
    CHECK(sent == 10);
}

TEST_CASE(
    "Election: backup accepting an advert learns master_adver_interval and resets its timer") {
    Election e = backup(config(100));
    e.on_advert(advert("web-1", 150, 200ms), t0 + 1s);
    CHECK(e.master_adver_interval() == 200ms);
    CHECK(e.master_name() == "web-1");
    // 3 * 200 ms + (156 * 200 ms) / 256
    CHECK(e.master_down_interval() == 721875us);
    CHECK(e.next_deadline() == t0 + 1s + 721875us);
    e.on_deadline(t0 + 1s + 721875us);
    auto d = drain(e);
    REQUIRE(d.changes.size() == 1);
    CHECK(d.changes[0].reason == "master down interval expired (no advert from web-1 for 722 ms)");
}

TEST_CASE("Election: an ignored advert does not extend the deadline") {
    Election e = backup(config(150));  // preempt on, no delay
    const auto deadline = e.next_deadline();
    e.on_advert(advert("web-1", 100, 500ms), t0 + 2s);
    CHECK(e.next_deadline() == deadline);
    CHECK(e.master_adver_interval() == 1s);  // not learned from an ignored advert
    CHECK(e.adverts_ignored() == 1);
    e.on_deadline(*deadline);
    CHECK(e.role() == Role::Master);
}

TEST_CASE("Election: which adverts a backup accepts (RFC 5798 §6.4.2)") {
    struct Row {
        const char* what;
        bool preempt;
        int mine;
        int theirs;
        bool accepted;
    };
    const Row rows[] = {
        {"higher, preempt", true, 100, 150, true},    {"equal, preempt", true, 100, 100, true},
        {"lower, preempt", true, 150, 100, false},    {"lower, nopreempt", false, 150, 100, true},
        {"higher, nopreempt", false, 100, 150, true},
    };
    for (const auto& row : rows) {
        CAPTURE(row.what);
        Election e = backup(config(row.mine, "web-2", row.preempt));
        const auto before = e.next_deadline();
        e.on_advert(advert("web-1", row.theirs), t0 + 1s);
        CHECK((e.next_deadline() != before) == row.accepted);
        CHECK(e.adverts_accepted() == (row.accepted ? 1u : 0u));
        CHECK(e.role() == Role::Backup);
    }
}

TEST_CASE("Election: which adverts make a master step down, ties on node name") {
    struct Row {
        const char* what;
        int mine;
        int theirs;
        const char* their_name;
        bool steps_down;
        const char* reason;
    };
    const Row rows[] = {
        {"higher priority", 100, 150, "web-1", true,
         "higher priority advert from web-1 (150 > 100)"},
        {"lower priority", 150, 100, "web-3", false, ""},
        {"equal, greater name", 100, 100, "web-3", true,
         "equal priority advert from web-3 (100 = 100, web-3 > web-2)"},
        {"equal, smaller name", 100, 100, "web-1", false, ""},
    };
    for (const auto& row : rows) {
        CAPTURE(row.what);
        Election e = master(config(row.mine));
        const Instant now = t0 + 10s;
        e.on_advert(advert(row.their_name, row.theirs, 300ms), now);
        auto d = drain(e);
        CHECK((e.role() == Role::Backup) == row.steps_down);
        if (row.steps_down) {
            REQUIRE(d.changes.size() == 1);
            CHECK(d.changes[0].reason == row.reason);
            CHECK(e.master_name() == row.their_name);
            CHECK(e.master_adver_interval() == 300ms);
            CHECK(e.next_deadline() == now + e.master_down_interval());
            CHECK(master_adverts(d) == 0);  // stepping down is not a resign
        } else {
            CHECK(d.changes.empty());
        }
    }
}

TEST_CASE("Election: a master answers a priority-0 advert at once") {
    Election e = master(config(100));
    e.on_advert(advert("web-9", 0), t0 + 10s);
    auto d = drain(e);
    CHECK(e.role() == Role::Master);
    CHECK(master_adverts(d) == 1);
    CHECK(e.next_deadline() == t0 + 11s);
}

TEST_CASE("Election: priority-0 advert makes a backup take over after skew_time") {
    Election e = backup(config(100));
    e.on_advert(advert("web-1", 150), t0 + 1s);
    e.on_advert(advert("web-1", 0), t0 + 2s);
    CHECK(e.next_deadline() == t0 + 2s + 609375us);
    CHECK(e.master_name().empty());
    e.on_deadline(t0 + 2s + 609375us);
    auto d = drain(e);
    CHECK(e.role() == Role::Master);
    REQUIRE(d.changes.size() == 1);
    CHECK(d.changes[0].reason ==
          "master web-1 resigned (priority 0): took over after skew time 609 ms");
}

TEST_CASE("Election: nopreempt backup never takes over from a live lower master") {
    Election e = backup(config(200, "web-2", false));
    for (int i = 1; i <= 100; ++i) {
        e.on_advert(advert("web-1", 50), t0 + i * 1s);
        e.on_deadline(t0 + i * 1s);
    }
    CHECK(e.role() == Role::Backup);
    CHECK(e.master_name() == "web-1");
}

TEST_CASE("Election: preempt_delay holds a higher backup back, then it preempts") {
    Election e = backup(config(200, "web-2", true, 10s));
    e.on_advert(advert("web-1", 100), t0 + 1s);
    CHECK(e.preempt_at() == t0 + 11s);
    // The lower master's adverts are accepted while the delay runs, so no down-timer takeover.
    for (int i = 2; i <= 10; ++i) {
        e.on_advert(advert("web-1", 100), t0 + i * 1s);
        e.on_deadline(t0 + i * 1s);
        CHECK(e.role() == Role::Backup);
    }
    CHECK(e.preempt_at() == t0 + 11s);  // not pushed back by later adverts
    e.on_deadline(t0 + 11s);
    auto d = drain(e);
    CHECK(e.role() == Role::Master);
    REQUIRE(d.changes.size() == 1);
    CHECK(d.changes[0].reason == "preempt_delay 10.00 s elapsed: preempting web-1 (200 > 100)");
}

TEST_CASE("Election: preempt_delay is cancelled when the master outranks us again") {
    Election e = backup(config(200, "web-2", true, 10s));
    e.on_advert(advert("web-1", 100), t0 + 1s);
    REQUIRE(e.preempt_at().has_value());
    e.on_advert(advert("web-1", 250), t0 + 2s);
    CHECK_FALSE(e.preempt_at().has_value());
}

TEST_CASE("Election: a failing weight-0 check puts a master in Fault and it resigns") {
    Election e = master(config(100));
    e.set_health(0, "web failing: 9/10 running", t0 + 10s);
    auto d = drain(e);
    CHECK(e.role() == Role::Fault);
    REQUIRE(d.adverts.size() == 2);
    CHECK(d.adverts[0].state == SenderState::Master);  // resign first ...
    CHECK(d.adverts[0].priority == 0);
    CHECK(d.adverts[1].state == SenderState::Fault);  // ... then announce the fault
    REQUIRE(d.changes.size() == 1);
    CHECK(d.changes[0].reason == "web failing: 9/10 running");
    // No master role while in Fault, whatever arrives.
    e.on_advert(advert("web-1", 1), t0 + 11s);
    e.on_deadline(t0 + 100s);
    CHECK(e.role() == Role::Fault);
    e.set_health(0, std::nullopt, t0 + 101s);
    d = drain(e);
    CHECK(e.role() == Role::Backup);
    REQUIRE(d.changes.size() == 1);
    CHECK(d.changes[0].reason == "fault cleared (was: web failing: 9/10 running)");
    CHECK(e.next_deadline() == t0 + 101s + e.master_down_interval());
}

TEST_CASE("Election: a backup entering Fault sends no resign advert") {
    Election e = backup(config(100));
    e.set_health(0, "maintenance", t0 + 1s);
    auto d = drain(e);
    CHECK(e.role() == Role::Fault);
    CHECK(master_adverts(d) == 0);
}

TEST_CASE("Election: effective priority is configured plus failing weights, clamped") {
    Election e = backup(config(100));
    e.set_health(-30, std::nullopt, t0);
    CHECK(e.effective_priority() == 70);
    CHECK(e.skew_time() == 1'000'000'000ns * 186 / 256);
    e.set_health(-500, std::nullopt, t0);
    CHECK(e.effective_priority() == kPriorityMin);
    Election m = master(config(100));
    m.set_health(-60, std::nullopt, t0 + 10s);
    m.on_deadline(*m.next_deadline());
    auto d = drain(m);
    REQUIRE(master_adverts(d) == 1);
    CHECK(d.adverts[0].priority == 40);
}

TEST_CASE("Election: a master whose priority dropped is preempted by a higher backup") {
    Election a = master(config(150, "web-1"));
    Election b = backup(config(100, "web-2"));
    a.set_health(-100, std::nullopt, t0 + 10s);  // now 50
    Instant now = t0 + 10s;
    // Backup b discards the lower adverts and takes over when its down timer runs out.
    for (int i = 0; i < 10 && b.role() == Role::Backup; ++i) {
        now = std::min(*a.next_deadline(), *b.next_deadline());
        a.on_deadline(now);
        for (auto& ad : drain(a).adverts) {
            b.on_advert(advert("web-1", ad.priority), now);
        }
        b.on_deadline(now);
    }
    CHECK(b.role() == Role::Master);
    auto d = drain(b);
    a.on_advert(advert("web-2", d.adverts.back().priority), now);
    CHECK(a.role() == Role::Backup);
}

TEST_CASE("Election: hand-over to a named peer") {
    Election old_master = master(config(200, "web-1"));
    Election target = backup(config(100, "web-2"));
    Election other = backup(config(150, "web-3"));
    const Instant now = t0 + 20s;
    target.on_advert(advert("web-1", 200), now - 1s);
    other.on_advert(advert("web-1", 200), now - 1s);

    REQUIRE(old_master.handover(std::string("web-2"), now));
    auto d = drain(old_master);
    CHECK(old_master.role() == Role::Backup);
    REQUIRE(d.adverts.size() >= 1);
    CHECK(d.adverts[0].priority == 0);
    CHECK(d.adverts[0].handover_target == std::optional<std::string>("web-2"));
    CHECK(d.changes.at(0).reason == "hand-over to web-2 requested");
    CHECK(old_master.yielding_to() == std::optional<std::string>("web-2"));

    const ReceivedAdvert resign = advert("web-1", 0, 1s, "web-2");
    target.on_advert(resign, now);
    other.on_advert(resign, now);
    // The target takes over on receipt (no skew wait); the others wait the full interval.
    CHECK(target.role() == Role::Master);
    CHECK(drain(target).changes.at(0).reason == "hand-over from web-1 to this node");
    CHECK(other.master_down_timer() == now + other.master_down_interval());
    CHECK(other.yielding_to() == std::optional<std::string>("web-2"));

    // Higher-priority nodes do not preempt the target they yielded to.
    for (int i = 1; i <= 20; ++i) {
        const Instant t = now + i * 1s;
        old_master.on_advert(advert("web-2", 100), t);
        other.on_advert(advert("web-2", 100), t);
        old_master.on_deadline(t);
        other.on_deadline(t);
    }
    CHECK(old_master.role() == Role::Backup);
    CHECK(other.role() == Role::Backup);
}

TEST_CASE("Election: a master resigning on a fault names its successor, which takes over at once") {
    Election old_master = master(config(200, "web-1"));
    Election successor = backup(config(100, "web-2"));
    Election other = backup(config(150, "web-3"));
    const Instant now = t0 + 20s;
    successor.on_advert(advert("web-1", 200), now - 1s);
    other.on_advert(advert("web-1", 200), now - 1s);

    old_master.set_health(0, "web failing: 9/10 running", now, std::string("web-2"));
    auto d = drain(old_master);
    CHECK(old_master.role() == Role::Fault);
    REQUIRE(d.adverts.size() == 2);
    CHECK(d.adverts[0].priority == 0);
    CHECK(d.adverts[0].handover_target == std::optional<std::string>("web-2"));
    CHECK(d.adverts[0].successor);
    CHECK(d.adverts[1].state == SenderState::Fault);

    ReceivedAdvert resign = advert("web-1", 0, 1s, "web-2");
    resign.successor = true;
    successor.on_advert(resign, now);
    other.on_advert(resign, now);
    CHECK(successor.role() == Role::Master);
    CHECK(drain(successor).changes.at(0).reason ==
          "master web-1 resigned (priority 0) and named this node its successor");
    CHECK(other.role() == Role::Backup);
    CHECK(other.master_down_timer() == now + other.master_down_interval());
    // Unlike an operator's hand-over, nobody yields: a higher backup (web-3, 150 > 100; the
    // master's view of priorities was stale) preempts the successor as usual.
    CHECK_FALSE(other.yielding_to().has_value());
    other.on_advert(advert("web-2", 100), now + 1s);
    other.on_deadline(now + 1s + other.master_down_interval());
    CHECK(other.role() == Role::Master);
}

TEST_CASE("Election: a successor in Fault ignores the resign; the others take over after MDI") {
    Election faulted = backup(config(100, "web-2"));
    faulted.set_health(0, "checks failing", t0 + 1s);
    Election other = backup(config(90, "web-3"));
    const Instant now = t0 + 20s;
    ReceivedAdvert resign = advert("web-1", 0, 1s, "web-2");
    resign.successor = true;
    faulted.on_advert(resign, now);
    other.on_advert(resign, now);
    CHECK(faulted.role() == Role::Fault);
    CHECK(other.role() == Role::Backup);
    other.on_deadline(now + other.master_down_interval() - 1ms);
    CHECK(other.role() == Role::Backup);
    other.on_deadline(now + other.master_down_interval());
    CHECK(other.role() == Role::Master);
    CHECK(drain(other).changes.back().reason.find("hand-over to web-2 not taken up") !=
          std::string::npos);
}

TEST_CASE("Election: shutdown names the successor; a resign without one keeps RFC skew") {
    Election e = master(config(100, "web-1"));
    e.shutdown(t0 + 10s, std::string("web-2"));
    auto d = drain(e);
    REQUIRE(master_adverts(d) == 1);
    CHECK(d.adverts[0].handover_target == std::optional<std::string>("web-2"));
    CHECK(d.adverts[0].successor);

    Election plain = master(config(100, "web-1"));
    plain.set_health(0, "maintenance", t0 + 10s, std::nullopt);
    d = drain(plain);
    REQUIRE(master_adverts(d) >= 1);
    CHECK_FALSE(d.adverts[0].handover_target.has_value());
    CHECK_FALSE(d.adverts[0].successor);
}

TEST_CASE("Election: a backup announces a changed effective priority at once") {
    Election e = backup(config(100));
    e.set_health(-30, std::nullopt, t0 + 1s);
    auto d = drain(e);
    REQUIRE(d.adverts.size() == 1);
    CHECK(d.adverts[0].state == SenderState::Backup);
    CHECK(d.adverts[0].priority == 70);
    e.set_health(-30, std::nullopt, t0 + 2s);  // unchanged: nothing
    CHECK(drain(e).adverts.empty());
}

TEST_CASE(
    "Election: hand-over to a peer that never takes over falls back after the down interval") {
    Election e = master(config(200, "web-1"));
    const Instant now = t0 + 20s;
    REQUIRE(e.handover(std::string("web-9"), now));
    e.on_deadline(now + e.master_down_interval());
    CHECK(e.role() == Role::Master);
    CHECK_FALSE(e.yielding_to().has_value());
}

TEST_CASE("Election: hand-over is refused unless master, and to oneself") {
    Election b = backup(config(100));
    CHECK_FALSE(b.handover(std::nullopt, t0));
    Election m = master(config(100, "web-2"));
    CHECK_FALSE(m.handover(std::string("web-2"), t0 + 10s));
    CHECK(m.role() == Role::Master);
    CHECK(m.handover(std::nullopt, t0 + 10s));
    CHECK(m.role() == Role::Backup);
    CHECK(m.yielding_to() == std::optional<std::string>(""));
}

TEST_CASE("Election: shutdown resigns a master and ends in Init") {
    Election e = master(config(100));
    e.shutdown(t0 + 10s);
    auto d = drain(e);
    CHECK(e.role() == Role::Init);
    CHECK(e.stopped());
    REQUIRE(master_adverts(d) == 1);
    CHECK(d.adverts[0].priority == 0);
    REQUIRE(d.changes.size() == 1);
    CHECK(d.changes[0].reason == "shutdown");
    CHECK_FALSE(e.next_deadline().has_value());
    e.on_advert(advert("web-1", 0), t0 + 11s);
    e.set_health(0, std::nullopt, t0 + 11s);
    e.on_deadline(t0 + 100s);
    CHECK(drain(e).changes.empty());
}

TEST_CASE("Election: backups and faulted nodes announce presence every five intervals") {
    Election e = backup(config(100));
    CHECK(e.presence_timer() == t0 + 5s);
    int presences = 0;
    for (int i = 1; i <= 20; ++i) {
        e.on_advert(advert("web-1", 150), t0 + i * 1s);  // a live master
        e.on_deadline(t0 + i * 1s);
        for (const auto& a : drain(e).adverts) {
            CHECK(a.state == SenderState::Backup);
            CHECK(a.priority == 100);
            ++presences;
        }
    }
    CHECK(presences == 4);  // at 5, 10, 15 and 20 s
    CHECK(e.role() == Role::Backup);
    e.set_health(0, "checks failing", t0 + 21s);
    auto d = drain(e);
    REQUIRE(d.adverts.size() == 1);
    CHECK(d.adverts[0].state == SenderState::Fault);
    CHECK(d.adverts[0].priority == 0);
    CHECK(e.next_deadline() == t0 + 26s);
}

TEST_CASE("Election: a fault set before start begins in Fault") {
    Election e(config(100));
    e.set_health(0, "web: waiting for first result", t0);
    e.start(t0);
    auto d = drain(e);
    CHECK(e.role() == Role::Fault);
    CHECK(d.changes.at(0).reason == "web: waiting for first result");
}

TEST_CASE("Election: tie stagger delays the down timer by a fixed share of the interval") {
    ElectionConfig c = config(100);
    c.tie_stagger = 0.05;
    Election e = backup(c);
    CHECK(e.tie_stagger() == 50ms);
    CHECK(e.master_down_timer() == t0 + 3609375us + 50ms);
    e.on_advert(advert("web-1", 150, 200ms), t0 + 1s);
    CHECK(e.tie_stagger() == 10ms);  // follows the learned interval
    CHECK(e.master_down_timer() == t0 + 1s + 721875us + 10ms);
    e.on_advert(advert("web-1", 0, 200ms), t0 + 2s);
    CHECK(e.master_down_timer() == t0 + 2s + e.skew_time() + 10ms);
}

TEST_CASE("Election: while the hand-over target is heard, another lower master is not preempted") {
    Election e = master(config(200, "web-1", true, 500ms));
    const Instant now = t0 + 20s;
    REQUIRE(e.handover(std::string("web-2"), now));
    e.on_advert(advert("web-2", 100), now + 1s);      // the target, now master
    e.on_advert(advert("web-3", 100), now + 1500ms);  // a second master, e.g. after a heal
    CHECK_FALSE(e.preempt_at().has_value());
    e.on_deadline(now + 2s);
    CHECK(e.role() == Role::Backup);
    // Once the target has been silent for a down interval, web-3 is preempted as usual.
    const Instant later = now + 1s + e.master_down_interval();
    e.on_advert(advert("web-3", 100), later);
    CHECK(e.preempt_at() == later + 500ms);
}

TEST_CASE("Election: a backup does not preempt a lower master while a higher one is heard") {
    // After a heal two masters advertise; the higher one will win, so a backup between them
    // must not become a third master.
    for (Duration delay : {Duration(0s), Duration(500ms)}) {
        CAPTURE(delay);
        Election e = backup(config(200, "web-3", true, delay));
        e.on_advert(advert("web-1", 254), t0 + 1s);
        e.on_advert(advert("web-2", 100), t0 + 1200ms);
        CHECK_FALSE(e.preempt_at().has_value());
        CHECK(e.master_name() == "web-1");
        CHECK(e.master_down_timer() == t0 + 1s + e.master_down_interval());
        e.on_deadline(t0 + 1800ms);
        CHECK(e.role() == Role::Backup);
        // The higher master goes silent: the lower one is preempted as usual.
        e.on_deadline(*e.master_down_timer());
        CHECK(e.role() == Role::Master);
    }
}
