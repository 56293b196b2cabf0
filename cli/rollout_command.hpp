// `failoverctl rollout`: a zero-downtime rolling update of an HA group from CI. Backups are
// updated first, one at a time, each gated on its checks and its daemon; then each Master hands
// its instances to an updated, healthy Backup, and is updated last. The first failed gate stops
// the rollout before the next host is touched.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "daemon/core/time.hpp"

namespace failoverd::cli {

// What one host's `failoverctl status --json` says, reduced to what the rollout decides on.
struct HostState {
    std::string host;  // as given with --host (substituted for {host})
    std::string node;  // the daemon's node name (what `handover --to` takes)
    bool running = false;
    std::map<std::string, std::string> roles;  // instance -> "MASTER", "BACKUP", "FAULT", "INIT"
    std::map<std::string, std::string> reserved_ips;
    // Instances whose reserved IP the provider reports on this node (provider = none: the
    // instances this node is Master of, since there is nothing else to ask).
    std::vector<std::string> holding;
    std::vector<std::string> failing;  // "check web: 9/10 running; missing: web-3"

    bool masters_any() const;
    bool is_master(const std::string& instance) const;
    bool holds(const std::string& instance) const;
    // Running, no instance in FAULT or INIT, every check passing.
    bool healthy() const;
    std::string describe_problems() const;
};

// Reads the status document (the "status" member of the daemon's answer, or the whole output
// of `failoverctl status --json`).
HostState host_state_of(const std::string& host, const nlohmann::json& status);

struct RolloutPlan {
    std::vector<std::string> order;  // hosts in update order: Backups first, Masters last
    // Master host -> the instances it must hand over before it is updated.
    std::map<std::string, std::vector<std::string>> handovers;
    std::optional<std::string> error;  // why no safe plan exists
};

// Pure: the update order for the hosts' current states (given in --host order).
RolloutPlan plan_rollout(const std::vector<HostState>& hosts);

// Replaces every "{host}" in `text`.
std::string substitute_host(const std::string& text, const std::string& host);

// Quotes `word` for /bin/sh (and for ssh, whose remote side runs a shell too).
std::string shell_quote(const std::string& word);

// `args` are the words after "rollout". Exit 0 when every host was updated and gated, 1 when
// a step failed (the rollout stopped there), 2 on usage errors.
int rollout_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
std::string rollout_usage();

}  // namespace failoverd::cli
