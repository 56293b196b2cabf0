// The probe interface: one asynchronous health check run. Intervals, timeouts and jitter
// belong to ProbeRunner, so a probe only does its I/O.
#pragma once

#include <functional>

#include "health/probe_result.hpp"

namespace failoverd::health {

class Probe {
  public:
    virtual ~Probe() = default;

    // Starts one run; must not block. `done` is called once from the loop, never from inside
    // start() (report an immediate failure through EventLoop::post). ProbeRunner fills in
    // ProbeResult::latency from the loop clock. Called only when no run is in progress.
    virtual void start(std::function<void(ProbeResult)> done) = 0;

    // Abandons the run in progress: `done` is not called afterwards. Harmless when idle.
    virtual void cancel() = 0;
};

}  // namespace failoverd::health
