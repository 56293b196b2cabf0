#include "daemon/core/time.hpp"

#include <doctest/doctest.h>

using namespace failoverd;
using namespace std::chrono_literals;

TEST_CASE("time: durations format for operators") {
    CHECK(format_duration(250ms) == "250 ms");
    CHECK(format_duration(3610ms) == "3.61 s");
    CHECK(format_duration(-2s) == "-2.00 s");
}

TEST_CASE("time: instants round-trip through microseconds") {
    const Instant t = instant_from_usec(1'234'567);
    CHECK(usec_since_epoch(t) == 1'234'567);
    CHECK(seconds(t + 500ms - t) == doctest::Approx(0.5));
}
