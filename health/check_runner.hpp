// Builds the probe for a configured check: one place that knows every check type.
#pragma once

#include <memory>

#include "daemon/config.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "daemon/shell/event_loop.hpp"
#include "health/probe.hpp"
#include "health/probe_runner.hpp"

namespace failoverd::health {

// Start-up time: throws std::invalid_argument when the check cannot be built (for example a
// docker name pattern that is not a regular expression). `loop` and `curl` must outlive it.
std::unique_ptr<Probe> make_probe(const CheckConfig& check, EventLoop& loop, CurlMulti& curl);

// The runner schedule of a check (interval and timeout; rise/fall belong to HealthTracker).
ProbeSchedule schedule_of(const CheckConfig& check);

}  // namespace failoverd::health
