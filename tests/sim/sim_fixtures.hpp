// Cluster shapes and measuring helpers shared by the scenarios.
#pragma once

#include <string>
#include <vector>

#include "tests/sim/sim_cluster.hpp"

namespace failoverd::sim {

// The seed's set-up: a hot and a standby droplet (or more), one reserved IP ("web"), one Docker
// check that must see all containers (weight 0), adverts every second, DigitalOcean timings.
inline SimOptions hot_standby(std::vector<int> priorities, std::uint64_t seed = 1) {
    SimOptions o;
    o.seed = seed;
    o.nodes = static_cast<int>(priorities.size());
    o.checks.push_back(
        SimCheckSpec{"containers", health::CheckPolicy{2, 2, 0}, std::chrono::seconds(2)});
    SimInstanceSpec web;
    web.name = "web";
    web.ip = "203.0.113.10";
    web.priorities = std::move(priorities);
    web.checks = {"containers"};
    web.initial_holder = 0;
    o.instances.push_back(web);
    return o;
}

// "3.61 s", "250 ms" for MESSAGE lines.
inline std::string fmt_s(Duration d) {
    return format_duration(d);
}

// Runs until the cluster has converged (one healthy Master per instance holding its IP) or the
// limit passes; returns whether it converged.
inline bool converge(SimCluster& c, Duration limit) {
    return c.run_until([&] { return c.check_converged(false); }, limit);
}

// Worst time for the IP to move once a node is Master: read the holder and post the assign
// (two round trips), then the provider's action time.
inline Duration provider_bound(const SimOptions& o) {
    return 4 * o.provider.latency_max + o.provider.action_max;
}

}  // namespace failoverd::sim
