// Time types for the pure core. The core is handed Instants; it never reads a clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace failoverd {

// A clock with no now(): Instants come from the event loop (sd_event_now, CLOCK_MONOTONIC)
// or from the simulator's virtual clock, so decision code cannot read time by accident.
struct MonotonicClock {
    using rep = std::int64_t;
    using period = std::nano;
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<MonotonicClock>;
    static constexpr bool is_steady = true;
};

using Duration = std::chrono::nanoseconds;
using Instant = MonotonicClock::time_point;

inline Instant instant_from_usec(std::uint64_t usec) {
    return Instant{std::chrono::microseconds{usec}};
}

inline std::uint64_t usec_since_epoch(Instant t) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}

inline double seconds(Duration d) {
    return std::chrono::duration<double>(d).count();
}

// "3.61 s", "250 ms": for log lines and reasons.
std::string format_duration(Duration d);

}  // namespace failoverd
