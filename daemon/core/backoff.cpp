#include "daemon/core/backoff.hpp"

#include <algorithm>
#include <cmath>

#include "daemon/core/assert.hpp"

namespace failoverd {

Duration Backoff::next_delay(Rng& rng, std::optional<Duration> retry_after) {
    const double base_ns = static_cast<double>(policy_.initial.count()) *
                           std::pow(policy_.multiplier, static_cast<double>(failures_));
    const double cap_ns = static_cast<double>(policy_.cap.count());
    const double capped = std::min(base_ns, cap_ns);
    const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
    auto delay = Duration(static_cast<Duration::rep>(capped * (1.0 - jitter * rng.unit())));
    // Stop growing once the cap is reached so failures_ cannot overflow the exponent.
    if (base_ns < cap_ns) {
        ++failures_;
    }
    if (retry_after) {
        delay =
            std::max(delay, std::clamp(*retry_after, Duration::zero(), policy_.retry_after_max));
    }
    return delay;
}

TokenBucket::TokenBucket(std::int64_t capacity, Duration period, Instant now)
    : capacity_(capacity), period_(period), credit_(period * capacity), updated_(now) {
    FAILOVERD_ASSERT(capacity > 0 && period > Duration::zero());
}

Duration TokenBucket::credit_at(Instant now) const {
    const Duration full = period_ * capacity_;
    if (now <= updated_) {
        return credit_;
    }
    const Duration elapsed = now - updated_;
    return elapsed >= full - credit_ ? full : credit_ + elapsed;
}

std::int64_t TokenBucket::tokens(Instant now) const {
    return credit_at(now) / period_;
}

bool TokenBucket::try_take(Instant now, std::int64_t reserve) {
    const Duration credit = credit_at(now);
    if (now > updated_) {
        credit_ = credit;
        updated_ = now;
    }
    if (credit_ < period_ * (reserve + 1)) {
        return false;
    }
    credit_ -= period_;
    return true;
}

Instant TokenBucket::available_at(Instant now, std::int64_t reserve) const {
    const Duration need = period_ * (reserve + 1);
    const Duration credit = credit_at(now);
    if (credit >= need) {
        return now;
    }
    return std::max(now, updated_) + (need - credit);
}

CallBudget::CallBudget(Instant now, BudgetPolicy policy)
    : policy_(policy),
      minute_(policy.minute_capacity, policy.minute_period, now),
      hour_(policy.hour_capacity, policy.hour_period, now) {}

bool CallBudget::try_take(CallPriority priority, Instant now) {
    const bool routine = priority == CallPriority::Routine;
    const std::int64_t minute_reserve = routine ? policy_.minute_reserve : 0;
    const std::int64_t hour_reserve = routine ? policy_.hour_reserve : 0;
    // Check both before taking from either, so a refusal costs nothing.
    if (minute_.available_at(now, minute_reserve) > now ||
        hour_.available_at(now, hour_reserve) > now) {
        ++denied_;
        return false;
    }
    const bool took_minute = minute_.try_take(now, minute_reserve);
    const bool took_hour = hour_.try_take(now, hour_reserve);
    FAILOVERD_ASSERT(took_minute && took_hour);
    ++taken_;
    return true;
}

Instant CallBudget::available_at(CallPriority priority, Instant now) const {
    const bool routine = priority == CallPriority::Routine;
    return std::max(minute_.available_at(now, routine ? policy_.minute_reserve : 0),
                    hour_.available_at(now, routine ? policy_.hour_reserve : 0));
}

}  // namespace failoverd
