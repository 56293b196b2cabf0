#include "health/docker_verdict.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

using failoverd::health::ContainerHealth;
using failoverd::health::DockerContainer;
using failoverd::health::DockerExpectation;
using failoverd::health::DockerSelector;
using failoverd::health::DockerVerdict;
using failoverd::health::evaluate_containers;
using failoverd::health::parse_containers;
using failoverd::health::parse_health;

namespace {

std::string read_fixture(const std::string& name) {
    std::ifstream in(std::string(FAILOVERD_FIXTURES) + "/docker/" + name);
    REQUIRE_MESSAGE(in.good(), "missing fixture " << name);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::vector<DockerContainer> containers(const std::string& fixture) {
    auto parsed = parse_containers(read_fixture(fixture));
    REQUIRE_MESSAGE(std::holds_alternative<std::vector<DockerContainer>>(parsed),
                    std::get<std::string>(parsed));
    return std::get<std::vector<DockerContainer>>(std::move(parsed));
}

DockerExpectation expect(int n) {
    DockerExpectation e;
    e.expect = n;
    return e;
}

DockerExpectation at_least(int n) {
    DockerExpectation e;
    e.min = n;
    return e;
}

const DockerSelector minitwit({"app=minitwit"}, "");

}  // namespace

TEST_CASE("docker verdict: all containers up passes") {
    const auto v = evaluate_containers(containers("all_up.json"), minitwit, expect(10));
    CHECK(v.ok);
    CHECK(v.reason == "10/10 running");
    CHECK(v.matched == 10);
    CHECK(v.running == 10);
    CHECK(v.missing.empty());
}

TEST_CASE("docker verdict: one stopped container is named as missing") {
    const auto v = evaluate_containers(containers("one_missing.json"), minitwit, expect(10));
    CHECK_FALSE(v.ok);
    CHECK(v.reason == "9/10 running; missing: web-3");
    CHECK(v.missing == std::vector<std::string>{"web-3"});
}

TEST_CASE("docker verdict: a container that vanished is named when it was seen before") {
    auto list = containers("all_up.json");
    std::erase_if(list, [](const DockerContainer& c) { return c.name == "db-1"; });
    const std::set<std::string> known = {"web-1", "db-1"};
    const auto v = evaluate_containers(list, minitwit, expect(10), known);
    CHECK_FALSE(v.ok);
    CHECK(v.reason == "9/10 running; missing: db-1");
    const auto unknown = evaluate_containers(list, minitwit, expect(10));
    CHECK(unknown.reason == "9/10 running");
}

TEST_CASE("docker verdict: an unhealthy container fails although all are running") {
    const auto v = evaluate_containers(containers("one_unhealthy.json"), minitwit, expect(10));
    CHECK_FALSE(v.ok);
    CHECK(v.reason == "10/10 running; api-1 unhealthy");
    CHECK(v.unhealthy == std::vector<std::string>{"api-1"});

    auto relaxed = expect(10);
    relaxed.require_healthy = false;
    const auto r = evaluate_containers(containers("one_unhealthy.json"), minitwit, relaxed);
    CHECK(r.ok);
    CHECK(r.reason == "10/10 running; api-1 unhealthy (not required)");
}

TEST_CASE("docker verdict: a health check still starting is not healthy yet") {
    const auto v = evaluate_containers(containers("health_starting.json"), minitwit, expect(10));
    CHECK_FALSE(v.ok);
    CHECK(v.reason == "10/10 running; api-2 health: starting");
    CHECK(v.starting == std::vector<std::string>{"api-2"});
}

TEST_CASE("docker verdict: the label filter is applied even if the engine ignored it") {
    const auto list = containers("all_up.json");
    REQUIRE(list.size() == 11);  // ten minitwit containers and one other
    CHECK(evaluate_containers(list, minitwit, expect(10)).ok);

    const DockerSelector none({}, "");
    const auto all = evaluate_containers(list, none, expect(10));
    CHECK_FALSE(all.ok);
    CHECK(all.reason == "11/10 running");

    const DockerSelector service({"com.docker.compose.service=web"}, "");
    CHECK(evaluate_containers(list, service, expect(3)).reason == "3/3 running");

    const DockerSelector key_only({"app"}, "");
    CHECK(evaluate_containers(list, key_only, expect(11)).ok);

    const DockerSelector two({"app=minitwit", "com.docker.compose.service=api"}, "");
    CHECK(evaluate_containers(list, two, expect(2)).ok);
}

TEST_CASE("docker verdict: the name pattern is a regex searched in the name") {
    const auto list = containers("one_missing.json");
    const DockerSelector web({}, "^web-[0-9]+$");
    const auto v = evaluate_containers(list, web, expect(3));
    CHECK_FALSE(v.ok);
    CHECK(v.reason == "2/3 running; missing: web-3");

    const DockerSelector both({"app=minitwit"}, "^(api|db)-");
    CHECK(evaluate_containers(list, both, expect(3)).reason == "3/3 running");

    const DockerSelector unanchored({}, "1");
    CHECK(evaluate_containers(list, unanchored, at_least(1)).running == 8);

    CHECK_THROWS_AS(DockerSelector({}, "web-(["), std::regex_error);
}

TEST_CASE("docker verdict: min is a floor, expect is exact") {
    const auto list = containers("one_missing.json");
    CHECK(evaluate_containers(list, minitwit, at_least(8)).ok);
    CHECK(evaluate_containers(list, minitwit, at_least(8)).reason == "9 running (min 8)");
    CHECK_FALSE(evaluate_containers(list, minitwit, expect(8)).ok);
    CHECK(evaluate_containers(list, minitwit, expect(8)).reason == "9/8 running");
    const auto short_min = evaluate_containers(list, minitwit, at_least(10));
    CHECK_FALSE(short_min.ok);
    CHECK(short_min.reason == "9 running (min 10); missing: web-3");

    DockerExpectation both;
    both.expect = 10;
    both.min = 9;
    const auto b = evaluate_containers(list, minitwit, both);
    CHECK_FALSE(b.ok);
    CHECK(b.reason == "9/10 running (min 9); missing: web-3");

    const auto any = evaluate_containers(list, minitwit, DockerExpectation{});
    CHECK(any.ok);
    CHECK(any.reason == "9 running");
}

TEST_CASE("docker verdict: zero matching containers says what was looked for") {
    const auto empty = containers("empty.json");
    const auto v = evaluate_containers(empty, minitwit, expect(10));
    CHECK_FALSE(v.ok);
    CHECK(v.reason == "0 containers match label app=minitwit");

    const DockerSelector both({"app=minitwit"}, "^web-");
    CHECK(evaluate_containers(empty, both, expect(1)).reason ==
          "0 containers match label app=minitwit and name /^web-/");
    CHECK(evaluate_containers(empty, DockerSelector({}, ""), expect(1)).reason == "no containers");

    const auto zero = evaluate_containers(empty, minitwit, expect(0));
    CHECK(zero.ok);
    CHECK(zero.reason == "0/0 running");

    const auto gone = evaluate_containers(empty, minitwit, expect(2), {"web-1", "web-2"});
    CHECK(gone.reason == "0 containers match label app=minitwit; missing: web-1, web-2");
}

TEST_CASE(
    "docker verdict: without a selector the most recently stopped are named, as many as "
    "are missing") {
    // A one-shot run (no container seen before) on a host with old leftovers: web-3 exited 2
    // minutes ago, the others days to months ago or never ran.
    const auto list = containers("host_with_leftovers.json");
    const DockerSelector none({}, "");
    CHECK(evaluate_containers(list, none, expect(11)).reason == "10/11 running; missing: web-3");
    CHECK(evaluate_containers(list, none, expect(12)).reason ==
          "10/12 running; missing: web-3, build-cache");
    CHECK(evaluate_containers(list, none, at_least(13)).reason ==
          "10 running (min 13); missing: web-3, build-cache, db-migrate");
    CHECK(evaluate_containers(list, none, expect(20)).missing ==
          std::vector<std::string>{"web-3", "build-cache", "db-migrate", "old-cron", "scratch"});
    CHECK(evaluate_containers(list, none, expect(10)).reason == "10/10 running");
    // One this check saw running comes first, even when an unrelated one stopped later.
    CHECK(evaluate_containers(list, none, expect(11), {"old-cron"}).reason ==
          "10/11 running; missing: old-cron");
    CHECK(evaluate_containers(list, none, expect(12), {"old-cron", "gone-1"}).reason ==
          "10/12 running; missing: gone-1, old-cron");
}

TEST_CASE("docker verdict: selected stopped containers are named most recently stopped first") {
    auto list = containers("one_missing.json");
    for (auto& c : list) {
        if (c.name == "web-1") {
            c.state = "exited";
            c.stopped_seconds_ago = 3 * 3600;
        }
    }
    CHECK(evaluate_containers(list, minitwit, expect(10)).reason ==
          "8/10 running; missing: web-3, web-1");
}

TEST_CASE("docker verdict: the age of a stopped container from its Status") {
    using failoverd::health::parse_stopped_ago;
    CHECK(parse_stopped_ago("Exited (0) Less than a second ago") == 0);
    CHECK(parse_stopped_ago("Exited (137) 1 second ago") == 1);
    CHECK(parse_stopped_ago("Exited (137) 45 seconds ago") == 45);
    CHECK(parse_stopped_ago("Exited (1) About a minute ago") == 60);
    CHECK(parse_stopped_ago("Exited (137) 2 minutes ago") == 120);
    CHECK(parse_stopped_ago("Exited (0) About an hour ago") == 3600);
    CHECK(parse_stopped_ago("Restarting (1) 3 hours ago") == 3 * 3600);
    CHECK(parse_stopped_ago("Exited (0) 2 days ago") == 2 * 86400);
    CHECK(parse_stopped_ago("Exited (0) 3 weeks ago") == 21 * 86400);
    CHECK(parse_stopped_ago("Exited (0) 5 months ago") == 150 * 86400);
    CHECK(parse_stopped_ago("Exited (0) 2 years ago") == 730 * 86400);
    CHECK_FALSE(parse_stopped_ago("Created").has_value());
    CHECK_FALSE(parse_stopped_ago("Up 5 minutes").has_value());
    CHECK_FALSE(parse_stopped_ago("Exited (0) many fortnights ago").has_value());
    CHECK_FALSE(parse_stopped_ago("ago").has_value());

    const auto list = containers("host_with_leftovers.json");
    for (const auto& c : list) {
        if (c.name == "web-3") {
            CHECK(c.stopped_seconds_ago == 120);
        } else if (c.name == "scratch" || c.running()) {
            CHECK_FALSE(c.stopped_seconds_ago.has_value());
        }
    }
}

TEST_CASE("docker verdict: a long list of missing names is shortened") {
    std::vector<DockerContainer> list;
    for (int i = 1; i <= 8; ++i) {
        DockerContainer c;
        c.name = "web-" + std::to_string(i);
        c.state = "exited";
        c.labels["app"] = "minitwit";
        list.push_back(c);
    }
    CHECK(evaluate_containers(list, minitwit, expect(8)).reason ==
          "0/8 running; missing: web-1, web-2, web-3, web-4, web-5 and 3 more");
}

TEST_CASE("docker verdict: parsing health, names and old engines") {
    CHECK(parse_health("Up 5 minutes (healthy)") == ContainerHealth::Healthy);
    CHECK(parse_health("Up 5 minutes (unhealthy)") == ContainerHealth::Unhealthy);
    CHECK(parse_health("Up 2 seconds (health: starting)") == ContainerHealth::Starting);
    CHECK(parse_health("Up 5 minutes") == ContainerHealth::None);
    CHECK(parse_health("Exited (0) 3 hours ago") == ContainerHealth::None);

    const auto legacy = containers("legacy_no_state.json");
    const auto v = evaluate_containers(legacy, minitwit, expect(10));
    CHECK(v.reason == "9/10 running; missing: web-3");

    auto linked = parse_containers(R"json([
        {"Id": "0123456789abcdef", "Names": ["/other/db-alias", "/db-1"], "State": "running",
         "Status": "Up 1 second", "Labels": null},
        {"Id": "fedcba9876543210ffff", "Names": [], "State": "paused",
         "Status": "Up 1 hour (Paused)"}])json");
    REQUIRE(std::holds_alternative<std::vector<DockerContainer>>(linked));
    const auto& l = std::get<std::vector<DockerContainer>>(linked);
    CHECK(l[0].name == "db-1");
    CHECK(l[0].labels.empty());
    CHECK(l[1].name == "fedcba987654");
    CHECK_FALSE(l[1].running());
}

TEST_CASE("docker verdict: malformed engine answers give a reason, not an exception") {
    auto garbage = parse_containers("{\"Id\": [unterminated");
    REQUIRE(std::holds_alternative<std::string>(garbage));
    CHECK(std::get<std::string>(garbage) == "engine sent invalid JSON");

    auto object = parse_containers(R"({"message":"page not found"})");
    REQUIRE(std::holds_alternative<std::string>(object));
    CHECK(std::get<std::string>(object) ==
          "engine sent unexpected JSON: expected an array of containers, got object");

    auto numbers = parse_containers("[1, 2]");
    REQUIRE(std::holds_alternative<std::string>(numbers));
    CHECK(std::get<std::string>(numbers) ==
          "engine sent unexpected JSON: a container is not an object");
}

TEST_CASE("docker verdict: engine filters carry the labels as the Engine expects them") {
    CHECK(minitwit.engine_filters() == R"({"label":["app=minitwit"]})");
    CHECK(DockerSelector({}, "^web").engine_filters().empty());
    CHECK(DockerSelector({"a", "b=c"}, "").engine_filters() == R"({"label":["a","b=c"]})");
    CHECK(DockerSelector({"a"}, "x").describe() == "label a and name /x/");
}
