// sd_notify for a Type=notify service: READY=1, STATUS=, RELOADING=1, STOPPING=1, and the
// watchdog pinged by the loop itself so a stuck loop gets restarted. Without NOTIFY_SOCKET
// (not started by systemd) every call does nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/core/time.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd {

class SystemdNotify {
  public:
    // True when NOTIFY_SOCKET is set, i.e. systemd (or a test) listens.
    static bool available();

    // Start-up finished: config loaded, sockets bound, first health round done.
    void ready(std::string_view status);
    // Sent only when it differs from the last STATUS= (cheap to call after every turn).
    void status(std::string_view status);
    // Before a reload; MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match the reload.
    void reloading(Instant now);
    // After a reload, applied or rejected.
    void reloaded(std::string_view status);
    void stopping(std::string_view status);

    // WATCHDOG=1 from the loop (sd_event_set_watchdog) when systemd set WATCHDOG_USEC for us.
    // Returns true when the watchdog is on.
    bool enable_watchdog(EventLoop& loop);

    const std::string& last_status() const { return status_; }
    std::uint64_t notifications_sent() const { return sent_; }
    std::uint64_t notifications_failed() const { return failed_; }

  private:
    void send(const std::string& text);

    std::string status_;
    std::uint64_t sent_ = 0;
    std::uint64_t failed_ = 0;
};

}  // namespace failoverd
