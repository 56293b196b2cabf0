// Retry pacing for provider calls: exponential backoff with jitter, and the call budget that
// keeps a node under the provider's rate limits. Pure: time and randomness are handed in.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "daemon/core/rng.hpp"
#include "daemon/core/time.hpp"

namespace failoverd {

struct BackoffPolicy {
    Duration initial = std::chrono::milliseconds(500);
    double multiplier = 2.0;
    Duration cap = std::chrono::seconds(60);
    // The delay is drawn from [base * (1 - jitter), base]: spreads retries of nodes that
    // failed together without ever waiting longer than the unjittered schedule.
    double jitter = 0.5;
    // A Retry-After larger than this is treated as this (a garbage header must not park us).
    Duration retry_after_max = std::chrono::hours(1);
};

// Consecutive-failure backoff. next_delay() after each failure, reset() after a success.
class Backoff {
  public:
    explicit Backoff(BackoffPolicy policy = {}) : policy_(policy) {}

    // Delay before the next attempt; grows with each call until reset(). A `retry_after` from
    // the provider is a floor: the delay is never shorter than it (it may exceed `cap`).
    Duration next_delay(Rng& rng, std::optional<Duration> retry_after = std::nullopt);
    void reset() { failures_ = 0; }

    int failures() const { return failures_; }
    const BackoffPolicy& policy() const { return policy_; }

  private:
    BackoffPolicy policy_;
    int failures_ = 0;
};

// A token bucket in exact integer time: one token accrues every `period`, up to `capacity`.
// In any window W it admits at most capacity + W / period calls.
class TokenBucket {
  public:
    TokenBucket(std::int64_t capacity, Duration period, Instant now);

    // Takes one token if more than `reserve` are available.
    bool try_take(Instant now, std::int64_t reserve = 0);
    // Earliest instant at which try_take(reserve) would succeed.
    Instant available_at(Instant now, std::int64_t reserve = 0) const;
    std::int64_t tokens(Instant now) const;

    std::int64_t capacity() const { return capacity_; }
    Duration period() const { return period_; }

  private:
    Duration credit_at(Instant now) const;

    std::int64_t capacity_;
    Duration period_;
    Duration credit_;  // tokens * period, capped at capacity * period
    Instant updated_;
};

// DigitalOcean allows 250 requests per minute and 5000 per hour per token (provider-apis.md
// §1.5). The defaults stay below both in every window, leaving room for other users of the
// token (doctor, peer discovery): at most 40 + 60 s / 300 ms = 240 per minute and
// 200 + 3600 s / 783 ms = 4797 per hour. Routine calls (periodic re-reads) keep a reserve for
// urgent ones (taking over, verifying a move).
struct BudgetPolicy {
    std::int64_t minute_capacity = 40;
    Duration minute_period = std::chrono::milliseconds(300);
    std::int64_t minute_reserve = 10;
    std::int64_t hour_capacity = 200;
    Duration hour_period = std::chrono::milliseconds(783);
    std::int64_t hour_reserve = 100;
};

enum class CallPriority { Urgent, Routine };

// Shared by every instance's reconciler on one node.
class CallBudget {
  public:
    explicit CallBudget(Instant now, BudgetPolicy policy = {});

    bool try_take(CallPriority priority, Instant now);
    Instant available_at(CallPriority priority, Instant now) const;

    std::uint64_t taken() const { return taken_; }
    std::uint64_t denied() const { return denied_; }
    const BudgetPolicy& policy() const { return policy_; }

  private:
    BudgetPolicy policy_;
    TokenBucket minute_;
    TokenBucket hour_;
    std::uint64_t taken_ = 0;
    std::uint64_t denied_ = 0;
};

}  // namespace failoverd
