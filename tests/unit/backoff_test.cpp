#include "daemon/core/backoff.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <vector>

using namespace failoverd;
using namespace std::chrono_literals;

namespace {

const Instant t0 = Instant{} + 1000s;

// Largest number of instants inside any half-open window of length `window`.
std::size_t max_in_window(const std::vector<Instant>& times, Duration window) {
    std::size_t best = 0;
    std::size_t lo = 0;
    for (std::size_t hi = 0; hi < times.size(); ++hi) {
        while (times[hi] - times[lo] >= window) {
            ++lo;
        }
        best = std::max(best, hi - lo + 1);
    }
    return best;
}

}  // namespace

TEST_CASE("Backoff: delays double up to the cap, jittered below the schedule") {
    BackoffPolicy p;
    p.initial = 500ms;
    p.multiplier = 2.0;
    p.cap = 8s;
    p.jitter = 0.5;
    Backoff b(p);
    Rng rng(7);
    const Duration schedule[] = {500ms, 1s, 2s, 4s, 8s, 8s, 8s, 8s};
    for (Duration base : schedule) {
        const Duration d = b.next_delay(rng);
        CHECK(d <= base);
        CHECK(d >= base / 2);
    }
    b.reset();
    CHECK(b.failures() == 0);
    CHECK(b.next_delay(rng) <= 500ms);
}

TEST_CASE("Backoff: Retry-After is a floor, even above the cap, within reason") {
    BackoffPolicy p;
    p.cap = 60s;
    Backoff b(p);
    Rng rng(1);
    CHECK(b.next_delay(rng, 30s) >= 30s);
    CHECK(b.next_delay(rng, 120s) == 120s);
    CHECK(b.next_delay(rng, 24h) == p.retry_after_max);
    CHECK(b.next_delay(rng, -5s) >= 0s);
}

TEST_CASE("Backoff: the same seed gives the same delays") {
    Backoff a, b;
    Rng ra(42), rb(42);
    for (int i = 0; i < 10; ++i) {
        CHECK(a.next_delay(ra) == b.next_delay(rb));
    }
}

TEST_CASE("TokenBucket: capacity, refill and the instant a token is available") {
    TokenBucket bucket(3, 1s, t0);
    CHECK(bucket.try_take(t0));
    CHECK(bucket.try_take(t0));
    CHECK(bucket.try_take(t0));
    CHECK_FALSE(bucket.try_take(t0));
    CHECK(bucket.available_at(t0) == t0 + 1s);
    CHECK_FALSE(bucket.try_take(t0 + 999ms));
    CHECK(bucket.try_take(t0 + 1s));
    CHECK(bucket.tokens(t0 + 1h) == 3);  // never more than capacity
    // A reserve keeps tokens back.
    TokenBucket reserved(5, 1s, t0);
    int taken = 0;
    while (reserved.try_take(t0, 2)) {
        ++taken;
    }
    CHECK(taken == 3);
    CHECK(reserved.try_take(t0, 0));
}

TEST_CASE("CallBudget: a greedy caller stays under 250 per minute and 5000 per hour") {
    CallBudget budget(t0);
    std::vector<Instant> calls;
    Instant now = t0;
    while (now < t0 + 3h) {
        now = budget.available_at(CallPriority::Urgent, now);
        REQUIRE(budget.try_take(CallPriority::Urgent, now));
        calls.push_back(now);
    }
    CHECK(max_in_window(calls, 60s) <= 250);
    CHECK(max_in_window(calls, 1h) <= 5000);
    // ... and is not needlessly stingy: most of the hourly quota is usable.
    CHECK(max_in_window(calls, 1h) >= 4500);
}

TEST_CASE("CallBudget: routine calls leave a reserve for urgent ones") {
    CallBudget budget(t0);
    int routine = 0;
    while (budget.try_take(CallPriority::Routine, t0)) {
        ++routine;
    }
    CHECK(routine == budget.policy().minute_capacity - budget.policy().minute_reserve);
    int urgent = 0;
    while (budget.try_take(CallPriority::Urgent, t0)) {
        ++urgent;
    }
    CHECK(urgent == budget.policy().minute_reserve);
    CHECK(budget.denied() == 2);
    CHECK(budget.available_at(CallPriority::Urgent, t0) == t0 + budget.policy().minute_period);
}
