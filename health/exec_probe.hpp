// Exec check: run a command; exit 0 passes. On timeout its process group gets SIGTERM, then
// SIGKILL after a grace period. The first output line goes into the reason.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/child_process.hpp"
#include "daemon/shell/event_loop.hpp"
#include "health/probe.hpp"

namespace failoverd::health {

struct ExecProbeParams {
    std::vector<std::string> command;  // argv
    Duration timeout = std::chrono::seconds(1);
    Duration kill_grace = std::chrono::seconds(2);

    static ExecProbeParams from_config(const CheckConfig& check);
};

// Pure verdict: "exit 0: all good", "exit 3: disk full", "killed by SIGKILL",
// "timed out after 1.00 s", "cannot run /x: No such file or directory".
ProbeResult exec_verdict(const ExecProbeParams& params, const ChildExit& exit,
                         const std::string& first_line);

class ExecProbe : public Probe {
  public:
    ExecProbe(EventLoop& loop, ExecProbeParams params);
    ~ExecProbe() override;

    void start(std::function<void(ProbeResult)> done) override;
    // The running command is terminated (TERM, then KILL) in the background.
    void cancel() override;

  private:
    std::unique_ptr<ChildProcess> take_child(ChildProcess* child);

    EventLoop& loop_;
    ExecProbeParams params_;
    std::unique_ptr<ChildProcess> child_;
    std::uint64_t run_ = 0;  // bumped by cancel(), so a late exit is not reported
    std::string first_stdout_;
    std::string first_stderr_;
    std::vector<std::unique_ptr<ChildProcess>> stopping_;  // cancelled, awaiting exit
};

}  // namespace failoverd::health
