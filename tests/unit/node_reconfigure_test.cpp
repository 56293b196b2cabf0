// Node::reconfigure (a SIGHUP reload): what stays, what changes, what is refused.
#include <doctest/doctest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "daemon/core/node.hpp"

using namespace failoverd;
using namespace std::chrono_literals;

namespace {

const Instant t0 = Instant{} + 1000s;
const std::vector<std::uint8_t> kKey(32, 0x5a);

NodeSpec spec(std::string name, int priority) {
    NodeSpec s;
    s.node_name = std::move(name);
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

// Two nodes on a perfect network; actions other than adverts are recorded.
struct Pair {
    Instant now = t0;
    std::vector<Node> nodes;
    std::vector<Transitioned> transitions;
    std::vector<RunHook> hooks;
    std::vector<std::pair<std::string, Advert>> adverts;  // sender name, decoded
    std::vector<std::vector<std::uint8_t>> wire;

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

    void route() {
        for (bool busy = true; busy;) {
            busy = false;
            for (std::size_t i = 0; i < nodes.size(); ++i) {
                for (auto& action : nodes[i].take_actions()) {
                    busy = true;
                    if (auto* send = std::get_if<SendAdvert>(&action)) {
                        auto decoded = decode_advert(send->bytes, kKey);
                        REQUIRE(std::holds_alternative<Advert>(decoded));
                        adverts.emplace_back(nodes[i].name(), std::get<Advert>(decoded));
                        wire.push_back(send->bytes);
                        for (std::size_t j = 0; j < nodes.size(); ++j) {
                            if (j != i) {
                                nodes[j].handle(AdvertReceived{send->bytes, nodes[i].name()}, now);
                            }
                        }
                    } else if (auto* t = std::get_if<Transitioned>(&action)) {
                        transitions.push_back(*t);
                    } else if (auto* h = std::get_if<RunHook>(&action)) {
                        hooks.push_back(*h);
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

    void reconfigure(const std::string& name, NodeSpec s) {
        node(name).reconfigure(std::move(s), now);
        route();
    }

    Role role(const std::string& name, const std::string& instance = "web") {
        return *node(name).role(instance);
    }
};

}  // namespace

TEST_CASE("Node: reconfigure with the same spec keeps the master and says nothing") {
    Pair p;
    p.add(spec("a", 150));
    p.add(spec("b", 100));
    p.run_until(t0 + 10s);
    REQUIRE(p.role("a") == Role::Master);
    const auto transitions = p.transitions.size();
    const auto hooks = p.hooks.size();
    p.reconfigure("a", spec("a", 150));
    p.reconfigure("b", spec("b", 100));
    p.run_until(p.now + 10s);
    CHECK(p.role("a") == Role::Master);
    CHECK(p.role("b") == Role::Backup);
    CHECK(p.transitions.size() == transitions);
    CHECK(p.hooks.size() == hooks);
}

TEST_CASE("Node: a master reloaded below its backup advertises at once and is preempted") {
    Pair p;
    p.add(spec("a", 150));
    p.add(spec("b", 100));
    p.run_until(t0 + 10s);
    REQUIRE(p.role("a") == Role::Master);
    const auto sent = p.adverts.size();
    p.reconfigure("a", spec("a", 50));
    REQUIRE(p.adverts.size() > sent);
    CHECK(p.adverts[sent].first == "a");
    CHECK(p.adverts[sent].second.priority == 50);  // the new priority, before any timer
    CHECK(p.node("a").status().instances[0].configured_priority == 50);
    p.run_until(p.now + 10s);
    CHECK(p.role("b") == Role::Master);
    CHECK(p.role("a") == Role::Backup);
}

TEST_CASE("Node: reconfigure adds and removes instances; a removed master resigns") {
    Pair p;
    p.add(spec("a", 150));
    p.add(spec("b", 100));
    p.run_until(t0 + 10s);
    REQUIRE(p.role("a") == Role::Master);

    auto both = spec("a", 150);
    InstanceSpec db;
    db.name = "db";
    db.reserved_ip = "203.0.113.11";
    db.priority = 100;
    both.instances.push_back(db);
    p.reconfigure("a", both);
    CHECK(p.role("a") == Role::Master);
    CHECK(p.role("a", "db") == Role::Backup);
    CHECK(p.transitions.back().instance == "db");
    CHECK(p.transitions.back().from == Role::Init);

    auto only_db = spec("a", 150);
    only_db.instances = {db};
    const auto sent = p.adverts.size();
    p.reconfigure("a", only_db);
    CHECK_FALSE(p.node("a").role("web").has_value());
    REQUIRE(p.adverts.size() > sent);
    CHECK(p.adverts[sent].second.priority == 0);  // web's master resigned
    CHECK(p.adverts[sent].second.handover_target == std::optional<std::string>("b"));
    // notify_stop for the removed instance (b, named successor, took over in the same turn)
    CHECK(std::any_of(p.hooks.begin(), p.hooks.end(), [](const RunHook& h) {
        return h.instance == "web" && h.from == Role::Master && h.to == Role::Init;
    }));
    p.run_until(p.now + 10s);
    CHECK(p.role("b") == Role::Master);
    CHECK(p.node("a").status().instances.size() == 1);
}

TEST_CASE("Node: reconfigure keeps a check's state when its policy is unchanged") {
    auto s = spec("a", 100);
    s.checks["docker"] = health::CheckPolicy{3, 3, 0};
    s.instances[0].checks = {"docker"};
    Pair p;
    p.add(s);
    p.node("a").handle(ProbeCompleted{"docker", pass()}, p.now);
    p.route();
    REQUIRE(p.role("a") == Role::Backup);
    p.reconfigure("a", s);
    CHECK(p.role("a") == Role::Backup);  // not back to "waiting for first result"

    s.checks["docker"] = health::CheckPolicy{3, 3, -10};
    p.reconfigure("a", s);
    CHECK(p.node("a").status().instances[0].checks[0].state == health::CheckState::Unknown);
}

TEST_CASE("Node: reconfigure refuses a changed identity and changes nothing") {
    Pair p;
    p.add(spec("a", 150));
    p.run_until(t0 + 10s);
    REQUIRE(p.role("a") == Role::Master);
    CHECK_THROWS_AS(p.node("a").reconfigure(spec("z", 150), p.now), std::invalid_argument);
    auto epoch = spec("a", 150);
    epoch.boot_epoch = 2;
    CHECK_THROWS_AS(p.node("a").reconfigure(epoch, p.now), std::invalid_argument);
    auto bad = spec("a", 150);
    bad.instances[0].checks = {"nope"};
    CHECK_THROWS_AS(p.node("a").reconfigure(bad, p.now), std::invalid_argument);
    CHECK(p.role("a") == Role::Master);
    CHECK(p.node("a").status().instances[0].configured_priority == 150);
}

TEST_CASE("Node: an advert captured before a reload is still a replay after it") {
    Pair p;
    p.add(spec("a", 150));
    p.add(spec("b", 100));
    p.run_until(t0 + 5s);
    REQUIRE(!p.wire.empty());
    std::vector<std::uint8_t> captured;
    for (std::size_t i = 0; i < p.adverts.size(); ++i) {
        if (p.adverts[i].first == "a") {
            captured = p.wire[i];
        }
    }
    REQUIRE(!captured.empty());
    p.reconfigure("b", spec("b", 100));
    p.node("b").handle(AdvertReceived{captured, "x"}, p.now);
    CHECK(p.node("b").status().drops_for(DropReason::Replay) == 1);
}

TEST_CASE("Node: an instance removed and added back continues its advert sequence") {
    Pair p;
    auto with_db = spec("a", 150);
    InstanceSpec db;
    db.name = "db";
    db.reserved_ip = "203.0.113.11";
    db.priority = 100;
    with_db.instances.push_back(db);
    p.add(with_db);
    p.run_until(t0 + 5s);
    const std::uint32_t db_id = instance_id_of("db");
    std::uint64_t last = 0;
    for (const auto& [sender, advert] : p.adverts) {
        if (advert.instance_id == db_id) {
            last = std::max(last, advert.sequence);
        }
    }
    REQUIRE(last > 0);
    p.reconfigure("a", spec("a", 150));
    const auto before = p.adverts.size();
    p.reconfigure("a", with_db);
    bool seen = false;
    for (std::size_t i = before; i < p.adverts.size(); ++i) {
        if (p.adverts[i].second.instance_id == db_id) {
            CHECK(p.adverts[i].second.sequence > last);
            seen = true;
        }
    }
    CHECK(seen);
}
