// What one run of a health probe reports. Pure data shared by probes, tracker and core.
#pragma once

#include <string>
#include <string_view>

#include "daemon/core/time.hpp"

namespace failoverd::health {

enum class Verdict { Pass, Fail, TimedOut, Error };

constexpr std::string_view to_string(Verdict v) {
    switch (v) {
        case Verdict::Pass:
            return "pass";
        case Verdict::Fail:
            return "fail";
        case Verdict::TimedOut:
            return "timeout";
        case Verdict::Error:
            return "error";
    }
    return "?";
}

struct ProbeResult {
    Verdict verdict = Verdict::Error;
    std::string reason;  // for operators: "9/10 running; missing: web-3"
    Duration latency{};
    // A failing run that the engine announced first (a docker check re-run on a die, kill,
    // stop, oom, destroy, pause or unhealthy event): HealthTracker counts it as the full fall.
    bool confirms_event = false;

    bool passed() const { return verdict == Verdict::Pass; }
};

}  // namespace failoverd::health
