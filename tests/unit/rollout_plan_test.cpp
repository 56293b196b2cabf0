#include <doctest/doctest.h>

#include "cli/rollout_command.hpp"

using failoverd::cli::host_state_of;
using failoverd::cli::HostState;
using failoverd::cli::plan_rollout;
using failoverd::cli::shell_quote;
using failoverd::cli::substitute_host;
using nlohmann::json;

namespace {

json instance(const std::string& name, const std::string& role, bool passing = true,
              std::optional<bool> holder_is_self = std::nullopt) {
    json i{
        {"name", name},
        {"role", role},
        {"reserved_ip", "203.0.113.10"},
        {"checks",
         json::array({{{"name", "docker"},
                       {"state", passing ? "passing" : "failing"},
                       {"reason", passing ? "10/10 running" : "9/10 running; missing: web-3"}}})}};
    if (holder_is_self) {
        i["provider"] = {{"holder_is_self", *holder_is_self}};
    }
    return i;
}

json status(const std::string& node, json instances, const std::string& phase = "running") {
    return {{"node", node}, {"phase", phase}, {"instances", std::move(instances)}};
}

HostState state(const std::string& host, const std::string& role, bool passing = true) {
    return host_state_of(host, status(host, json::array({instance("web", role, passing)})));
}

}  // namespace

TEST_CASE("host_state_of reads roles, failing checks and who holds the IP") {
    const HostState s = host_state_of(
        "h1", json{{"ok", true},
                   {"status", status("node-1", json::array({instance("web", "MASTER", true, false),
                                                            instance("db", "BACKUP", false)}))}});
    CHECK(s.node == "node-1");
    CHECK(s.running);
    CHECK(s.is_master("web"));
    CHECK_FALSE(s.is_master("db"));
    // The provider says the IP is elsewhere although this node is MASTER: not holding.
    CHECK_FALSE(s.holds("web"));
    REQUIRE(s.failing.size() == 1);
    CHECK(s.failing[0] == "check docker failing: 9/10 running; missing: web-3");
    CHECK_FALSE(s.healthy());
    CHECK(s.describe_problems() == "check docker failing: 9/10 running; missing: web-3");
}

TEST_CASE("without a provider block, mastership stands for holding the IP") {
    const HostState s = host_state_of("h", status("n", json::array({instance("web", "MASTER")})));
    CHECK(s.holds("web"));
    CHECK(s.healthy());
    const HostState f = host_state_of("h", status("n", json::array({instance("web", "FAULT")})));
    CHECK_FALSE(f.healthy());
    CHECK(f.describe_problems() == "web is FAULT");
    const HostState starting =
        host_state_of("h", status("n", json::array({instance("web", "BACKUP")}), "starting"));
    CHECK_FALSE(starting.healthy());
    CHECK(starting.describe_problems() == "failoverd is not running");
}

TEST_CASE("plan_rollout updates Backups first, in the given order, and Masters last") {
    const auto plan =
        plan_rollout({state("a", "MASTER"), state("b", "BACKUP"), state("c", "BACKUP")});
    REQUIRE_FALSE(plan.error);
    CHECK(plan.order == std::vector<std::string>{"b", "c", "a"});
    REQUIRE(plan.handovers.count("a") == 1);
    CHECK(plan.handovers.at("a") == std::vector<std::string>{"web"});
    CHECK(plan.handovers.count("b") == 0);
}

TEST_CASE("plan_rollout refuses plans that cannot keep one node serving") {
    CHECK(plan_rollout({state("a", "MASTER")}).error);
    CHECK(plan_rollout({state("a", "MASTER"), state("a", "BACKUP")}).error ==
          std::optional<std::string>("host a is given twice"));
    // Two masters of two instances (active-active) and no pure Backup: nothing to update first.
    const HostState a = host_state_of(
        "a", status("a", json::array({instance("web", "MASTER"), instance("db", "BACKUP")})));
    const HostState b = host_state_of(
        "b", status("b", json::array({instance("web", "BACKUP"), instance("db", "MASTER")})));
    const auto plan = plan_rollout({a, b});
    REQUIRE(plan.error);
    CHECK(plan.error->find("no Backup") != std::string::npos);
}

TEST_CASE("substitute_host and shell_quote") {
    CHECK(substitute_host("ssh {host} -- deploy {host}", "n1") == "ssh n1 -- deploy n1");
    CHECK(substitute_host("no placeholder", "n1") == "no placeholder");
    CHECK(shell_quote("status") == "status");
    CHECK(shell_quote("/usr/bin/failoverctl") == "/usr/bin/failoverctl");
    CHECK(shell_quote("two words") == "'two words'");
    CHECK(shell_quote("it's") == "'it'\\''s'");
    CHECK(shell_quote("") == "''");
    CHECK(shell_quote("$(reboot)") == "'$(reboot)'");
}
