// The simulator's own parts behave as documented: the fake provider follows
// provider-apis.md §5.1, the network honours its fault vocabulary, the queue its order.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/sim/event_queue.hpp"
#include "tests/sim/fake_provider.hpp"
#include "tests/sim/sim_network.hpp"

using namespace failoverd;
using namespace failoverd::sim;
using namespace std::chrono_literals;

namespace {

const Instant t0{std::chrono::seconds(1000)};
const std::string ip = "203.0.113.10";

FakeReply send(FakeProvider& p, FakeOp op, std::int64_t caller, std::int64_t target, Instant now,
               std::optional<FakeAccepted>& done, std::int64_t action = 0) {
    return p.receive(FakeRequest{ip, op, caller, target, action}, now, done);
}

}  // namespace

TEST_CASE("FakeProvider: assign locks the IP, moves it on completion and records the move") {
    FakeProvider p(FakeProviderOptions{}, 1);
    p.add_ip(ip, 1);
    std::optional<FakeAccepted> done;
    const FakeReply r = send(p, FakeOp::Assign, 2, 2, t0, done);
    CHECK(r.status == 201);
    REQUIRE(done.has_value());
    CHECK(done->action_id == r.action_id);
    CHECK(done->action_id > (std::int64_t{1} << 31));
    CHECK(done->completes_at >= t0 + 3s);
    CHECK(done->completes_at <= t0 + 11s);
    CHECK(p.locked(ip));
    CHECK(p.holder(ip) == 1);

    std::optional<FakeAccepted> ignored;
    const FakeReply busy = send(p, FakeOp::Assign, 1, 1, t0 + 1s, ignored);
    CHECK(busy.status == 422);
    CHECK(busy.message == "The floating IP already has a pending event.");
    CHECK_FALSE(ignored.has_value());

    const FakeReply pending = send(p, FakeOp::ReadAction, 2, 0, t0 + 1s, ignored, r.action_id);
    CHECK(pending.status == 200);
    CHECK(pending.action_status == FakeActionStatus::InProgress);

    p.complete(ip, r.action_id, done->completes_at);
    CHECK_FALSE(p.locked(ip));
    CHECK(p.holder(ip) == 2);
    REQUIRE(p.history().size() == 1);
    CHECK(p.history()[0].from == 1);
    CHECK(p.history()[0].to == 2);
    CHECK(p.history()[0].at == done->completes_at);
    CHECK(
        send(p, FakeOp::ReadAction, 2, 0, done->completes_at, ignored, r.action_id).action_status ==
        FakeActionStatus::Completed);
    CHECK(p.moves_since(ip, t0) == 1);
    CHECK(p.moves_since(ip, done->completes_at + 1ms) == 0);
}

TEST_CASE("FakeProvider: assign to the current holder is 422, not a no-op") {
    FakeProvider p(FakeProviderOptions{}, 1);
    p.add_ip(ip, 1);
    std::optional<FakeAccepted> done;
    const FakeReply r = send(p, FakeOp::Assign, 1, 1, t0, done);
    CHECK(r.status == 422);
    CHECK_FALSE(done.has_value());
    CHECK(p.counters().rejected_holder == 1);
    CHECK(p.history().empty());
}

TEST_CASE("FakeProvider: the burst limit answers 429 with retry-after until the minute rolls") {
    FakeProviderOptions o;
    o.limit_per_minute = 3;
    FakeProvider p(o, 1);
    p.add_ip(ip, std::nullopt);
    std::optional<FakeAccepted> done;
    for (int i = 0; i < 3; ++i) {
        CHECK(send(p, FakeOp::ReadHolder, 5, 0, t0 + i * 1s, done).status == 200);
    }
    const FakeReply limited = send(p, FakeOp::ReadHolder, 5, 0, t0 + 10s, done);
    CHECK(limited.status == 429);
    REQUIRE(limited.retry_after.has_value());
    CHECK(*limited.retry_after == 50s);
    CHECK(send(p, FakeOp::ReadHolder, 6, 0, t0 + 10s, done).status == 200);  // per token
    CHECK(send(p, FakeOp::ReadHolder, 5, 0, t0 + 60s, done).status == 200);
}

TEST_CASE("FakeProvider: a reply may be lost after the assign took effect") {
    FakeProvider p(FakeProviderOptions{}, 7);
    p.add_ip(ip, 1);
    ProviderFaults f;
    f.lost = 1.0;
    p.set_faults(f);
    int committed = 0;
    for (int i = 0; i < 40 && committed == 0; ++i) {
        std::optional<FakeAccepted> done;
        const FakeReply r = send(p, FakeOp::Assign, 2, 2, t0 + i * 20s, done);
        CHECK(r.lost());
        committed += done ? 1 : 0;
    }
    CHECK(committed == 1);
    CHECK(p.locked(ip));
}

TEST_CASE("FakeProvider: injected 5xx and 429 have no effect on the holder") {
    FakeProvider p(FakeProviderOptions{}, 3);
    p.add_ip(ip, 1);
    ProviderFaults f;
    f.server_error = 0.5;
    f.rate_limited = 1.0;
    f.retry_after = 4s;
    p.set_faults(f);
    int errors = 0;
    int limited = 0;
    for (int i = 0; i < 50; ++i) {
        std::optional<FakeAccepted> done;
        const FakeReply r = send(p, FakeOp::Assign, 2, 2, t0 + i * 1s, done);
        CHECK_FALSE(done.has_value());
        if (r.status >= 500) {
            ++errors;
        } else {
            CHECK(r.status == 429);
            CHECK(r.retry_after == std::optional<Duration>(4s));
            ++limited;
        }
    }
    CHECK(errors > 0);
    CHECK(limited > 0);
    CHECK_FALSE(p.locked(ip));
    CHECK(p.holder(ip) == 1);
}

TEST_CASE("SimNetwork: cut, isolate, drop and recover") {
    SimNetwork net(3);
    Rng rng(1);
    CHECK(net.whole());
    CHECK(net.route(0, 1, t0, rng).count == 1);
    net.cut(0, 1);
    CHECK_FALSE(net.whole());
    CHECK(net.route(0, 1, t0, rng).count == 0);
    CHECK(net.route(1, 0, t0, rng).count == 0);
    CHECK(net.route(0, 2, t0, rng).count == 1);
    net.isolate(2);
    CHECK(net.route(1, 2, t0, rng).count == 0);
    CHECK(net.describe() == "cut 0-1, cut 0-2, cut 1-2");
    net.recover();
    CHECK(net.whole());
    net.drop(0, 1, 1.0);
    CHECK(net.route(0, 1, t0, rng).count == 0);
    CHECK(net.route(1, 0, t0, rng).count == 1);
    net.recover();
    net.set_duplicate(1.0);
    const Delivery d = net.route(0, 1, t0, rng);
    CHECK(d.count == 2);
    CHECK_FALSE(net.whole());
}

TEST_CASE("SimNetwork: a link keeps FIFO order unless reordering is on") {
    SimNetwork net(2);
    Rng rng(5);
    net.set_delay(1ms, 20ms);
    Instant last{};
    for (int i = 0; i < 200; ++i) {
        const Delivery d = net.route(0, 1, t0 + i * 100us, rng);
        REQUIRE(d.count == 1);
        CHECK(d.at[0] >= last);
        CHECK(d.at[0] >= t0 + i * 100us + 1ms);
        last = d.at[0];
    }
}

TEST_CASE("SimNetwork: latency stays in range and reordering delays some datagrams") {
    SimNetwork net(2);
    Rng rng(9);
    net.set_delay(5ms, 10ms);
    net.set_reorder(0.5, 100ms);
    int late = 0;
    for (int i = 0; i < 200; ++i) {
        const Delivery d = net.route(0, 1, t0, rng);
        REQUIRE(d.count == 1);
        CHECK(d.at[0] >= t0 + 5ms);
        CHECK(d.at[0] <= t0 + 110ms);
        late += d.at[0] > t0 + 10ms ? 1 : 0;
    }
    CHECK(late > 20);
    CHECK(net.counters().reordered > 0);
}

TEST_CASE("EventQueue: runs by time, then by scheduling order, and jumps the clock") {
    EventQueue q(t0);
    std::vector<int> order;
    q.at(t0 + 2s, [&] { order.push_back(3); });
    q.at(t0 + 1s, [&] { order.push_back(1); });
    q.at(t0 + 1s, [&] {
        order.push_back(2);
        q.after(1s, [&] { order.push_back(4); });
    });
    while (q.run_one()) {
    }
    CHECK(order == std::vector<int>{1, 2, 3, 4});
    CHECK(q.now() == t0 + 2s);
    CHECK(q.executed() == 4);
}
