#include "health/docker_override_verdict.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using failoverd::Instant;
using failoverd::health::ContainerHealth;
using failoverd::health::DockerContainer;
using failoverd::health::DockerEvent;
using failoverd::health::DockerExpectation;
using failoverd::health::DockerOverrides;
using failoverd::health::DockerSelector;
using failoverd::health::evaluate_containers;
using failoverd::health::OverrideKind;

namespace {

DockerEvent event(const std::string& action, const std::string& name) {
    DockerEvent e;
    e.type = "container";
    e.action = action;
    e.id = "id-" + name;
    e.name = name;
    return e;
}

DockerContainer container(const std::string& name, const std::string& state = "running",
                          ContainerHealth health = ContainerHealth::None) {
    DockerContainer c;
    c.id = "id-" + name;
    c.name = name;
    c.state = state;
    c.status = state == "running" ? "Up 5 minutes" : "Exited (137) 1 second ago";
    c.health = health;
    return c;
}

std::vector<DockerContainer> two_running() {
    return {container("web-1"), container("web-2")};
}

const DockerContainer* find(const std::vector<DockerContainer>& list, const std::string& name) {
    for (const auto& c : list) {
        if (c.name == name) {
            return &c;
        }
    }
    return nullptr;
}

const Instant t0 = Instant{} + 1000s;

}  // namespace

TEST_CASE("docker overrides: failure events say what the listing does not show yet") {
    DockerOverrides o;
    SUBCASE("die, oom and stop: exited") {
        for (const char* action : {"die", "oom", "stop"}) {
            CAPTURE(action);
            DockerOverrides fresh;
            CHECK(fresh.note(event(action, "web-2"), t0) == DockerOverrides::Noted::Added);
            REQUIRE(fresh.size() == 1);
            CHECK(fresh.overrides().at("id-web-2").kind == OverrideKind::Exited);
            const auto over = fresh.apply(two_running(), t0 + 100ms);
            REQUIRE(over.containers.size() == 2);
            CHECK(find(over.containers, "web-1")->running());
            CHECK(find(over.containers, "web-2")->state == "exited");
            CHECK(over.applied == std::vector<std::string>{std::string(action) + " web-2"});
        }
    }
    SUBCASE("destroy: not listed") {
        o.note(event("destroy", "web-2"), t0);
        const auto over = o.apply(two_running(), t0);
        REQUIRE(over.containers.size() == 1);
        CHECK(over.containers[0].name == "web-1");
    }
    SUBCASE("pause: paused") {
        o.note(event("pause", "web-2"), t0);
        CHECK(find(o.apply(two_running(), t0).containers, "web-2")->state == "paused");
    }
    SUBCASE("health_status: unhealthy") {
        o.note(event("health_status: unhealthy", "web-2"), t0);
        const auto over = o.apply(two_running(), t0);
        CHECK(find(over.containers, "web-2")->running());
        CHECK(find(over.containers, "web-2")->health == ContainerHealth::Unhealthy);
    }
    SUBCASE("kill with SIGKILL ends the container: init cannot catch it") {
        for (const char* signal : {"9", "SIGKILL"}) {
            DockerOverrides fresh;
            auto kill = event("kill", "web-2");
            kill.attributes["signal"] = signal;
            CHECK(fresh.note(kill, t0) == DockerOverrides::Noted::Added);
        }
    }
    SUBCASE(
        "kill with a catchable signal is only a signal; other actions and events without an "
        "id say nothing") {
        CHECK(o.note(event("kill", "web-2"), t0) == DockerOverrides::Noted::None);
        auto term = event("kill", "web-2");
        term.attributes["signal"] = "15";
        CHECK(o.note(term, t0) == DockerOverrides::Noted::None);
        CHECK(o.note(event("start", "web-2"), t0) == DockerOverrides::Noted::None);
        CHECK(o.note(event("health_status: healthy", "web-2"), t0) == DockerOverrides::Noted::None);
        auto no_id = event("die", "web-2");
        no_id.id.clear();
        CHECK(o.note(no_id, t0) == DockerOverrides::Noted::None);
        CHECK(o.empty());
    }
}

TEST_CASE("docker overrides: the verdict fails at once on a lagging listing") {
    DockerOverrides o;
    const DockerSelector any({}, "");
    DockerExpectation expect;
    expect.expect = 2;
    const std::set<std::string> known = {"web-1", "web-2"};
    o.note(event("die", "web-2"), t0);
    // The last listing, taken before the die, still shows both running.
    const auto over = o.preview(two_running(), t0 + 1ms);
    const auto v = evaluate_containers(over.containers, any, expect, known);
    CHECK_FALSE(v.ok);
    CHECK(v.reason == "1/2 running; missing: web-2");
    CHECK(o.size() == 1);  // preview keeps it
}

TEST_CASE("docker overrides: they end when the listing agrees") {
    DockerOverrides o;
    SUBCASE("exited: listed as not running") {
        o.note(event("die", "web-2"), t0);
        CHECK(o.apply(two_running(), t0 + 200ms).applied.size() == 1);  // still lagging
        CHECK(o.size() == 1);
        const auto over = o.apply({container("web-1"), container("web-2", "exited")}, t0 + 300ms);
        CHECK(over.applied.empty());
        CHECK(o.empty());
    }
    SUBCASE("exited: not listed at all") {
        o.note(event("die", "web-2"), t0);
        o.apply({container("web-1")}, t0 + 300ms);
        CHECK(o.empty());
    }
    SUBCASE("removed: only once the container is gone from the listing") {
        o.note(event("die", "web-2"), t0);
        o.note(event("destroy", "web-2"), t0 + 10ms);
        CHECK(o.overrides().at("id-web-2").kind == OverrideKind::Removed);
        const auto over = o.apply({container("web-1"), container("web-2", "exited")}, t0 + 300ms);
        CHECK(over.containers.size() == 1);
        CHECK(o.size() == 1);
        o.apply({container("web-1")}, t0 + 400ms);
        CHECK(o.empty());
    }
    SUBCASE("paused: listed as paused") {
        o.note(event("pause", "web-2"), t0);
        o.apply({container("web-1"), container("web-2", "paused")}, t0 + 300ms);
        CHECK(o.empty());
    }
    SUBCASE("unhealthy: listed as unhealthy") {
        o.note(event("health_status: unhealthy", "web-2"), t0);
        o.apply({container("web-1"), container("web-2", "running", ContainerHealth::Healthy)},
                t0 + 100ms);
        CHECK(o.size() == 1);
        o.apply({container("web-1"), container("web-2", "running", ContainerHealth::Unhealthy)},
                t0 + 300ms);
        CHECK(o.empty());
    }
}

TEST_CASE("docker overrides: a later event for the container takes them back") {
    DockerOverrides o;
    SUBCASE("start after die (a restart)") {
        o.note(event("die", "web-2"), t0);
        CHECK(o.note(event("start", "web-2"), t0 + 500ms) == DockerOverrides::Noted::Dropped);
        CHECK(o.empty());
        CHECK(o.apply(two_running(), t0 + 600ms).applied.empty());
    }
    SUBCASE("unpause after pause; but not after die") {
        o.note(event("pause", "web-2"), t0);
        CHECK(o.note(event("unpause", "web-2"), t0) == DockerOverrides::Noted::Dropped);
        o.note(event("die", "web-1"), t0);
        CHECK(o.note(event("unpause", "web-1"), t0) == DockerOverrides::Noted::None);
        CHECK(o.size() == 1);
    }
    SUBCASE("healthy after unhealthy") {
        o.note(event("health_status: unhealthy", "web-2"), t0);
        CHECK(o.note(event("health_status: healthy", "web-2"), t0) ==
              DockerOverrides::Noted::Dropped);
        CHECK(o.empty());
    }
    SUBCASE("an event for another container leaves it") {
        o.note(event("die", "web-2"), t0);
        o.note(event("start", "web-1"), t0);
        CHECK(o.size() == 1);
    }
    SUBCASE("a worse word replaces a milder one, a milder one does not replace a worse") {
        o.note(event("health_status: unhealthy", "web-2"), t0);
        o.note(event("die", "web-2"), t0 + 1ms);
        CHECK(o.overrides().at("id-web-2").kind == OverrideKind::Exited);
        o.note(event("health_status: unhealthy", "web-2"), t0 + 2ms);
        CHECK(o.overrides().at("id-web-2").kind == OverrideKind::Exited);
        CHECK(o.overrides().at("id-web-2").event == "die web-2");
    }
}

TEST_CASE("docker overrides: past the bound the listing wins") {
    DockerOverrides o(5s);
    o.note(event("die", "web-2"), t0);
    CHECK(o.next_expiry() == t0 + 5s);
    CHECK(o.apply(two_running(), t0 + 4900ms).applied.size() == 1);
    const auto over = o.apply(two_running(), t0 + 5001ms);
    CHECK(over.applied.empty());
    CHECK(find(over.containers, "web-2")->running());
    CHECK(o.empty());
    CHECK_FALSE(o.next_expiry().has_value());

    o.note(event("die", "web-1"), t0);
    o.expire(t0 + 4s);
    CHECK(o.size() == 1);
    o.expire(t0 + 6s);
    CHECK(o.empty());
}

TEST_CASE("docker overrides: bounded, the oldest goes first") {
    DockerOverrides o;
    for (std::size_t i = 0; i < failoverd::health::kMaxDockerOverrides + 10; ++i) {
        o.note(event("die", "c" + std::to_string(i)), t0 + std::chrono::milliseconds(i));
    }
    CHECK(o.size() == failoverd::health::kMaxDockerOverrides);
    CHECK(o.overrides().count("id-c0") == 0);
    CHECK(o.overrides().count("id-c1033") == 1);
}
