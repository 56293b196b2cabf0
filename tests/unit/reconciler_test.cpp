#include "daemon/core/reconciler.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

using namespace failoverd;
using namespace std::chrono_literals;

namespace {

const Instant t0 = Instant{} + 1000s;
const std::string kMe = "1001";  // this node's droplet id

ReconcilerConfig config() {
    ReconcilerConfig c;
    c.instance = "web";
    c.ip = "203.0.113.10";
    c.self_provider_id = kMe;
    c.self_name = "web-2";
    c.reconcile_interval = 30s;
    c.action_poll_interval = 1s;
    c.locked_retry = 2s;
    c.action_deadline = 120s;
    return c;
}

Advert peer_advert(std::string name, std::string droplet, int priority,
                   SenderState state = SenderState::Master) {
    Advert a;
    a.sender = std::move(name);
    a.sender_provider_id = std::move(droplet);
    a.priority = static_cast<std::uint8_t>(priority);
    a.state = state;
    return a;
}

ProviderReplied ok_holder(std::string holder, bool locked = false) {
    ProviderReplied r;
    r.outcome = ProviderOutcome::Ok;
    r.http_status = 200;
    r.holder = std::move(holder);
    r.locked = locked;
    return r;
}

ProviderReplied ok_assign(std::string action_id) {
    ProviderReplied r;
    r.outcome = ProviderOutcome::Ok;
    r.http_status = 201;
    r.action_id = std::move(action_id);
    return r;
}

ProviderReplied ok_action(ActionStatus status) {
    ProviderReplied r;
    r.outcome = ProviderOutcome::Ok;
    r.http_status = 200;
    r.action_status = status;
    return r;
}

ProviderReplied failed(ProviderOutcome outcome, int http, std::string detail = {},
                       std::optional<Duration> retry_after = std::nullopt) {
    ProviderReplied r;
    r.outcome = outcome;
    r.http_status = http;
    r.detail = std::move(detail);
    r.retry_after = retry_after;
    return r;
}

// A fake clock and the node-wide pieces around one reconciler.
struct Harness {
    Instant now = t0;
    CallBudget budget{t0};
    Rng rng{1};
    RequestIds ids;
    PeerTable peers;
    Reconciler r{config()};
    int my_priority = 100;

    ReconcilerContext ctx() { return ReconcilerContext{budget, rng, ids}; }

    // A contested takeover (down interval, preempt): reads the holder first.
    void start() {
        r.start(now);
        r.on_deadline(ctx(), now);
    }

    // An uncontended takeover (this node was named): posts the assign first.
    void start_named() {
        r.start(now, /*assign_first=*/true);
        r.on_deadline(ctx(), now);
    }

    // The one call the reconciler made just now.
    CallProvider call() {
        auto calls = r.take_calls();
        REQUIRE(calls.size() == 1);
        CHECK(calls[0].instance == "web");
        CHECK(calls[0].ip == "203.0.113.10");
        return calls[0];
    }

    CallProvider expect(ProviderOp op) {
        CallProvider c = call();
        CHECK(to_string(c.op) == to_string(op));
        return c;
    }

    void reply(const CallProvider& c, ProviderReplied rep) {
        rep.instance = "web";
        rep.request_id = c.request_id;
        r.on_reply(rep, my_priority, peers, ctx(), now);
    }

    // Moves the clock to the next deadline and fires it; returns how far it moved.
    Duration advance() {
        REQUIRE(r.next_deadline().has_value());
        const Instant before = now;
        now = *r.next_deadline();
        r.on_deadline(ctx(), now);
        return now - before;
    }

    void learn(const Advert& a) { peers.update(a, "10.0.0.9:5405", now); }

    // Brings the reconciler to "settled, holding the IP" (claimed this term).
    void settle() {
        start();
        reply(expect(ProviderOp::ReadHolder), ok_holder(kMe));
        REQUIRE(r.status().phase == ReconcilePhase::Settled);
    }
};

}  // namespace

TEST_CASE("Reconciler: a master that already holds the IP does not assign") {
    Harness h;
    h.settle();
    CHECK(h.r.take_calls().empty());
    const Duration wait = *h.r.next_deadline() - h.now;
    CHECK(wait >= 27s);  // reconcile_interval 30 s, +-10 % jitter
    CHECK(wait <= 33s);
    CHECK(h.r.status().assigns == 0);
    CHECK(h.r.status().observed_holder == kMe);
}

TEST_CASE("Reconciler: claims the IP: read, assign, poll the action, verify") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    auto assign = h.expect(ProviderOp::Assign);  // at once, no waiting
    h.reply(assign, ok_assign("3000000001"));
    CHECK(h.advance() == 1s);
    auto poll = h.expect(ProviderOp::ReadAction);
    CHECK(poll.action_id == "3000000001");
    h.reply(poll, ok_action(ActionStatus::Pending));
    CHECK(h.advance() == 1s);
    h.reply(h.expect(ProviderOp::ReadAction), ok_action(ActionStatus::Completed));
    auto verify = h.expect(ProviderOp::ReadHolder);  // verification follows at once
    h.reply(verify, ok_holder(kMe));
    CHECK(h.r.status().phase == ReconcilePhase::Settled);
    CHECK(h.r.status().moves_confirmed == 1);
    CHECK(h.r.status().calls == 5);
}

TEST_CASE("Reconciler: a named takeover posts the assign first, then polls and verifies") {
    Harness h;
    h.start_named();
    auto assign = h.expect(ProviderOp::Assign);  // no read before it
    CHECK(h.r.status().phase == ReconcilePhase::Assigning);
    CHECK(h.r.status().note == "claiming the IP (assign first, then verify)");
    h.reply(assign, ok_assign("3000000001"));
    CHECK(h.advance() == 1s);
    h.reply(h.expect(ProviderOp::ReadAction), ok_action(ActionStatus::Completed));
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));
    CHECK(h.r.status().phase == ReconcilePhase::Settled);
    CHECK(h.r.status().calls == 3);
    CHECK(h.r.status().assigns == 1);
}

TEST_CASE("Reconciler: assign first to an IP we already hold: 422, re-read, settled") {
    SUBCASE("422 passed on raw") {
        Harness h;
        h.start_named();
        h.reply(h.expect(ProviderOp::Assign),
                failed(ProviderOutcome::Rejected, 422, "Droplet already has a floating IP."));
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));  // at once
        CHECK_FALSE(h.r.take_fault().has_value());
        CHECK(h.r.status().phase == ReconcilePhase::Settled);
    }
    SUBCASE("folded by the provider layer: Ok without an action") {
        Harness h;
        h.start_named();
        h.reply(h.expect(ProviderOp::Assign), ok_assign(""));
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));
        CHECK(h.r.status().phase == ReconcilePhase::Settled);
    }
}

TEST_CASE("Reconciler: assign first onto a pending action waits, then reads before posting") {
    Harness h;
    h.start_named();
    h.reply(h.expect(ProviderOp::Assign),
            failed(ProviderOutcome::Locked, 422, "The floating IP already has a pending event."));
    CHECK(h.r.take_calls().empty());
    CHECK(h.advance() >= 2s);
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    h.expect(ProviderOp::Assign);  // the first claim of the term still assigns
}

TEST_CASE("Reconciler: an unassigned IP is claimed") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(""));
    h.expect(ProviderOp::Assign);
    CHECK(h.r.status().note == "claiming the IP from nobody");
}

TEST_CASE("Reconciler: a locked IP is read again, not posted to") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002", true));
    CHECK(h.r.take_calls().empty());
    CHECK(h.advance() >= 2s);
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002", false));
    h.expect(ProviderOp::Assign);
}

TEST_CASE("Reconciler: a holder the provider does not show is neither assigned nor settled on") {
    // DigitalOcean leaves "droplet" out for a token without droplet:read.
    ProviderReplied unknown = ok_holder("");
    unknown.holder_known = false;

    SUBCASE("first claim of a term") {
        Harness h;
        h.start();
        h.reply(h.expect(ProviderOp::ReadHolder), unknown);
        CHECK(h.r.take_calls().empty());
        CHECK(h.r.status().phase == ReconcilePhase::Waiting);
        CHECK_FALSE(h.r.status().holder_known);
        CHECK(h.r.status().note.rfind("holder unknown:", 0) == 0);
        CHECK(h.r.status().note.find("droplet:read") != std::string::npos);
        CHECK(h.advance() == 30s);
        h.reply(h.expect(ProviderOp::ReadHolder), unknown);
        CHECK(h.r.take_calls().empty());
        CHECK(h.r.status().assigns == 0);
        CHECK_FALSE(h.r.take_fault().has_value());
        // Once a reply names the holder, the claim goes on as usual.
        CHECK(h.advance() == 30s);
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(""));
        h.expect(ProviderOp::Assign);
    }
    SUBCASE("the verification after a completed assign") {
        Harness h;
        h.start_named();
        h.reply(h.expect(ProviderOp::Assign), ok_assign("3000000001"));
        CHECK(h.advance() == 1s);
        h.reply(h.expect(ProviderOp::ReadAction), ok_action(ActionStatus::Completed));
        h.reply(h.expect(ProviderOp::ReadHolder), unknown);
        CHECK(h.r.status().phase != ReconcilePhase::Settled);
        CHECK(h.r.take_calls().empty());
        CHECK(h.r.status().assigns == 1);
    }
}

TEST_CASE("Reconciler: a 201 whose action is already completed is verified at once") {
    Harness h;
    h.start_named();
    ProviderReplied done = ok_assign("72531856");
    done.action_status = ActionStatus::Completed;
    h.reply(h.expect(ProviderOp::Assign), done);
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));  // no 1 s poll before it
    CHECK(h.now == t0);
    CHECK(h.r.status().phase == ReconcilePhase::Settled);
    CHECK(h.r.status().moves_confirmed == 1);
    CHECK(h.r.status().calls == 2);
}

TEST_CASE("Reconciler: 422 pending event waits locked_retry, then reads the holder first") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    h.reply(h.expect(ProviderOp::Assign),
            failed(ProviderOutcome::Locked, 422, "The floating IP already has a pending event."));
    CHECK(h.r.take_calls().empty());
    CHECK(h.advance() >= 2s);
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));  // our earlier POST won after all
    CHECK(h.r.status().phase == ReconcilePhase::Settled);
    CHECK(h.r.status().assigns == 1);
}

TEST_CASE("Reconciler: Retry-After is honoured and the same call is retried") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    h.reply(h.expect(ProviderOp::Assign),
            failed(ProviderOutcome::RateLimited, 429, "API rate limit exceeded", 17s));
    CHECK(*h.r.next_deadline() - h.now >= 17s);
    h.r.on_deadline(h.ctx(), h.now + 16s);  // early: nothing
    CHECK(h.r.take_calls().empty());
    CHECK(h.advance() >= 17s);
    h.expect(ProviderOp::Assign);
    CHECK(h.r.status().failures == 1);
}

TEST_CASE("Reconciler: a master without the IP retries fast, within its own schedule") {
    Harness h;
    h.start();
    std::vector<Duration> waits;
    for (int i = 0; i < 8; ++i) {
        h.reply(h.expect(ProviderOp::ReadHolder), failed(ProviderOutcome::Transient, 503));
        waits.push_back(h.advance());
    }
    // claim_backoff: 200 ms doubling, jitter takes at most half off, cap 2 s
    Duration base = 200ms;
    for (Duration w : waits) {
        CHECK(w <= base);
        CHECK(w >= base / 2);
        base = std::min<Duration>(base * 2, 2s);
    }
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));
    CHECK(h.r.status().last_error.empty());
}

TEST_CASE("Reconciler: a master holding the IP keeps the slow schedule for failed re-reads") {
    Harness h;
    h.settle();
    h.advance();  // the periodic re-read
    std::vector<Duration> waits;
    for (int i = 0; i < 8; ++i) {
        h.reply(h.expect(ProviderOp::ReadHolder), failed(ProviderOutcome::Transient, 503));
        waits.push_back(h.advance());
    }
    // backoff: 500 ms doubling, jitter takes at most half off, cap 60 s
    Duration base = 500ms;
    for (Duration w : waits) {
        CHECK(w <= base);
        CHECK(w >= base / 2);
        base = std::min<Duration>(base * 2, 60s);
    }
    // The read that finds the IP gone switches to the fast schedule at once.
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002", /*locked=*/true));
    CHECK(h.advance() == 2s);  // a lock: locked_retry, not the slow backoff
    h.reply(h.expect(ProviderOp::ReadHolder), failed(ProviderOutcome::Transient, 503));
    CHECK(h.advance() <= 400ms);  // the second step of the fast schedule (the lock was the first)
}

TEST_CASE("Reconciler: Retry-After is waited exactly, with no backoff on top") {
    for (const bool holding : {false, true}) {
        CAPTURE(holding);
        Harness h;
        if (holding) {
            h.settle();
            h.advance();
        } else {
            h.start();
        }
        for (int i = 0; i < 4; ++i) {
            h.reply(h.expect(ProviderOp::ReadHolder),
                    failed(ProviderOutcome::RateLimited, 429, "API rate limit exceeded", 3s));
            CHECK(h.advance() == 3s);
        }
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));
        CHECK(h.r.status().failures == 4);
    }
}

TEST_CASE("Reconciler: a lost POST is followed by a holder read before any new POST") {
    struct Row {
        const char* what;
        ProviderReplied read;
        bool posts_again;
    };
    const Row rows[] = {
        {"the POST went through", ok_holder(kMe), false},
        {"the POST is still running", ok_holder("2002", true), false},
        {"the POST was lost", ok_holder("2002"), true},
    };
    for (const auto& row : rows) {
        CAPTURE(row.what);
        Harness h;
        h.start();
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
        h.reply(h.expect(ProviderOp::Assign), failed(ProviderOutcome::Transient, 0, "timeout"));
        h.advance();
        h.reply(h.expect(ProviderOp::ReadHolder), row.read);
        auto calls = h.r.take_calls();
        CHECK(calls.size() == (row.posts_again ? 1u : 0u));
        if (row.posts_again) {
            CHECK(calls[0].op == ProviderOp::Assign);
        }
    }
}

TEST_CASE("Reconciler: an assign whose reply was lost is confirmed by reads, not re-posted") {
    Harness h;
    h.start_named();
    h.reply(h.expect(ProviderOp::Assign),
            failed(ProviderOutcome::Transient, 0,
                   "transport error: connection closed after the request was sent"));
    CHECK(h.r.status().note ==
          "assign: reply lost (transport error: connection closed after the request was sent); "
          "reading the holder before any new POST");
    CHECK(h.advance() <= 200ms);  // Master without the IP: the fast schedule
    // A failed read in between changes nothing: still only reads.
    h.reply(h.expect(ProviderOp::ReadHolder), failed(ProviderOutcome::Transient, 503));
    h.advance();
    // Our action is pending: read again at the action poll interval, never post.
    for (int i = 0; i < 3; ++i) {
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002", /*locked=*/true));
        CHECK(h.r.status().note.find("likely the assign whose reply was lost") !=
              std::string::npos);
        CHECK(h.advance() == 1s);
    }
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));
    CHECK(h.r.status().phase == ReconcilePhase::Settled);
    CHECK(h.r.status().note ==
          "holder is this droplet: IP confirmed (the assign whose reply was lost was applied)");
    CHECK(h.r.status().assigns == 1);
    CHECK(h.r.status().moves_confirmed == 1);
    CHECK(h.r.take_calls().empty());
}

TEST_CASE("Reconciler: a lost assign the reads show was not applied is posted again") {
    SUBCASE("5xx on the assign") {
        Harness h;
        h.start();
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
        h.reply(h.expect(ProviderOp::Assign), failed(ProviderOutcome::Transient, 502));
        CHECK(h.r.status().note ==
              "assign: outcome unknown (HTTP 502); reading the holder before any new POST");
        h.advance();
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
        CHECK(h.r.status().note ==
              "the assign whose reply was lost was not applied (holder 2002, no action "
              "pending); claiming the IP from 2002");
        h.expect(ProviderOp::Assign);
        CHECK(h.r.status().assigns == 2);
    }
    SUBCASE("a lock that outlives the action deadline is someone else's") {
        Harness h;
        h.start();
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
        h.reply(h.expect(ProviderOp::Assign), failed(ProviderOutcome::Transient, 0, "timed out"));
        h.advance();
        while (h.now - t0 < 120s) {
            h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002", /*locked=*/true));
            h.advance();
        }
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002", /*locked=*/true));
        CHECK(h.r.status().note.rfind("IP locked by a pending action (holder 2002): ", 0) == 0);
        CHECK(h.advance() >= 2s);
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
        h.expect(ProviderOp::Assign);
        CHECK(h.r.status().assigns == 2);
    }
}

TEST_CASE("Reconciler: 401 refuses with a reason and stops calling") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder),
            failed(ProviderOutcome::Unauthorized, 401, "Unable to authenticate you"));
    CHECK(h.r.take_fault() ==
          std::optional<std::string>("provider rejected the token (HTTP 401: Unable to "
                                     "authenticate you)"));
    CHECK_FALSE(h.r.take_fault().has_value());  // taken once
    CHECK(h.r.status().phase == ReconcilePhase::Refused);
    CHECK_FALSE(h.r.next_deadline().has_value());
}

TEST_CASE("Reconciler: a detail that already names the status is not repeated") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder),
            failed(ProviderOutcome::Unauthorized, 401,
                   "HTTP 401 Unauthorized: Unable to authenticate you (request r-1)"));
    CHECK(h.r.take_fault() == std::optional<std::string>(
                                  "provider rejected the token (HTTP 401 Unauthorized: Unable to "
                                  "authenticate you (request r-1))"));
}

TEST_CASE("Reconciler: 404 on the action falls back to reading the holder") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    h.reply(h.expect(ProviderOp::Assign), ok_assign("77"));
    h.advance();
    h.reply(h.expect(ProviderOp::ReadAction), failed(ProviderOutcome::NotFound, 404));
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));
    CHECK(h.r.status().phase == ReconcilePhase::Settled);
    CHECK_FALSE(h.r.take_fault().has_value());
}

TEST_CASE("Reconciler: 404 on the IP itself is a configuration error") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), failed(ProviderOutcome::NotFound, 404));
    CHECK(h.r.take_fault() ==
          std::optional<std::string>("provider does not know reserved IP 203.0.113.10 (HTTP 404)"));
}

TEST_CASE("Reconciler: a 4xx on assign is re-read before it counts as a refusal") {
    SUBCASE("the holder is us: the 422 was 'already assigned'") {
        Harness h;
        h.start();
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
        h.reply(h.expect(ProviderOp::Assign), failed(ProviderOutcome::Rejected, 422));
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));
        CHECK_FALSE(h.r.take_fault().has_value());
        CHECK(h.r.status().phase == ReconcilePhase::Settled);
    }
    SUBCASE("the holder is someone else: refused") {
        Harness h;
        h.start();
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
        h.reply(h.expect(ProviderOp::Assign),
                failed(ProviderOutcome::Rejected, 422, "region mismatch"));
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
        CHECK(h.r.take_fault() ==
              std::optional<std::string>(
                  "provider refused the assignment (HTTP 422: region mismatch)"));
    }
}

TEST_CASE("Reconciler: an errored action reads the holder after a backoff") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    h.reply(h.expect(ProviderOp::Assign), ok_assign("77"));
    h.advance();
    h.reply(h.expect(ProviderOp::ReadAction), ok_action(ActionStatus::Errored));
    CHECK(h.r.take_calls().empty());
    h.advance();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    h.expect(ProviderOp::Assign);  // still the first claim of the term
}

TEST_CASE("Reconciler: an action pending past its deadline re-reads the holder") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    h.reply(h.expect(ProviderOp::Assign), ok_assign("77"));
    int polls = 0;
    std::vector<CallProvider> after;
    while (after.empty()) {
        h.advance();
        h.reply(h.expect(ProviderOp::ReadAction), ok_action(ActionStatus::Pending));
        ++polls;
        after = h.r.take_calls();
    }
    REQUIRE(after.size() == 1);
    CHECK(after[0].op == ProviderOp::ReadHolder);
    CHECK(h.r.status().note == "action 77 still pending after 120.00 s: reading the holder");
    CHECK(polls == 120);  // one per second for action_deadline
}

TEST_CASE("Reconciler: replies with unknown or superseded ids are ignored") {
    Harness h;
    h.start();
    auto first = h.expect(ProviderOp::ReadHolder);
    CallProvider bogus = first;
    bogus.request_id += 1000;
    h.reply(bogus, ok_holder("2002"));
    CHECK(h.r.status().stale_replies == 1);
    CHECK(h.r.take_calls().empty());
    // A new term: the old call's reply no longer counts.
    h.r.stop();
    h.r.start(h.now);
    h.r.on_deadline(h.ctx(), h.now);
    auto second = h.expect(ProviderOp::ReadHolder);
    h.reply(first, ok_holder("2002"));
    CHECK(h.r.status().stale_replies == 2);
    CHECK(h.r.take_calls().empty());
    h.reply(second, ok_holder(kMe));
    CHECK(h.r.status().phase == ReconcilePhase::Settled);
}

TEST_CASE("Reconciler: a stopped reconciler (backup) never calls the provider") {
    Harness h;
    h.r.on_deadline(h.ctx(), h.now + 1h);
    CHECK(h.r.take_calls().empty());
    CHECK_FALSE(h.r.next_deadline().has_value());
    h.start();
    auto read = h.expect(ProviderOp::ReadHolder);
    h.r.stop();
    h.reply(read, ok_holder("2002"));  // reply arrives after losing mastership
    h.r.on_deadline(h.ctx(), h.now + 1h);
    CHECK(h.r.take_calls().empty());
    CHECK(h.r.status().assigns == 0);
    CHECK(h.r.status().phase == ReconcilePhase::Idle);
}

TEST_CASE("Reconciler: the first claim of a term ignores the partition rule") {
    Harness h;
    h.learn(peer_advert("web-1", "2002", 150));  // a higher peer, silent since
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    h.expect(ProviderOp::Assign);
}

TEST_CASE("Reconciler: the partition rule decides re-claims after the IP moved away") {
    // `current`: the holder's last advert or presence was heard just before the read (its
    // state is known); otherwise 30 s before (it may be a master behind a partition).
    struct Row {
        const char* what;
        std::vector<Advert> heard;
        bool current;
        std::string holder;
        bool reclaims;
        const char* note;
    };
    const Advert higher = peer_advert("web-1", "2002", 150);
    const Row rows[] = {
        {"higher master, silent",
         {higher},
         false,
         "2002",
         false,
         "IP held by web-1 (priority 150 > 100): not reclaiming"},
        {"higher master, heard",
         {higher},
         true,
         "2002",
         false,
         "IP held by web-1 (priority 150 > 100): not reclaiming"},
        {"equal priority, greater name",
         {peer_advert("web-3", "2002", 100)},
         false,
         "2002",
         false,
         "IP held by web-3 (priority 100 = 100): not reclaiming"},
        {"equal priority, smaller name",
         {peer_advert("web-1", "2002", 100)},
         false,
         "2002",
         true,
         "IP moved to web-1 (priority 100 = 100, web-1 < web-2): reclaiming"},
        {"lower priority, silent",
         {peer_advert("web-1", "2002", 50, SenderState::Backup)},
         false,
         "2002",
         true,
         "IP moved to web-1 (priority 50 < 100): reclaiming"},
        {"higher backup, heard: the IP stayed behind after a heal",
         {peer_advert("web-1", "2002", 150, SenderState::Backup)},
         true,
         "2002",
         true,
         "IP moved to web-1 (a backup now, heard 0 ms ago): reclaiming"},
        {"higher backup, silent: may be master behind a partition",
         {peer_advert("web-1", "2002", 150, SenderState::Backup)},
         false,
         "2002",
         false,
         "IP held by web-1 (priority 150 > 100): not reclaiming"},
        {"resigned, heard",
         {higher, peer_advert("web-1", "2002", 0)},
         true,
         "2002",
         true,
         "IP moved to web-1 (not contending, heard 0 ms ago): reclaiming"},
        {"resigned, silent since",
         {higher, peer_advert("web-1", "2002", 0)},
         false,
         "2002",
         false,
         "IP held by web-1 (silent since it resigned or faulted): not reclaiming"},
        {"in fault, heard",
         {peer_advert("web-1", "2002", 0, SenderState::Fault)},
         true,
         "2002",
         true,
         "IP moved to web-1 (not contending, heard 0 ms ago): reclaiming"},
        {"droplet never heard from",
         {higher},
         true,
         "4004",
         false,
         "IP held by droplet 4004, not a peer heard from: not reclaiming"},
        {"nobody", {}, false, "", true, "claiming the IP from nobody"},
    };
    for (const auto& row : rows) {
        CAPTURE(std::string(row.what));
        Harness h;
        h.settle();
        if (!row.current) {
            for (const auto& a : row.heard) {
                h.learn(a);
            }
        }
        h.now = *h.r.next_deadline();  // the periodic re-read
        if (row.current) {
            for (const auto& a : row.heard) {
                h.learn(a);
            }
        }
        h.r.on_deadline(h.ctx(), h.now);
        h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(row.holder));
        auto calls = h.r.take_calls();
        CHECK(calls.size() == (row.reclaims ? 1u : 0u));
        CHECK(h.r.status().note == row.note);
        CHECK(h.r.status().phase ==
              (row.reclaims ? ReconcilePhase::Assigning : ReconcilePhase::Yielding));
        if (!row.reclaims) {
            // Yielding keeps looking at the reconcile interval, as a routine call.
            const Duration wait = *h.r.next_deadline() - h.now;
            CHECK(wait >= 27s);
            CHECK(wait <= 33s);
            CHECK(h.r.yielding_to(row.holder));
        }
    }
}

TEST_CASE("Reconciler: a yielding master re-checks soon when asked, at most once a second") {
    Harness h;
    h.learn(peer_advert("web-1", "2002", 150));
    h.settle();
    h.advance();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    REQUIRE(h.r.status().phase == ReconcilePhase::Yielding);
    h.learn(peer_advert("web-1", "2002", 150, SenderState::Backup));  // it stepped down
    h.r.recheck_soon(h.now);
    CHECK(h.r.next_deadline() == h.now);
    h.advance();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    h.expect(ProviderOp::Assign);
    h.r.recheck_soon(h.now);  // busy assigning: no effect
    CHECK_FALSE(h.r.next_deadline().has_value());
}

TEST_CASE("Reconciler: a heal re-reads at once, and within the rate limit is postponed, not lost") {
    Harness h;
    h.settle();
    const Instant routine = *h.r.next_deadline();
    CHECK(routine - h.now >= 27s);
    CHECK(h.r.recheck_after_heal("web-1 heard again after 3.40 s of silence", h.now) ==
          "web-1 heard again after 3.40 s of silence: re-reading the holder");
    CHECK(h.r.next_deadline() == h.now);
    h.advance();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder(kMe));
    // Half a second later a second trigger: recheck_soon drops it, a heal postpones it to the
    // end of the one-second gap.
    h.now += 500ms;
    h.r.recheck_soon(h.now);
    CHECK(*h.r.next_deadline() - h.now >= 27s);
    h.r.recheck_after_heal("web-1 heard as MASTER (priority 150)", h.now);
    CHECK(h.r.next_deadline() == h.now + 500ms);
    CHECK(h.advance() == 500ms);
    h.expect(ProviderOp::ReadHolder);
}

TEST_CASE("Reconciler: a heal noticed while a read is on its way reads once more") {
    // The read left before the heal; its answer ("this node") may predate the other master's
    // assign. Settling on it would leave the IP wherever that assign puts it for 30 s.
    Harness h;
    h.settle();
    h.advance();  // the periodic read goes out
    const CallProvider before_heal = h.expect(ProviderOp::ReadHolder);
    h.now += 200ms;
    CHECK(h.r.recheck_after_heal("web-1 heard as MASTER (priority 50)", h.now) ==
          "web-1 heard as MASTER (priority 50): re-reading the holder");
    h.now += 100ms;
    h.reply(before_heal, ok_holder(kMe));
    const CallProvider after_heal = h.expect(ProviderOp::ReadHolder);  // at once, not in 30 s
    // The other master's assign landed; it has stepped down and was heard just now.
    h.learn(peer_advert("web-1", "2002", 50, SenderState::Backup));
    h.reply(after_heal, ok_holder("2002"));
    h.expect(ProviderOp::Assign);
    CHECK(h.r.status().note == "IP moved to web-1 (a backup now, heard 0 ms ago): reclaiming");

    // Only one extra read per heal: a read that went out after it settles as usual.
    Harness g;
    g.settle();
    g.advance();
    const CallProvider first = g.expect(ProviderOp::ReadHolder);
    g.r.recheck_after_heal("web-1 heard as MASTER (priority 50)", g.now);
    g.reply(first, ok_holder(kMe));
    g.reply(g.expect(ProviderOp::ReadHolder), ok_holder(kMe));
    CHECK(*g.r.next_deadline() - g.now >= 27s);
}

TEST_CASE("Reconciler: a heal leaves a claim in progress and a backoff wait to finish") {
    Harness h;
    h.start();
    h.reply(h.expect(ProviderOp::ReadHolder), ok_holder("2002"));
    h.expect(ProviderOp::Assign);  // in flight
    CHECK(h.r.recheck_after_heal("web-1 heard as MASTER (priority 50)", h.now).empty());
    CHECK(h.r.take_calls().empty());

    Harness w;
    w.settle();
    w.advance();
    w.reply(w.expect(ProviderOp::ReadHolder), failed(ProviderOutcome::RateLimited, 429, {}, 5s));
    REQUIRE(w.r.status().phase == ReconcilePhase::Waiting);
    const Instant retry = *w.r.next_deadline();
    CHECK(retry - w.now >= 5s);
    CHECK(w.r.recheck_after_heal("web-1 heard again after 9.00 s of silence", w.now) ==
          "web-1 heard again after 9.00 s of silence: re-reading the holder when the wait ends");
    CHECK(w.r.next_deadline() == retry);  // the provider's retry-after stands

    Reconciler idle{config()};
    CHECK(idle.recheck_after_heal("web-1 heard as MASTER (priority 50)", t0).empty());
    CHECK_FALSE(idle.next_deadline().has_value());
}

TEST_CASE("Reconciler: 429 storms across many instances stay within the call budget") {
    // 40 instances, all masters, every call answered 429 with a 1 s Retry-After, for 2 hours,
    // with a backoff capped at 1 s: they want 40 calls a second, the budget must say no.
    constexpr int kInstances = 40;
    Instant now = t0;
    CallBudget budget(t0);
    Rng rng(3);
    RequestIds ids;
    PeerTable peers;
    std::vector<std::unique_ptr<Reconciler>> rs;
    for (int i = 0; i < kInstances; ++i) {
        ReconcilerConfig c = config();
        c.instance = "web" + std::to_string(i);
        c.backoff.initial = 100ms;
        c.backoff.cap = 1s;
        rs.push_back(std::make_unique<Reconciler>(c));
        rs.back()->start(now);
    }
    std::vector<Instant> calls;
    while (now < t0 + 2h) {
        Instant next = t0 + 3h;
        for (auto& r : rs) {
            if (auto d = r->next_deadline()) {
                next = std::min(next, *d);
            }
        }
        now = next;
        for (auto& r : rs) {
            r->on_deadline(ReconcilerContext{budget, rng, ids}, now);
            for (auto& c : r->take_calls()) {
                calls.push_back(now);
                ProviderReplied rep = failed(ProviderOutcome::RateLimited, 429, {}, 1s);
                rep.instance = c.instance;
                rep.request_id = c.request_id;
                r->on_reply(rep, 100, peers, ReconcilerContext{budget, rng, ids}, now);
            }
        }
    }
    std::size_t per_minute = 0;
    std::size_t per_hour = 0;
    for (std::size_t hi = 0, lo = 0, lo_h = 0; hi < calls.size(); ++hi) {
        while (calls[hi] - calls[lo] >= 60s) {
            ++lo;
        }
        while (calls[hi] - calls[lo_h] >= 1h) {
            ++lo_h;
        }
        per_minute = std::max(per_minute, hi - lo + 1);
        per_hour = std::max(per_hour, hi - lo_h + 1);
    }
    CHECK(per_minute <= 250);
    CHECK(per_hour <= 5000);
    CHECK(calls.size() > 8000);  // the budget, not the backoff, was the limit
}

TEST_CASE("PeerTable: records peers from adverts and reports relevant changes") {
    PeerTable t;
    CHECK(t.update(peer_advert("web-1", "2002", 150), "10.0.0.1:5405", t0));
    CHECK_FALSE(t.update(peer_advert("web-1", "2002", 150), "10.0.0.1:5405", t0 + 1s));
    CHECK(
        t.update(peer_advert("web-1", "2002", 150, SenderState::Backup), "10.0.0.1:5405", t0 + 2s));
    CHECK(t.update(peer_advert("web-1", "2002", 0), "10.0.0.1:5405", t0 + 3s));
    REQUIRE(t.find_by_provider_id("2002") != nullptr);
    CHECK(t.find_by_provider_id("2002")->node_name == "web-1");
    CHECK(t.find_by_provider_id("2002")->last_heard == t0 + 3s);
    CHECK(t.find_by_provider_id("") == nullptr);
    CHECK(t.find("web-9") == nullptr);
    for (std::size_t i = 0; i < PeerTable::kMaxPeers + 5; ++i) {
        t.update(peer_advert("n" + std::to_string(i), "", 100), "x", t0);
    }
    CHECK(t.peers().size() == PeerTable::kMaxPeers);
}
