// Retry pacing for the start-up look-ups (metadata id, tag peers): backoff with jitter, bounded
// by a deadline on the loop clock. The owner keeps itself alive through the callbacks it hands
// to curl and to this timer.
#pragma once

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>

#include "daemon/core/backoff.hpp"
#include "daemon/core/rng.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd {

class StartupRetry {
  public:
    StartupRetry(EventLoop& loop, Instant deadline)
        : loop_(loop),
          deadline_(deadline),
          backoff_(BackoffPolicy{std::chrono::milliseconds(250), 2.0, std::chrono::seconds(5), 0.5,
                                 std::chrono::seconds(30)}),
          rng_(static_cast<std::uint64_t>(loop.now().time_since_epoch().count()) ^
               (static_cast<std::uint64_t>(::getpid()) << 32)) {}

    // Runs `again` after the next backoff delay. False when that would start at or past the
    // deadline: the caller gives up with the last error it saw.
    bool retry(std::function<void()> again) {
        const Instant at = loop_.now() + backoff_.next_delay(rng_);
        if (at >= deadline_) {
            return false;
        }
        // The fired source is dropped at once: `again` usually owns our owner, and a fired
        // one-shot source kept here would keep that cycle alive (sd-event frees it after the
        // callback returns, so resetting it from inside is safe).
        timer_ = loop_.add_timer(at, [this, again = std::move(again)] {
            timer_.reset();
            again();
        });
        return true;
    }

    // Time left for one attempt, at most `cap`, at least 1 ms.
    Duration remaining(Duration cap) const {
        const Duration left = deadline_ - loop_.now();
        return std::clamp<Duration>(left, std::chrono::milliseconds(1), cap);
    }

    int attempts() const { return attempts_; }
    void count_attempt() { ++attempts_; }

  private:
    EventLoop& loop_;
    Instant deadline_;
    Backoff backoff_;
    Rng rng_;
    EventSource timer_;
    int attempts_ = 0;
};

}  // namespace failoverd
