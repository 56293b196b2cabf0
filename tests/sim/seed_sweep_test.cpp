// The seed sweep as a test. FAILOVERD_SIM_SEEDS=N sets how many seeds (1..N) run;
// FAILOVERD_SIM_SEED=N replays exactly one seed and prints its shape and trace tail.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "tests/sim/seed_sweep.hpp"

using namespace failoverd;
using namespace failoverd::sim;

namespace {

// The sanitizer build (Debug, ASan+UBSan) runs a seed about 50 times slower than the
// RelWithDebInfo one (about 0.12 s against 0.006 s of CPU); its default is smaller so the whole
// test command stays within its budget. An explicit FAILOVERD_SIM_SEEDS always wins.
#if defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t kDefaultSeeds = 300;
#else
constexpr std::uint64_t kDefaultSeeds = 2000;
#endif

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') {
        return fallback;
    }
    return std::strtoull(v, nullptr, 10);
}

}  // namespace

TEST_CASE(
    "sim: seed sweep - random faults, a quiet period, a partition; invariants after every event") {
    if (const char* one = std::getenv("FAILOVERD_SIM_SEED"); one != nullptr && *one != '\0') {
        const std::uint64_t seed = std::strtoull(one, nullptr, 10);
        const SeedResult r = run_seed(seed, 200);
        MESSAGE("seed " << seed << ": " << r.config);
        MESSAGE("seed " << seed << ": " << r.faults << " faults, " << r.events << " events, "
                        << format_duration(r.virtual_time) << " of cluster time, at most "
                        << r.partition_moves << " IP move(s) in the partition event");
        CHECK_MESSAGE(r.ok, "seed " << seed << " failed: " << r.failure);
        return;
    }
    const std::uint64_t seeds = env_number("FAILOVERD_SIM_SEEDS", kDefaultSeeds);
    std::uint64_t failures = 0;
    std::uint64_t events = 0;
    Duration cluster_time{0};
    std::uint64_t faults = 0;
    int moves_hist[3] = {0, 0, 0};
    Duration worst_settle{0};
    Duration worst_heal{0};
    const bool verbose = env_number("FAILOVERD_SIM_VERBOSE", 0) != 0;
    for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
        const SeedResult r = run_seed(seed);
        if (verbose) {
            MESSAGE("seed " << seed << (r.ok ? std::string(" ok, ") : std::string(" FAILED, "))
                            << r.events << " events (" << r.adverts << " adverts, " << r.wakes
                            << " timer calls, " << r.stale_wakes << " stale timers, " << r.probes
                            << " probes), " << format_duration(r.virtual_time) << "; " << r.config);
        }
        events += r.events;
        cluster_time += r.virtual_time;
        faults += static_cast<std::uint64_t>(r.faults);
        if (r.ok) {
            ++moves_hist[std::min(r.partition_moves, 2)];
            worst_settle = std::max(worst_settle, r.settle_time);
            worst_heal = std::max(worst_heal, r.heal_time);
            continue;
        }
        ++failures;
        if (failures <= 3) {
            FAIL_CHECK("seed " << seed << " failed (replay: FAILOVERD_SIM_SEED=" << seed << ")\n"
                               << r.config << "\n"
                               << r.failure);
        }
    }
    MESSAGE(seeds << " seeds, " << faults << " faults, " << events << " events, "
                  << format_duration(cluster_time) << " of cluster time; partition events with "
                  << "0/1/2 IP moves: " << moves_hist[0] << "/" << moves_hist[1] << "/"
                  << moves_hist[2] << "; slowest convergence " << format_duration(worst_settle)
                  << " after the quiet period started and " << format_duration(worst_heal)
                  << " after a heal; " << failures << " failed");
    CHECK(failures == 0);
}
