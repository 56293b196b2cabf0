#include "daemon/core/node.hpp"

#include <doctest/doctest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace failoverd;
using namespace std::chrono_literals;

namespace {

const Instant t0 = Instant{} + 1000s;
const std::vector<std::uint8_t> kKey(32, 0x5a);

NodeSpec spec(std::string name, int priority, std::string droplet = {}) {
    NodeSpec s;
    s.node_name = std::move(name);
    s.provider_id = std::move(droplet);
    s.boot_epoch = 1;
    s.hmac_key = kKey;
    s.advert_interval = 1s;
    InstanceSpec web;
    web.name = "web";
    web.reserved_ip = "203.0.113.10";
    web.priority = priority;
    s.instances.push_back(web);
    s.seed = 9;
    return s;
}

health::ProbeResult pass() {
    return health::ProbeResult{health::Verdict::Pass, "ok", 1ms};
}

health::ProbeResult fail(std::string why) {
    return health::ProbeResult{health::Verdict::Fail, std::move(why), 1ms};
}

// Nodes on a perfect network with no provider: every SendAdvert reaches every other node.
struct Cluster {
    Instant now = t0;
    std::vector<Node> nodes;
    std::vector<Transitioned> transitions;
    std::vector<CallProvider> calls;
    std::vector<std::string> callers;  // the node that made each of `calls`
    std::vector<RunHook> hooks;
    std::vector<LogNotice> notices;
    // (from, to): datagrams on these one-way links are lost.
    std::set<std::pair<std::string, std::string>> blocked;

    Node& node(const std::string& name) {
        for (auto& n : nodes) {
            if (n.name() == name) {
                return n;
            }
        }
        FAIL("no node " << name);
        return nodes.front();
    }

    void add(NodeSpec s) {
        nodes.emplace_back(std::move(s), now);
        route();
    }

    // Delivers adverts until no node has anything left to say.
    void route() {
        for (bool busy = true; busy;) {
            busy = false;
            for (std::size_t i = 0; i < nodes.size(); ++i) {
                for (auto& action : nodes[i].take_actions()) {
                    busy = true;
                    if (auto* send = std::get_if<SendAdvert>(&action)) {
                        for (std::size_t j = 0; j < nodes.size(); ++j) {
                            if (j != i && !blocked.contains({nodes[i].name(), nodes[j].name()})) {
                                nodes[j].handle(AdvertReceived{send->bytes, nodes[i].name()}, now);
                            }
                        }
                    } else if (auto* t = std::get_if<Transitioned>(&action)) {
                        transitions.push_back(*t);
                    } else if (auto* c = std::get_if<CallProvider>(&action)) {
                        calls.push_back(*c);
                        callers.push_back(nodes[i].name());
                    } else if (auto* n = std::get_if<LogNotice>(&action)) {
                        notices.push_back(*n);
                    } else {
                        hooks.push_back(std::get<RunHook>(action));
                    }
                }
            }
        }
    }

    void run_until(Instant end) {
        for (;;) {
            std::optional<Instant> next;
            for (const auto& n : nodes) {
                auto d = n.next_deadline();
                if (d && (!next || *d < *next)) {
                    next = d;
                }
            }
            if (!next || *next > end) {
                now = end;
                return;
            }
            now = std::max(now, *next);
            for (auto& n : nodes) {
                n.on_deadline(now);
            }
            route();
        }
    }

    void handle(const std::string& name, const Input& input) {
        node(name).handle(input, now);
        route();
    }

    Role role(const std::string& name) { return *node(name).role("web"); }

    // The calls `name` made since the last clear_calls().
    std::vector<CallProvider> calls_of(const std::string& name) const {
        std::vector<CallProvider> out;
        for (std::size_t i = 0; i < calls.size(); ++i) {
            if (callers[i] == name) {
                out.push_back(calls[i]);
            }
        }
        return out;
    }

    void clear_calls() {
        calls.clear();
        callers.clear();
    }

    void reply_holder(const std::string& name, const CallProvider& call, std::string holder) {
        ProviderReplied r;
        r.instance = "web";
        r.request_id = call.request_id;
        r.outcome = ProviderOutcome::Ok;
        r.holder = std::move(holder);
        handle(name, r);
    }
};

// web-1 (150, droplet 1001) MASTER holding the IP, web-2 (100, droplet 2002) BACKUP, both with
// the provider enabled; the calls so far are answered and cleared.
Cluster settled_pair() {
    auto a = spec("web-1", 150, "1001");
    a.provider_enabled = true;
    auto b = spec("web-2", 100, "2002");
    b.provider_enabled = true;
    Cluster c;
    c.add(a);
    c.add(b);
    c.run_until(t0 + 10s);
    REQUIRE(c.role("web-1") == Role::Master);
    REQUIRE(c.role("web-2") == Role::Backup);
    const auto calls = c.calls_of("web-1");
    REQUIRE(calls.size() == 1);
    c.clear_calls();
    c.reply_holder("web-1", calls[0], "1001");
    REQUIRE(c.node("web-1").status().instances[0].provider.phase == ReconcilePhase::Settled);
    REQUIRE(c.calls.empty());
    return c;
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.rfind(prefix, 0) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), std::string::npos, suffix) == 0;
}

// Delivers a's and b's adverts to each other until both are quiet, dropping other actions:
// afterwards each has heard the other's boot, so their adverts are fresh for each other.
void meet(Node& a, Node& b, Instant now) {
    for (bool busy = true; busy;) {
        busy = false;
        for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
            for (auto& act : from->take_actions()) {
                if (auto* s = std::get_if<SendAdvert>(&act)) {
                    busy = true;
                    to->handle(AdvertReceived{s->bytes, from->name()}, now);
                }
            }
        }
    }
}

std::vector<std::vector<std::uint8_t>> sent_by(Node& n) {
    std::vector<std::vector<std::uint8_t>> out;
    for (auto& act : n.take_actions()) {
        if (auto* s = std::get_if<SendAdvert>(&act)) {
            out.push_back(s->bytes);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("Node: rejects a bad spec at start-up") {
    auto bad = spec("web-1", 100);
    bad.hmac_key.resize(8);
    CHECK_THROWS_AS(Node(bad, t0), std::invalid_argument);
    bad = spec("", 100);
    CHECK_THROWS_AS(Node(bad, t0), std::invalid_argument);
    bad = spec("web-1", 100);
    bad.provider_enabled = true;  // but no droplet id
    CHECK_THROWS_AS(Node(bad, t0), std::invalid_argument);
    bad = spec("web-1", 100);
    bad.instances.push_back(bad.instances[0]);
    CHECK_THROWS_AS(Node(bad, t0), std::invalid_argument);
    bad = spec("web-1", 100);
    bad.instances[0].checks = {"nope"};
    CHECK_THROWS_AS(Node(bad, t0), std::invalid_argument);
    bad = spec("web-1", 100);
    bad.advert_interval = 5ms;
    CHECK_THROWS_AS(Node(bad, t0), std::invalid_argument);
}

TEST_CASE("Node: starts every instance in Backup and says so") {
    Node n(spec("web-1", 100), t0);
    auto actions = n.take_actions();
    REQUIRE(actions.size() == 3);
    CHECK(std::get<Transitioned>(actions[0]).to == Role::Backup);
    CHECK(std::get<RunHook>(actions[1]).to == Role::Backup);
    CHECK(std::holds_alternative<SendAdvert>(actions[2]));  // presence
    CHECK(n.next_deadline() == t0 + 3609375us + n.election("web")->tie_stagger());
    CHECK(n.election("web")->tie_stagger() < 1000ms / 16);
    const auto& st = n.status();
    REQUIRE(st.instances.size() == 1);
    CHECK(st.instances[0].role == Role::Backup);
    CHECK(st.instances[0].last_transition->at == t0);
    CHECK(st.adverts_sent == 1);
}

TEST_CASE("Node: the higher priority node becomes master, the other stays backup") {
    Cluster c;
    c.add(spec("web-1", 150));
    c.add(spec("web-2", 100));
    c.run_until(t0 + 60s);
    CHECK(c.role("web-1") == Role::Master);
    CHECK(c.role("web-2") == Role::Backup);
    CHECK(c.node("web-2").status().instances[0].master == "web-1");
    CHECK(c.node("web-2").status().drops_total() == 0);
    CHECK(c.node("web-2").status().instances[0].adverts_received >= 55);
    // Each knows the other from adverts and presence notices.
    CHECK(c.node("web-1").status().instances[0].peers.size() == 1);
    CHECK(c.node("web-1").status().instances[0].peers[0].state == SenderState::Backup);
}

TEST_CASE("Node: a weight-0 check holds the instance in Fault until its first pass") {
    auto s = spec("web-1", 100);
    s.checks["docker"] = health::CheckPolicy{2, 2, 0};
    s.instances[0].checks = {"docker"};
    Cluster c;
    c.add(s);
    CHECK(c.role("web-1") == Role::Fault);
    CHECK(c.transitions.back().reason == "docker waiting for first result");
    c.handle("web-1", ProbeCompleted{"docker", pass()});
    CHECK(c.role("web-1") == Role::Backup);
    c.handle("web-1", ProbeCompleted{"nope", pass()});
    CHECK(c.node("web-1").status().probe_results_unknown_check == 1);
}

TEST_CASE("Node: first-round results in the spec start the instance without a Fault detour") {
    auto s = spec("web-1", 100);
    s.checks["docker"] = health::CheckPolicy{2, 2, 0};
    s.instances[0].checks = {"docker"};
    s.initial_results["docker"] = pass();
    Cluster c;
    c.add(s);
    CHECK(c.role("web-1") == Role::Backup);
    for (const auto& t : c.transitions) {
        CHECK(t.to != Role::Fault);
    }

    auto failing = spec("web-2", 100);
    failing.checks["docker"] = health::CheckPolicy{2, 2, 0};
    failing.instances[0].checks = {"docker"};
    failing.initial_results["docker"] = fail("9/10 running; missing: web-3");
    c.add(failing);
    CHECK(c.role("web-2") == Role::Fault);
    CHECK(c.transitions.back().reason.find("missing: web-3") != std::string::npos);
}

TEST_CASE("Node: a master whose containers fail names the backup, which takes over on receipt") {
    auto a = spec("web-1", 150);
    a.checks["docker"] = health::CheckPolicy{1, 1, 0};
    a.instances[0].checks = {"docker"};
    Cluster c;
    c.add(a);
    c.handle("web-1", ProbeCompleted{"docker", pass()});
    c.add(spec("web-2", 100));
    c.run_until(t0 + 10s);
    REQUIRE(c.role("web-1") == Role::Master);
    const Instant fault_at = c.now;
    c.handle("web-1", ProbeCompleted{"docker", fail("9/10 running; missing: web-3")});
    CHECK(c.role("web-1") == Role::Fault);
    // web-1 knew web-2 from its presence notices and named it: no skew time.
    c.run_until(fault_at);
    CHECK(c.role("web-2") == Role::Master);
    CHECK(c.transitions.back().reason ==
          "master web-1 resigned (priority 0) and named this node its successor");
    CHECK(c.node("web-1").status().instances[0].fault_reason ==
          std::optional<std::string>("docker failing: 9/10 running; missing: web-3"));
}

TEST_CASE("Node: a failing weighted check lowers the priority and a preempting peer takes over") {
    auto a = spec("web-1", 150);
    a.checks["http"] = health::CheckPolicy{1, 1, -100};
    a.instances[0].checks = {"http"};
    Cluster c;
    c.add(a);
    c.handle("web-1", ProbeCompleted{"http", pass()});
    c.add(spec("web-2", 100));
    c.run_until(t0 + 10s);
    REQUIRE(c.role("web-1") == Role::Master);
    c.handle("web-1", ProbeCompleted{"http", fail("HTTP 500")});
    CHECK(c.node("web-1").status().instances[0].effective_priority == 50);
    c.run_until(c.now + 5s);
    CHECK(c.role("web-2") == Role::Master);
    CHECK(c.role("web-1") == Role::Backup);
}

TEST_CASE("Node: equal-priority backups do not take over at the same instant") {
    Cluster c;
    c.add(spec("web-1", 200));
    c.add(spec("web-2", 100));
    c.add(spec("web-3", 100));
    c.add(spec("web-4", 100));
    c.run_until(t0 + 10s);
    REQUIRE(c.role("web-1") == Role::Master);
    const std::size_t before = c.transitions.size();
    c.handle("web-1", Shutdown{});
    c.run_until(c.now + 10s);
    int masters = 0;
    int became_master = 0;
    for (const auto* name : {"web-2", "web-3", "web-4"}) {
        masters += c.role(name) == Role::Master ? 1 : 0;
    }
    for (std::size_t i = before; i < c.transitions.size(); ++i) {
        became_master += c.transitions[i].to == Role::Master ? 1 : 0;
    }
    CHECK(masters == 1);
    CHECK(became_master == 1);  // nobody was master for a moment and stepped down again
}

TEST_CASE("Node: maintenance puts every instance in Fault and back") {
    Cluster c;
    c.add(spec("web-1", 150));
    c.add(spec("web-2", 100));
    c.run_until(t0 + 10s);
    c.handle("web-1", AdminMaintenance{true});
    CHECK(c.role("web-1") == Role::Fault);
    CHECK(c.node("web-1").status().maintenance);
    CHECK(c.node("web-1").status().instances[0].fault_reason ==
          std::optional<std::string>("maintenance"));
    c.run_until(c.now + 1s);
    CHECK(c.role("web-2") == Role::Master);
    c.handle("web-1", AdminMaintenance{false});
    CHECK(c.role("web-1") == Role::Backup);
    c.run_until(c.now + 10s);
    CHECK(c.role("web-1") == Role::Master);  // preempt: back to the higher node
}

TEST_CASE("Node: hand-over to a named peer, and the old master holds back") {
    Cluster c;
    c.add(spec("web-1", 200));
    c.add(spec("web-2", 100));
    c.add(spec("web-3", 150));
    c.run_until(t0 + 10s);
    REQUIRE(c.role("web-1") == Role::Master);
    const Instant at = c.now;
    c.handle("web-1", AdminHandover{"web", std::string("web-2")});
    c.run_until(at + 700ms);
    CHECK(c.role("web-2") == Role::Master);
    c.run_until(at + 60s);
    CHECK(c.role("web-2") == Role::Master);
    CHECK(c.role("web-1") == Role::Backup);
    CHECK(c.role("web-3") == Role::Backup);
    c.handle("web-3", AdminHandover{"web", std::nullopt});  // not master: ignored
    CHECK(c.node("web-3").status().handovers_ignored == 1);
}

TEST_CASE("Node: a resign overtaken in the network by the next advert still counts") {
    Node a(spec("web-1", 200), t0);
    Node b(spec("web-2", 100), t0);
    meet(a, b, t0);
    a.on_deadline(*a.next_deadline());
    REQUIRE(a.role("web") == Role::Master);
    Instant now = *a.next_deadline();
    a.on_deadline(now);
    for (auto& act : a.take_actions()) {
        if (auto* s = std::get_if<SendAdvert>(&act)) {
            b.handle(AdvertReceived{s->bytes, "a"}, now);
        }
    }
    a.handle(AdminHandover{"web", std::string("web-2")}, now);
    std::vector<std::vector<std::uint8_t>> sent;
    for (auto& act : a.take_actions()) {
        if (auto* s = std::get_if<SendAdvert>(&act)) {
            sent.push_back(s->bytes);
        }
    }
    REQUIRE(sent.size() == 2);  // the hand-over advert, then the presence notice
    b.handle(AdvertReceived{sent[1], "a"}, now);
    b.handle(AdvertReceived{sent[0], "a"}, now);
    CHECK(b.status().drops_total() == 0);
    // The named peer took over on receipt, though the resign came second.
    CHECK(b.role("web") == Role::Master);
}

TEST_CASE("Node: a resign with no backup heard keeps RFC 5798's skew wait") {
    Node a(spec("web-1", 200), t0);
    Node b(spec("web-2", 100), t0);
    a.take_actions();
    // a hears b's boot (so its adverts are fresh for b) but not yet as a current backup.
    for (auto& act : b.take_actions()) {
        if (auto* s = std::get_if<SendAdvert>(&act)) {
            a.handle(AdvertReceived{s->bytes, "b"}, t0);
        }
    }
    a.take_actions();
    a.on_deadline(*a.next_deadline());
    REQUIRE(a.role("web") == Role::Master);
    a.take_actions();
    a.handle(Shutdown{}, a.next_deadline().value());
    const Instant now = t0 + 2s;  // before b's own down timer and presence notice
    bool resign_seen = false;
    for (auto& act : a.take_actions()) {
        if (auto* s = std::get_if<SendAdvert>(&act)) {
            const auto decoded = decode_advert(s->bytes, spec("web-1", 200).hmac_key);
            REQUIRE(std::holds_alternative<Advert>(decoded));
            const Advert& adv = std::get<Advert>(decoded);
            if (adv.state == SenderState::Master) {
                resign_seen = true;
                CHECK(adv.priority == 0);
                CHECK_FALSE(adv.handover_target.has_value());
                CHECK_FALSE(adv.successor);
            }
            b.handle(AdvertReceived{s->bytes, "a"}, now);
        }
    }
    CHECK(resign_seen);
    CHECK(b.role("web") == Role::Backup);
    CHECK(b.next_deadline() == now + 609375us + b.election("web")->tie_stagger());
}

TEST_CASE("Node: the successor is the best backup heard recently; stale and faulted ones are not") {
    auto make = [](const std::string& name, int priority) { return spec(name, priority); };
    Cluster c;
    c.add(make("web-1", 200));
    c.add(make("web-2", 100));
    c.add(make("web-3", 150));
    c.add(make("web-4", 150));  // ties with web-3: the greater name wins
    c.run_until(t0 + 20s);
    REQUIRE(c.role("web-1") == Role::Master);
    const Instant at = c.now;
    c.handle("web-1", AdminMaintenance{true});
    CHECK(c.role("web-1") == Role::Fault);
    c.run_until(at);
    CHECK(c.role("web-4") == Role::Master);
    CHECK(c.transitions.back().reason ==
          "master web-1 resigned (priority 0) and named this node its successor");
    CHECK(c.role("web-3") == Role::Backup);
    CHECK(c.role("web-2") == Role::Backup);
}

TEST_CASE("Node: shutdown resigns, goes to Init and ignores everything after") {
    Cluster c;
    c.add(spec("web-1", 150));
    c.add(spec("web-2", 100));
    c.run_until(t0 + 10s);
    const Instant at = c.now;
    c.handle("web-1", Shutdown{});
    CHECK(c.role("web-1") == Role::Init);
    CHECK(c.node("web-1").status().stopped);
    CHECK_FALSE(c.node("web-1").next_deadline().has_value());
    REQUIRE(c.transitions.size() >= 2);
    // web-1's own transition, then web-2 taking over as the resign (naming it) arrives.
    CHECK(c.transitions[c.transitions.size() - 2].reason == "shutdown");
    CHECK(c.transitions.back().reason ==
          "master web-1 resigned (priority 0) and named this node its successor");
    c.run_until(at);
    CHECK(c.role("web-2") == Role::Master);
    c.handle("web-1", AdminMaintenance{true});
    CHECK(c.role("web-1") == Role::Init);
}

TEST_CASE("Node: bad packets are counted by reason and change nothing") {
    Cluster c;
    c.add(spec("web-1", 150));
    Node& n = c.node("web-1");
    n.handle(AdvertReceived{{1, 2, 3}, "x"}, c.now);
    n.handle(AdvertReceived{std::vector<std::uint8_t>(100, 0), "x"}, c.now);
    Node other(spec("web-2", 100), c.now);
    auto actions = other.take_actions();
    const auto& bytes = std::get<SendAdvert>(actions.back()).bytes;
    n.handle(AdvertReceived{bytes, "x"}, c.now);
    n.handle(AdvertReceived{bytes, "x"}, c.now);  // replayed
    auto forged_key = spec("web-3", 250);
    forged_key.hmac_key = std::vector<std::uint8_t>(32, 0x11);
    Node forger(forged_key, c.now);
    auto forged = forger.take_actions();
    n.handle(AdvertReceived{std::get<SendAdvert>(forged.back()).bytes, "x"}, c.now);
    const auto& st = n.status();
    CHECK(st.drops_for(DropReason::TooShort) == 1);
    CHECK(st.drops_for(DropReason::BadMagic) == 1);
    CHECK(st.drops_for(DropReason::Replay) == 1);
    CHECK(st.drops_for(DropReason::BadMac) == 1);
    CHECK(st.adverts_received == 1);
    CHECK(st.drops_total() == 4);
}

TEST_CASE("Node: a new master claims the IP and a backup never calls the provider") {
    auto a = spec("web-1", 150, "1001");
    a.provider_enabled = true;
    auto b = spec("web-2", 100, "2002");
    b.provider_enabled = true;
    Cluster c;
    c.add(a);
    c.add(b);
    c.run_until(t0 + 10s);
    REQUIRE(c.role("web-1") == Role::Master);
    REQUIRE(c.calls.size() == 1);
    CHECK(c.calls[0].op == ProviderOp::ReadHolder);
    ProviderReplied r;
    r.instance = "web";
    r.request_id = c.calls[0].request_id;
    r.outcome = ProviderOutcome::Ok;
    r.holder = "2002";
    c.handle("web-1", r);
    REQUIRE(c.calls.size() == 2);
    CHECK(c.calls[1].op == ProviderOp::Assign);
    CHECK(c.node("web-1").status().instances[0].provider.phase == ReconcilePhase::Assigning);
    CHECK(c.node("web-2").status().provider_calls == 0);
    // A named successor claims with the assign, in the same turn as its transition.
    c.calls.clear();
    c.handle("web-1", AdminMaintenance{true});
    REQUIRE(c.role("web-2") == Role::Master);
    REQUIRE(c.calls.size() == 1);
    CHECK(c.calls[0].op == ProviderOp::Assign);
    CHECK(c.node("web-2").status().instances[0].provider.phase == ReconcilePhase::Assigning);
}

TEST_CASE("Node: 401 from the provider faults the instance, which recovers after the hold") {
    auto a = spec("web-1", 150, "1001");
    a.provider_enabled = true;
    a.provider_fault_hold = 60s;
    Cluster c;
    c.add(a);
    c.run_until(t0 + 5s);
    REQUIRE(c.role("web-1") == Role::Master);
    REQUIRE(c.calls.size() == 1);
    ProviderReplied r;
    r.instance = "web";
    r.request_id = c.calls[0].request_id;
    r.outcome = ProviderOutcome::Unauthorized;
    r.http_status = 401;
    const Instant at = c.now;
    c.handle("web-1", r);
    CHECK(c.role("web-1") == Role::Fault);
    CHECK(c.transitions.back().reason == "provider rejected the token (HTTP 401)");
    c.run_until(at + 59s);
    CHECK(c.role("web-1") == Role::Fault);
    c.run_until(at + 61s);
    CHECK(c.role("web-1") == Role::Backup);
    CHECK(c.transitions.back().reason ==
          "fault cleared (was: provider rejected the token (HTTP 401))");
}

TEST_CASE("Node: replies for unknown instances or ids are ignored") {
    auto a = spec("web-1", 150, "1001");
    a.provider_enabled = true;
    Cluster c;
    c.add(a);
    ProviderReplied r;
    r.instance = "nope";
    c.handle("web-1", r);
    r.instance = "web";
    r.request_id = 999;
    c.handle("web-1", r);
    CHECK(c.node("web-1").status().provider_stale_replies == 2);
    CHECK(c.calls.empty());
}

TEST_CASE("Node: every transition runs the hook with the same words") {
    Cluster c;
    c.add(spec("web-1", 150));
    c.run_until(t0 + 10s);
    REQUIRE(c.transitions.size() == c.hooks.size());
    for (std::size_t i = 0; i < c.hooks.size(); ++i) {
        CHECK(c.hooks[i].from == c.transitions[i].from);
        CHECK(c.hooks[i].to == c.transitions[i].to);
        CHECK(c.hooks[i].reason == c.transitions[i].reason);
    }
    CHECK(c.node("web-1").status().instances[0].transitions == 2);
}

TEST_CASE("Node: a master re-reads the holder when a peer silent through a partition is heard") {
    // The heal: web-2 took over and claimed the IP behind a partition, then heard
    // web-1 and stepped down before web-1 heard any of its MASTER adverts. web-1 sees only a
    // BACKUP presence notice, as before the partition, after a long silence.
    Cluster c = settled_pair();
    c.blocked = {{"web-1", "web-2"}, {"web-2", "web-1"}};
    c.run_until(c.now + 6s);
    REQUIRE(c.role("web-2") == Role::Master);
    CHECK(c.calls_of("web-1").empty());
    CHECK(c.notices.empty());
    c.blocked.erase({"web-1", "web-2"});  // web-2 hears web-1 first ...
    c.run_until(c.now + 2s);
    REQUIRE(c.role("web-2") == Role::Backup);
    CHECK(c.calls_of("web-1").empty());
    c.blocked.clear();  // ... and web-1 hears web-2's next presence notice
    c.run_until(c.now + 6s);
    const auto calls = c.calls_of("web-1");
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].op == ProviderOp::ReadHolder);
    REQUIRE(c.notices.size() == 1);
    CHECK(c.notices[0].instance == "web");
    CHECK_MESSAGE(starts_with(c.notices[0].text, "web-2 heard again after "), c.notices[0].text);
    CHECK_MESSAGE(ends_with(c.notices[0].text, " of silence: re-reading the holder"),
                  c.notices[0].text);
    // The existing partition rule reclaims from a backup heard just now.
    c.clear_calls();
    c.reply_holder("web-1", calls[0], "2002");
    const auto next = c.calls_of("web-1");
    REQUIRE(next.size() == 1);
    CHECK(next[0].op == ProviderOp::Assign);
    CHECK(starts_with(c.node("web-1").status().instances[0].provider.note,
                      "IP moved to web-2 (a backup now, heard "));
}

TEST_CASE("Node: a master re-reads the holder when a peer is newly heard as MASTER") {
    Cluster c = settled_pair();
    c.blocked = {{"web-1", "web-2"}};  // web-2 stops hearing web-1; web-1 still hears web-2
    c.run_until(c.now + 5s);
    REQUIRE(c.role("web-2") == Role::Master);
    REQUIRE(c.role("web-1") == Role::Master);
    const auto calls = c.calls_of("web-1");
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].op == ProviderOp::ReadHolder);
    REQUIRE(c.notices.size() == 1);
    CHECK(c.notices[0].text == "web-2 heard as MASTER (priority 100): re-reading the holder");
    // Its next adverts are no news: no more notices or reads while the first is unanswered.
    c.run_until(c.now + 5s);
    CHECK(c.notices.size() == 1);
    CHECK(c.calls_of("web-1").size() == 1);
}

TEST_CASE("Node: a master re-reads again when that peer steps down from MASTER") {
    // The other ordering: web-1 hears web-2 as MASTER and reads at once, but web-2's assign
    // reaches the provider after that read. When web-2 steps down, web-1 reads once more (a
    // second after the first read at the earliest) instead of at the reconcile interval.
    Cluster c = settled_pair();
    c.blocked = {{"web-1", "web-2"}};
    c.run_until(c.now + 5s);
    REQUIRE(c.role("web-2") == Role::Master);
    const auto first = c.calls_of("web-1");
    REQUIRE(first.size() == 1);
    c.clear_calls();
    c.reply_holder("web-1", first[0], "1001");  // before web-2's assign landed
    CHECK(c.calls.empty());
    c.blocked.clear();
    c.run_until(c.now + 2s);
    REQUIRE(c.role("web-2") == Role::Backup);
    REQUIRE(c.notices.size() == 2);
    CHECK(c.notices[1].text ==
          "web-2 stepped down from MASTER (now backup): re-reading the holder");
    const auto second = c.calls_of("web-1");
    REQUIRE(second.size() == 1);
    CHECK(second[0].op == ProviderOp::ReadHolder);
}

TEST_CASE("Node: a master whose adverts could not be sent re-reads when they go out again") {
    Cluster c = settled_pair();
    auto sent = [&](std::size_t failed) {
        c.handle("web-1", AdvertSendResult{"web", 1, failed});
        c.now += 1s;
    };
    // Two failed sends in a row: no backup can have taken over (it needs three missed).
    sent(1);
    sent(1);
    sent(0);
    CHECK(c.calls.empty());
    CHECK(c.notices.empty());
    for (int i = 0; i < 4; ++i) {
        sent(1);
    }
    CHECK(c.calls.empty());  // nothing to do while the network is out
    sent(0);
    const auto calls = c.calls_of("web-1");
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].op == ProviderOp::ReadHolder);
    REQUIRE(c.notices.size() == 1);
    CHECK(c.notices[0].text ==
          "adverts could not be sent to every peer for 4.00 s (4 in a row), now sent again: "
          "re-reading the holder");
    // The same on a backup: it holds no IP and reads nothing.
    c.clear_calls();
    for (int i = 0; i < 4; ++i) {
        c.handle("web-2", AdvertSendResult{"web", 1, 1});
    }
    c.handle("web-2", AdvertSendResult{"web", 1, 0});
    c.handle("web-2", AdvertSendResult{"nope", 1, 0});
    CHECK(c.calls.empty());
    CHECK(c.notices.size() == 1);
}

TEST_CASE("Node: adverts echo the boots heard; only an advert echoing this boot is acted on") {
    Node a(spec("web-1", 200), t0);
    a.take_actions();
    a.on_deadline(*a.next_deadline());
    REQUIRE(a.role("web") == Role::Master);
    NodeSpec b_spec = spec("web-2", 100);
    b_spec.boot_epoch = 7;
    Node b(b_spec, t0);
    // a has not heard b: its Master advert does not echo b's boot and b does not act on it.
    std::vector<std::vector<std::uint8_t>> from_a = sent_by(a);
    REQUIRE_FALSE(from_a.empty());
    const auto first = std::get<Advert>(decode_advert(from_a.back(), kKey));
    CHECK(first.echoes.empty());
    CHECK(first.instance_name == "web");
    const Instant down = b.next_deadline().value();
    b.handle(AdvertReceived{from_a.back(), "a"}, t0 + 1ms);
    CHECK(b.status().adverts_not_fresh == 1);
    CHECK(b.status().find("web")->adverts_not_fresh == 1);
    CHECK(b.election("web")->master_name().empty());
    CHECK(b.status().find("web")->peers.empty());
    // b learnt a's boot and announces at once, echoing it.
    const auto from_b = sent_by(b);
    REQUIRE_FALSE(from_b.empty());
    const auto presence = std::get<Advert>(decode_advert(from_b.back(), kKey));
    CHECK(presence.state == SenderState::Backup);
    CHECK((presence.echoes == std::vector<EpochEcho>{{"web-1", 1}}));
    // a hears b's new boot and announces with an echo of it: fresh for b.
    for (const auto& bytes : from_b) {
        a.handle(AdvertReceived{bytes, "b"}, t0 + 2ms);
    }
    // b's start-up notice was sent before b heard a; its announce echoes a's boot.
    CHECK(a.status().adverts_not_fresh == 1);
    CHECK(a.status().find("web")->peers.size() == 1);
    from_a = sent_by(a);
    REQUIRE_FALSE(from_a.empty());
    const auto announce = std::get<Advert>(decode_advert(from_a.back(), kKey));
    CHECK(announce.state == SenderState::Master);
    CHECK(announce.fresh_for("web-2", 7));
    b.handle(AdvertReceived{from_a.back(), "a"}, t0 + 3ms);
    CHECK(b.election("web")->master_name() == "web-1");
    CHECK(b.next_deadline().value() > down);
}

TEST_CASE(
    "Node: after a restart, replays of the old master neither hold it in Backup nor make it "
    "yield") {
    Cluster c;
    c.add(spec("web-1", 200));
    c.add(spec("web-2", 100));
    c.run_until(t0 + 10s);
    REQUIRE(c.role("web-1") == Role::Master);
    // Capture web-1's next advert, as an attacker on the path would.
    Node& master = c.node("web-1");
    master.on_deadline(master.next_deadline().value());
    const auto captured = sent_by(master);
    REQUIRE_FALSE(captured.empty());

    // web-1 is gone; web-2 restarts (a new boot) and hears nothing but the replay.
    NodeSpec restarted = spec("web-2", 100);
    restarted.boot_epoch = 2;
    Node b(restarted, c.now);
    b.take_actions();
    const Instant start = c.now;
    Instant now = start;
    while (b.role("web") != Role::Master && now < start + 30s) {
        now += 100ms;
        b.handle(AdvertReceived{captured.back(), "web-1"}, now);
        b.take_actions();
        if (b.next_deadline() && *b.next_deadline() <= now) {
            b.on_deadline(now);
            b.take_actions();
        }
    }
    CHECK(b.role("web") == Role::Master);
    CHECK(now - start <= b.election("web")->master_down_interval() + 200ms);
    CHECK(b.status().adverts_not_fresh >= 1);

    // As master it keeps ignoring the higher-priority capture (now a replay within its window
    // or not fresh): no yield.
    for (int i = 0; i < 20; ++i) {
        now += 100ms;
        b.handle(AdvertReceived{captured.back(), "web-1"}, now);
    }
    CHECK(b.role("web") == Role::Master);
}

TEST_CASE("Node: adverts for an instance not configured here are counted per peer and name") {
    Node a(spec("web-1", 200), t0);
    NodeSpec other = spec("web-2", 100);
    other.instances[0].name = "www";
    Node b(other, t0);
    a.take_actions();
    for (const auto& bytes : sent_by(b)) {
        a.handle(AdvertReceived{bytes, "b"}, t0);
        a.handle(AdvertReceived{bytes, "b"}, t0);
    }
    const auto& st = a.status();
    CHECK(st.drops_for(DropReason::UnknownInstance) >= 2);
    REQUIRE(st.foreign_instances.size() == 1);
    CHECK(st.foreign_instances[0].peer == "web-2");
    CHECK(st.foreign_instances[0].instance == "www");
    CHECK(st.foreign_instances[0].adverts == st.drops_for(DropReason::UnknownInstance));
}
