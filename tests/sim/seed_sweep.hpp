// The seed sweep: each seed draws a cluster shape and a random fault schedule, then a quiet
// period (TigerBeetle's liveness phase), then one partition between peers that both reach the
// provider. Invariants are checked after every event by SimCluster; the phase checks here.
#pragma once

#include <cstdint>
#include <string>

#include "daemon/core/time.hpp"

namespace failoverd::sim {

struct SeedResult {
    std::uint64_t seed = 0;
    bool ok = true;
    std::string config;   // one line: the shape drawn from the seed
    std::string failure;  // the first violation, with the trace tail
    std::uint64_t events = 0;
    std::uint64_t adverts = 0;
    std::uint64_t wakes = 0;
    std::uint64_t stale_wakes = 0;
    std::uint64_t probes = 0;
    Duration virtual_time{0};
    int faults = 0;
    int partition_moves = 0;
    Duration settle_time{0};  // quiet period start to converged
    Duration heal_time{
        0};  // heal to converged  // most IP moves of one instance during the partition event
};

// Runs one seed; the same seed gives the same run, event for event.
SeedResult run_seed(std::uint64_t seed, std::size_t trace_lines = 60);

}  // namespace failoverd::sim
