// RAII wrapper over sd-event: one loop, move-only source handles, callbacks as std::function.
// Rule: no exception crosses a C callback; each trampoline catches, logs, counts and goes on.
#pragma once

#include <signal.h>
#include <sys/epoll.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>

#include "daemon/core/time.hpp"

namespace failoverd {

class EventLoop;

// Owns one sd_event_source. Destroying (or resetting) it disables the source and drops our
// reference, so its callback never runs again; doing that from inside the callback is safe.
class EventSource {
  public:
    EventSource() = default;
    explicit EventSource(sd_event_source* source) : source_(source) {}
    ~EventSource() { reset(); }
    EventSource(EventSource&& other) noexcept : source_(other.source_) { other.source_ = nullptr; }
    EventSource& operator=(EventSource&& other) noexcept;
    EventSource(const EventSource&) = delete;
    EventSource& operator=(const EventSource&) = delete;

    void reset();
    explicit operator bool() const { return source_ != nullptr; }
    sd_event_source* get() const { return source_; }

    // SD_EVENT_OFF, SD_EVENT_ON or SD_EVENT_ONESHOT.
    void set_enabled(int mode);
    bool enabled() const;
    // Only for io sources: EPOLLIN, EPOLLOUT, ...
    void set_io_events(std::uint32_t events);
    // sd-event dispatches one pending source per iteration, the lowest value first; sources
    // are created at SD_EVENT_PRIORITY_NORMAL (0).
    void set_priority(std::int64_t priority);

  private:
    sd_event_source* source_ = nullptr;
};

// A re-armable one-shot timer on CLOCK_MONOTONIC. Created disarmed. The callback may re-arm
// or disarm the timer, or destroy it.
class Timer {
  public:
    Timer() = default;
    Timer(EventLoop& loop, std::function<void()> callback);

    void arm_at(Instant when);
    void arm_after(Duration delay);  // relative to the loop's now()
    void disarm();
    bool armed() const;
    std::optional<Instant> deadline() const;  // when armed
    explicit operator bool() const { return static_cast<bool>(source_); }

  private:
    EventLoop* loop_ = nullptr;
    EventSource source_;
    Instant deadline_{};
};

class EventLoop {
  public:
    // Blocks SIGCHLD in the calling thread (sd-event's child sources need it). Create the loop
    // before any thread is started (curl's resolver threads inherit the mask); spawned children
    // get an empty mask back (see ChildProcess).
    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // The time of the current wake-up (sd_event_now on CLOCK_MONOTONIC): one now per turn.
    Instant now() const;

    // Timers fire no more than `accuracy` late; sd-event's default of 250 ms would blur
    // advert and probe cadence, so the default here is 1 ms.
    static constexpr Duration kTimerAccuracy = std::chrono::milliseconds(1);

    // One-shot timer at `when` (already past: fires on the next turn).
    EventSource add_timer(Instant when, std::function<void()> callback);

    // `events` is a mask of EPOLLIN, EPOLLOUT, ...; the callback gets the returned events.
    // The fd is not owned and must outlive the source.
    EventSource add_io(int fd, std::uint32_t events, std::function<void(std::uint32_t)> callback);

    // Blocks `signo` (sigprocmask) and delivers it through a signalfd source.
    EventSource add_signal(int signo, std::function<void(const signalfd_siginfo&)> callback);

    // Watches a child for exit (WEXITED); the child is reaped after the callback returns.
    // The source is disabled after the exit has been delivered.
    EventSource add_child(pid_t pid, std::function<void(const siginfo_t&)> callback);

    // Reaps a child nobody waits for any more (e.g. SIGKILLed by a destructor), without blocking.
    void adopt_child(pid_t pid);

    // Runs `callback` once at `when`. The loop owns the timer, so this suits work that must
    // outlive whoever scheduled it; it is dropped, unrun, if the loop is destroyed first.
    void call_at(Instant when, std::function<void()> callback);

    // Runs `callback` on the next loop turn, in FIFO order with other posted callbacks.
    void post(std::function<void()> callback);

    // Runs until exit(); returns the exit code. Negative errno when sd-event failed.
    int run();
    void exit(int code);

    // Runs turns until `done()` is true (checked before each turn) or `max_wait` passes on the
    // loop clock. Returns done(). For tests and for one-shot commands such as failoverctl check.
    bool run_until(const std::function<bool()>& done, Duration max_wait);

    // Sends WATCHDOG=1 from the loop when systemd set WATCHDOG_USEC; true when enabled.
    bool enable_watchdog();

    // Exceptions and errors caught at C callback boundaries (logged where they happened).
    std::uint64_t callback_errors() const { return callback_errors_; }
    void note_callback_error() { ++callback_errors_; }

    sd_event* get() const { return event_; }

  private:
    void run_posted();

    sd_event* event_ = nullptr;
    EventSource post_source_;
    std::deque<std::function<void()>> posted_;
    std::map<pid_t, EventSource> adopted_;
    std::map<std::uint64_t, EventSource> scheduled_;  // call_at, by id
    std::uint64_t next_scheduled_ = 0;
    std::uint64_t callback_errors_ = 0;
};

}  // namespace failoverd
