// DigitalOceanProvider, the metadata id look-up and tag peer discovery over loopback against
// tests/fakes/fake_do_api.py: every classification row with the real HTTP stack in between.
#include "provider/digitalocean_provider.hpp"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "daemon/core/reconciler.hpp"
#include "fake_do_api.hpp"
#include "http_test_server.hpp"
#include "log_capture.hpp"
#include "provider/droplet_metadata.hpp"
#include "provider/provider.hpp"
#include "provider/tag_peers.hpp"

using namespace std::chrono_literals;
using failoverd::ActionStatus;
using failoverd::CallProvider;
using failoverd::Config;
using failoverd::CurlMulti;
using failoverd::DigitalOceanProvider;
using failoverd::Duration;
using failoverd::EventLoop;
using failoverd::ProviderIdentity;
using failoverd::ProviderOp;
using failoverd::ProviderOutcome;
using failoverd::ProviderReplied;
using failoverd::ProviderType;
using failoverd::testing::FakeDoApi;
using failoverd::testing::kFakeDroplet1;
using failoverd::testing::kFakeDroplet2;
using failoverd::testing::kFakeGoodToken;
using failoverd::testing::kFakeIp;
using failoverd::testing::kFakeReadOnlyToken;

using failoverd::testing::LogCapture;

namespace {

constexpr Duration kWait = 60s;

Config make_config(const FakeDoApi& fake, const std::string& token_file) {
    Config c;
    c.node.name = "n1";
    c.node.listen = {"0.0.0.0", 5405, 0};
    c.provider.type = ProviderType::DigitalOcean;
    c.provider.token_file = token_file;
    c.provider.droplet_id = "auto";
    c.provider.api_base_url = fake.api_url();
    c.provider.metadata_base_url = fake.metadata_url_for(kFakeDroplet1);
    c.provider.request_timeout = 5s;
    return c;
}

// The fake, a loop, curl and a provider acting as droplet 1 (and optionally a second one as
// droplet 2, the competing node).
struct Harness {
    // Keep-warm reads off: the rows here count requests and faults exactly; the keep-warm
    // tests turn it on.
    explicit Harness(const std::string& token = kFakeGoodToken,
                     failoverd::testing::FakeDoApiOptions options = {}, bool trust_ca = true)
        : fake(failoverd::testing::default_fake_do_setup(), std::move(options)) {
        config = make_config(fake, fake.write_token_file("token", token));
        if (trust_ca) {
            config.provider.ca_file = fake.ca_file();
        }
        provider = std::make_unique<DigitalOceanProvider>(loop, curl, config.provider,
                                                          std::to_string(kFakeDroplet1));
        provider->set_keep_warm_idle(Duration::zero());
    }

    ProviderReplied call(DigitalOceanProvider& p, ProviderOp op, const std::string& ip = kFakeIp,
                         const std::string& action_id = "") {
        CallProvider c;
        c.instance = "web";
        c.request_id = ++next_request_id;
        c.op = op;
        c.ip = ip;
        c.action_id = action_id;
        std::optional<ProviderReplied> reply;
        p.call(c, [&](ProviderReplied r) { reply = std::move(r); });
        CHECK_FALSE(reply.has_value());  // never answered inline
        REQUIRE(loop.run_until([&] { return reply.has_value(); }, kWait));
        CHECK(reply->instance == "web");
        CHECK(reply->request_id == c.request_id);
        details.push_back(reply->detail);
        return *reply;
    }
    ProviderReplied call(ProviderOp op, const std::string& ip = kFakeIp,
                         const std::string& action_id = "") {
        return call(*provider, op, ip, action_id);
    }

    // Checks `done` every 20 ms (each check may make calls) until it holds or kWait passes.
    bool poll(const std::function<bool()>& done) {
        const auto until = std::chrono::steady_clock::now() + kWait;
        while (std::chrono::steady_clock::now() < until) {
            if (done()) {
                return true;
            }
            bool ticked = false;
            failoverd::Timer tick(loop, [&] { ticked = true; });
            tick.arm_after(20ms);
            loop.run_until([&] { return ticked; }, kWait);
        }
        return false;
    }

    // Polls the action until it is no longer pending; returns the last reply.
    ProviderReplied poll_action(DigitalOceanProvider& p, const std::string& action_id) {
        ProviderReplied r;
        REQUIRE(poll([&] {
            r = call(p, ProviderOp::ReadAction, kFakeIp, action_id);
            return r.outcome != ProviderOutcome::Ok || r.action_status != ActionStatus::Pending;
        }));
        return r;
    }

    std::unique_ptr<DigitalOceanProvider> second(const std::string& token = kFakeGoodToken) {
        Config c = make_config(fake, fake.write_token_file("token2", token));
        return std::make_unique<DigitalOceanProvider>(loop, curl, c.provider,
                                                      std::to_string(kFakeDroplet2));
    }

    EventLoop loop;
    CurlMulti curl{loop};
    FakeDoApi fake;
    Config config;
    std::unique_ptr<DigitalOceanProvider> provider;
    std::uint64_t next_request_id = 0;
    std::vector<std::string> details;
};

std::string self() {
    return std::to_string(kFakeDroplet1);
}

}  // namespace

TEST_CASE("DigitalOceanProvider: reads the holder, unassigned and after an external move") {
    Harness h;
    const auto empty = h.call(ProviderOp::ReadHolder);
    CHECK(empty.outcome == ProviderOutcome::Ok);
    CHECK(empty.http_status == 200);
    CHECK(empty.holder.empty());
    CHECK_FALSE(empty.locked);
    CHECK(empty.detail.find("(request ") != std::string::npos);

    h.fake.set_holder(kFakeIp, kFakeDroplet2);
    const auto moved = h.call(ProviderOp::ReadHolder);
    CHECK(moved.outcome == ProviderOutcome::Ok);
    CHECK(moved.holder == std::to_string(kFakeDroplet2));

    const auto start = std::chrono::steady_clock::now();
    constexpr int kReads = 20;
    for (int i = 0; i < kReads; ++i) {
        CHECK(h.call(ProviderOp::ReadHolder).outcome == ProviderOutcome::Ok);
    }
    MESSAGE("read-holder on a kept-alive connection: "
            << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                       .count() /
                   kReads
            << " ms per call");

    const auto status = h.provider->status();
    CHECK(status.at("type") == "digitalocean");
    CHECK(status.at("identity") == self());
    CHECK(status.at("calls") == 2 + kReads);
    CHECK(status.at("rate_limit").at("limit").get<int>() > 0);
    CHECK(status.at("rate_limit").contains("remaining"));
    CHECK(status.at("last_error").is_null());
}

TEST_CASE("DigitalOceanProvider: assign, poll the action to completion, holder is self") {
    Harness h;
    const auto start = std::chrono::steady_clock::now();
    const auto assign = h.call(ProviderOp::Assign);
    REQUIRE(assign.outcome == ProviderOutcome::Ok);
    CHECK(assign.http_status == 201);
    CHECK_FALSE(assign.action_id.empty());
    CHECK(std::stoll(assign.action_id) > 2147483648LL);  // ids above 2^31 survive
    const auto posted = std::chrono::steady_clock::now();

    const auto locked = h.call(ProviderOp::ReadHolder);
    CHECK(locked.outcome == ProviderOutcome::Ok);

    const auto done = h.poll_action(*h.provider, assign.action_id);
    CHECK(done.outcome == ProviderOutcome::Ok);
    CHECK(done.action_status == ActionStatus::Completed);
    CHECK(done.action_id == assign.action_id);

    const auto holder = h.call(ProviderOp::ReadHolder);
    CHECK(holder.outcome == ProviderOutcome::Ok);
    CHECK(holder.holder == self());
    CHECK_FALSE(holder.locked);
    const auto end = std::chrono::steady_clock::now();
    MESSAGE("assign POST round trip "
            << std::chrono::duration<double, std::milli>(posted - start).count()
            << " ms; assign + poll + verify with 50-100 ms action delay "
            << std::chrono::duration<double, std::milli>(end - start).count() << " ms");
    CHECK(h.fake.holder() == kFakeDroplet1);
    const auto log = h.fake.holder_log();
    REQUIRE(log.size() == 1);
    CHECK(log[0].at("to") == kFakeDroplet1);
    CHECK(log[0].at("by") == "ci");
    // The id goes out as an integer and connections are reused.
    const auto requests = h.fake.request_log();
    const auto post = std::find_if(requests.begin(), requests.end(),
                                   [](const auto& r) { return r.at("method") == "POST"; });
    REQUIRE(post != requests.end());
    CHECK(post->at("droplet_id") == kFakeDroplet1);
}

TEST_CASE("DigitalOceanProvider: re-assigning to the holder is rejected; the holder is self") {
    Harness h;
    h.fake.set_holder(kFakeIp, kFakeDroplet1);
    const auto again = h.call(ProviderOp::Assign);
    CHECK(again.outcome == ProviderOutcome::Rejected);
    CHECK(again.http_status == 422);
    CHECK(again.detail.find("unprocessable_entity") != std::string::npos);
    // The core's rule: after a rejected assign it re-reads, and holder == self is success.
    const auto read = h.call(ProviderOp::ReadHolder);
    CHECK(read.holder == self());
}

TEST_CASE("DigitalOceanProvider: a pending event on the IP or the droplet is Locked") {
    Harness h;
    h.fake.post_options({{"action_result", "never"}});
    auto other = h.second();
    const auto first = h.call(*other, ProviderOp::Assign);
    REQUIRE(first.outcome == ProviderOutcome::Ok);
    const auto read = h.call(ProviderOp::ReadHolder);
    CHECK(read.locked);
    const auto ip_busy = h.call(ProviderOp::Assign);
    CHECK(ip_busy.outcome == ProviderOutcome::Locked);
    CHECK(ip_busy.http_status == 422);
    CHECK(ip_busy.detail.find("pending event") != std::string::npos);

    h.fake.reset();
    h.fake.droplet_busy(kFakeDroplet1, 600);
    const auto droplet_busy = h.call(ProviderOp::Assign);
    CHECK(droplet_busy.outcome == ProviderOutcome::Locked);
    CHECK(droplet_busy.detail.find("Droplet already has a pending event") != std::string::npos);
}

TEST_CASE("DigitalOceanProvider: 429 is RateLimited with retry_after") {
    Harness h;
    SUBCASE("injected 429 with retry-after") {
        h.fake.post_fault({{"route", "read_ip"}, {"kind", "429"}, {"retry_after", 7}});
        const auto r = h.call(ProviderOp::ReadHolder);
        CHECK(r.outcome == ProviderOutcome::RateLimited);
        CHECK(r.http_status == 429);
        CHECK(r.retry_after == 7s);
        CHECK(h.provider->last_rate_limit().remaining == 0);
    }
    SUBCASE("burst limit trips with retry-after") {
        h.fake.post_options({{"burst_limit", 3}});
        ProviderReplied r;
        for (int i = 0; i < 4; ++i) {
            r = h.call(ProviderOp::ReadHolder);
        }
        CHECK(r.outcome == ProviderOutcome::RateLimited);
        REQUIRE(r.retry_after.has_value());
        CHECK(*r.retry_after >= 1s);
        CHECK(*r.retry_after <= 60s);
    }
    SUBCASE("hourly limit: no retry-after, waits for ratelimit-reset") {
        h.fake.post_options({{"hourly_limit", 2}});
        ProviderReplied r;
        for (int i = 0; i < 3; ++i) {
            r = h.call(ProviderOp::Assign);
        }
        CHECK(r.outcome == ProviderOutcome::RateLimited);
        REQUIRE(r.retry_after.has_value());
        // The oldest request expires an hour after it was made (minus test time, clock skew).
        CHECK(*r.retry_after > 3000s);
        CHECK(*r.retry_after <= std::chrono::hours(1));
    }
}

TEST_CASE("DigitalOceanProvider: 5xx, hangs, drops and truncated bodies are Transient") {
    Harness h;
    for (const char* kind : {"500", "502", "503", "504"}) {
        CAPTURE(kind);
        h.fake.post_fault({{"route", "read_ip"}, {"kind", kind}});
        const auto r = h.call(ProviderOp::ReadHolder);
        CHECK(r.outcome == ProviderOutcome::Transient);
        CHECK(r.http_status == std::stoi(kind));
        CHECK(r.detail.find("HTTP " + std::string(kind)) == 0);
        CHECK(r.detail.find("(request ") != std::string::npos);
    }
    // One drop is enough: an assign is never re-sent by libcurl (see the next test).
    h.fake.post_fault({{"route", "assign"}, {"kind", "drop"}});
    const auto drop = h.call(ProviderOp::Assign);
    CHECK(drop.outcome == ProviderOutcome::Transient);
    CHECK(drop.http_status == 0);
    CHECK(drop.detail.rfind("transport error: ", 0) == 0);
    CHECK(h.fake.state().at("faults").empty());
    CHECK(h.fake.holder() == std::nullopt);  // a plain drop changes nothing

    h.fake.post_fault({{"route", "read_action"}, {"kind", "truncate"}});
    h.fake.post_options({{"action_result", "never"}});
    const auto posted = h.call(ProviderOp::Assign);
    REQUIRE(posted.outcome == ProviderOutcome::Ok);
    const auto truncated = h.call(ProviderOp::ReadAction, kFakeIp, posted.action_id);
    CHECK(truncated.outcome == ProviderOutcome::Transient);
    CHECK(truncated.http_status == 200);
    CHECK(truncated.detail.find("unreadable action") != std::string::npos);
}

namespace {

// The assign POSTs in the fake's request log.
int assign_posts_logged(const FakeDoApi& fake) {
    const auto log = fake.request_log();
    return static_cast<int>(std::count_if(log.begin(), log.end(), [](const auto& e) {
        return e.at("method") == "POST" && e.at("droplet_id").is_number();
    }));
}

}  // namespace

TEST_CASE("DigitalOceanProvider: an assign whose reply is lost is never re-sent by libcurl") {
    // On a kept-alive connection, libcurl would re-send a request whose connection died before
    // any reply byte on a fresh one; for an assign the fake already applied, that is a second
    // POST (answered 422 pending event). The POST body cannot be rewound, so it is sent once
    // and the loss comes back as Transient, for the core to read before posting again.
    Harness h;
    REQUIRE(h.call(ProviderOp::ReadHolder).outcome == ProviderOutcome::Ok);  // warm connection
    h.fake.post_options({{"action_result", "never"}});
    h.fake.post_fault({{"route", "assign"}, {"kind", "commit_then_drop"}});
    const auto r = h.call(ProviderOp::Assign);
    CHECK(r.outcome == ProviderOutcome::Transient);
    CHECK(r.http_status == 0);
    CHECK(r.detail == "transport error: " + std::string(failoverd::kLostAfterSending));
    CHECK(assign_posts_logged(h.fake) == 1);
    CHECK(h.fake.state().at("counters").at("assign_posts") == 1);
    const auto read = h.call(ProviderOp::ReadHolder);
    CHECK(read.outcome == ProviderOutcome::Ok);
    CHECK(read.locked);  // the one POST made the action
    CHECK(assign_posts_logged(h.fake) == 1);
}

namespace {

// The core's Reconciler claiming the IP for droplet 1 through the real provider, as the daemon
// drives it (an uncontended takeover: assign first); returns its status once the provider says
// this droplet holds the IP.
failoverd::ReconcilerStatus claim_with_reconciler(Harness& h) {
    using failoverd::Reconciler;
    failoverd::ReconcilerConfig rc;
    rc.instance = "web";
    rc.ip = kFakeIp;
    rc.self_provider_id = self();
    rc.self_name = "n1";
    rc.action_poll_interval = 200ms;
    Reconciler r(rc);
    failoverd::CallBudget budget(h.loop.now());
    failoverd::Rng rng(7);
    failoverd::RequestIds ids;
    failoverd::PeerTable peers;
    const auto ctx = [&] { return failoverd::ReconcilerContext{budget, rng, ids}; };
    const std::function<void()> send = [&] {
        for (const CallProvider& c : r.take_calls()) {
            h.provider->call(c, [&](ProviderReplied reply) {
                r.on_reply(reply, 100, peers, ctx(), h.loop.now());
                send();
            });
        }
    };
    r.start(h.loop.now(), /*assign_first=*/true);
    REQUIRE(h.poll([&] {
        if (r.next_deadline() && *r.next_deadline() <= h.loop.now()) {
            r.on_deadline(ctx(), h.loop.now());
            send();
        }
        return r.status().phase == failoverd::ReconcilePhase::Settled;
    }));
    return r.status();
}

}  // namespace

TEST_CASE("DigitalOceanProvider + Reconciler: one POST per claim when its reply is lost") {
    for (const int drops : {1, 2}) {
        CAPTURE(drops);
        Harness h;
        REQUIRE(h.call(ProviderOp::ReadHolder).outcome == ProviderOutcome::Ok);  // warm
        h.fake.post_fault({{"route", "assign"}, {"kind", "commit_then_drop"}, {"count", drops}});
        const auto status = claim_with_reconciler(h);
        CHECK(h.fake.holder() == kFakeDroplet1);
        CHECK(status.observed_holder == self());
        CHECK(status.assigns == 1);
        CHECK(status.moves_confirmed == 1);
        CHECK(status.note ==
              "holder is this droplet: IP confirmed (the assign whose reply was lost was applied)");
        CHECK(assign_posts_logged(h.fake) == 1);
        CHECK(h.fake.state().at("counters").at("assign_posts") == 1);
        // A second fault is still queued: no other POST went out to take it.
        CHECK(h.fake.state().at("faults").size() == static_cast<std::size_t>(drops - 1));
    }
}

TEST_CASE("DigitalOceanProvider: a GET on a dead reused connection is still retried by libcurl") {
    // Reads are safe to repeat: libcurl's own retry on a fresh connection stays on for them.
    Harness h;
    REQUIRE(h.call(ProviderOp::ReadHolder).outcome == ProviderOutcome::Ok);  // warm connection
    h.fake.post_fault({{"route", "read_ip"}, {"kind", "drop"}});
    const auto r = h.call(ProviderOp::ReadHolder);
    CHECK(r.outcome == ProviderOutcome::Ok);
    const auto log = h.fake.request_log();
    REQUIRE(log.size() >= 3);
    CHECK(log[log.size() - 2].value("fault", "") == "drop");
}

TEST_CASE("DigitalOceanProvider: a hang past request_timeout is Transient within the timeout") {
    Harness h;
    h.config.provider.request_timeout = 300ms;
    auto fast = std::make_unique<DigitalOceanProvider>(h.loop, h.curl, h.config.provider, self());
    h.fake.post_fault({{"route", "read_ip"}, {"kind", "hang"}, {"hang_seconds", 10}});
    const auto start = std::chrono::steady_clock::now();
    const auto r = h.call(*fast, ProviderOp::ReadHolder);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(r.outcome == ProviderOutcome::Transient);
    CHECK(r.http_status == 0);
    CHECK(r.detail.rfind("timed out", 0) == 0);
    CHECK(took < 5s);
    // The next call on a fresh connection works.
    CHECK(h.call(*fast, ProviderOp::ReadHolder).outcome == ProviderOutcome::Ok);
}

TEST_CASE("DigitalOceanProvider: commit_then_drop is Transient, and a read shows the IP moving") {
    Harness h;
    h.fake.post_fault({{"route", "assign"}, {"kind", "commit_then_drop"}});
    const auto lost = h.call(ProviderOp::Assign);
    CHECK(lost.outcome == ProviderOutcome::Transient);
    CHECK(lost.http_status == 0);
    // The POST happened: the IP is locked by our action, or already ours.
    const auto read = h.call(ProviderOp::ReadHolder);
    CHECK(read.outcome == ProviderOutcome::Ok);
    CHECK((read.locked || read.holder == self()));
    REQUIRE(h.poll([&] { return h.call(ProviderOp::ReadHolder).holder == self(); }));
    // Posting again now would be a 422: the core reads first and finds itself.
    CHECK(h.call(ProviderOp::Assign).outcome == ProviderOutcome::Rejected);
}

TEST_CASE("DigitalOceanProvider: bad token and read-only token are Unauthorized") {
    SUBCASE("unknown token, upper and lower case error id") {
        Harness h("dop_v1_not_a_known_token");
        const auto r = h.call(ProviderOp::ReadHolder);
        CHECK(r.outcome == ProviderOutcome::Unauthorized);
        CHECK(r.http_status == 401);
        CHECK(r.detail.find("HTTP 401 Unauthorized") == 0);
        h.fake.post_options({{"unauthorized_lowercase", true}});
        const auto lower = h.call(ProviderOp::Assign);
        CHECK(lower.outcome == ProviderOutcome::Unauthorized);
        CHECK(lower.detail.find("HTTP 401 unauthorized") == 0);
        const auto status = h.provider->status();
        CHECK(status.at("last_error").at("http_status") == 401);
        CHECK_FALSE(status.at("last_error").at("request_id").get<std::string>().empty());
        CHECK(status.at("outcomes").at("unauthorized") == 2);
    }
    SUBCASE("read-only token may read but not assign") {
        Harness h(kFakeReadOnlyToken);
        CHECK(h.call(ProviderOp::ReadHolder).outcome == ProviderOutcome::Ok);
        const auto r = h.call(ProviderOp::Assign);
        CHECK(r.outcome == ProviderOutcome::Unauthorized);
        CHECK(r.http_status == 403);
        CHECK(r.detail.find("forbidden") != std::string::npos);
    }
}

TEST_CASE("DigitalOceanProvider: unknown IP and a BYOIP action are NotFound") {
    Harness h;
    const auto unknown = h.call(ProviderOp::ReadHolder, "192.0.2.99");
    CHECK(unknown.outcome == ProviderOutcome::NotFound);
    CHECK(unknown.http_status == 404);

    h.fake.post_options({{"byoip_404", true}});
    const auto posted = h.call(ProviderOp::Assign);
    REQUIRE(posted.outcome == ProviderOutcome::Ok);
    const auto action = h.call(ProviderOp::ReadAction, kFakeIp, posted.action_id);
    CHECK(action.outcome == ProviderOutcome::NotFound);
    // The core falls back to the holder, which gets there anyway.
    REQUIRE(h.poll([&] { return h.call(ProviderOp::ReadHolder).holder == self(); }));
}

TEST_CASE("DigitalOceanProvider: token file rules") {
    FakeDoApi fake;
    EventLoop loop;
    CurlMulti curl(loop);
    Config c = make_config(fake, fake.write_token_file("open", kFakeGoodToken, 0644));
    try {
        DigitalOceanProvider p(loop, curl, c.provider, self());
        FAIL("a group-readable token file was accepted");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        CHECK(what.find(c.provider.token_file) != std::string::npos);
        CHECK(what.find("0644") != std::string::npos);
        CHECK(what.find(kFakeGoodToken) == std::string::npos);
    }
    c.provider.token_file = fake.write_token_file("empty", "  ", 0600);
    CHECK_THROWS_WITH_AS(DigitalOceanProvider(loop, curl, c.provider, self()),
                         doctest::Contains("is empty"), std::runtime_error);
    c.provider.token_file = fake.dir() + "/missing";
    CHECK_THROWS_AS(DigitalOceanProvider(loop, curl, c.provider, self()), std::runtime_error);
    c.provider.token_file = fake.write_token_file("ok", std::string("\n  ") + kFakeGoodToken, 0400);
    CHECK_THROWS_AS(DigitalOceanProvider(loop, curl, c.provider, "auto"), std::invalid_argument);
    DigitalOceanProvider ok(loop, curl, c.provider, self());
    CHECK(ok.identity() == self());
}

TEST_CASE("DigitalOceanProvider: cancel_all answers nothing more") {
    Harness h;
    h.fake.post_fault({{"route", "read_ip"}, {"kind", "hang"}, {"hang_seconds", 10}});
    bool answered = false;
    CallProvider c;
    c.instance = "web";
    c.request_id = 1;
    c.ip = kFakeIp;
    h.provider->call(c, [&](ProviderReplied) { answered = true; });
    c.op = ProviderOp::ReadAction;
    c.action_id = "not-an-id";
    h.provider->call(c, [&](ProviderReplied) { answered = true; });
    CHECK(h.provider->in_flight() == 1);
    h.provider->cancel_all();
    CHECK(h.provider->in_flight() == 0);
    CHECK(h.curl.active() == 0);
    // Posted answers run in FIFO order: once this marker ran, the dropped one would have too.
    bool marker = false;
    h.loop.post([&] { marker = true; });
    REQUIRE(h.loop.run_until([&] { return marker; }, kWait));
    CHECK_FALSE(answered);
}

TEST_CASE("droplet metadata: the id, also after the service refused at first") {
    EventLoop loop;
    CurlMulti curl(loop);
    FakeDoApi fake;
    std::optional<std::int64_t> id;
    std::string error;
    bool done = false;
    auto finish = [&](std::optional<std::int64_t> i, std::string e) {
        id = i;
        error = std::move(e);
        done = true;
    };
    failoverd::fetch_droplet_id(loop, curl, fake.metadata_url_for(kFakeDroplet2), loop.now() + 30s,
                                finish);
    CHECK_FALSE(done);
    REQUIRE(loop.run_until([&] { return done; }, kWait));
    CHECK(id == kFakeDroplet2);
    CHECK(error.empty());

    done = false;
    fake.post_options({{"metadata_mode", "refuse"}});
    const auto started = curl.requests_started();
    failoverd::fetch_droplet_id(loop, curl, fake.metadata_url_for(kFakeDroplet1), loop.now() + 60s,
                                finish);
    // Once a refused attempt has been retried, the service comes up.
    REQUIRE(loop.run_until([&] { return curl.requests_started() >= started + 2 || done; }, kWait));
    CHECK_FALSE(done);
    fake.post_options({{"metadata_mode", "ok"}});
    REQUIRE(loop.run_until([&] { return done; }, kWait));
    CHECK(id == kFakeDroplet1);

    done = false;
    fake.post_options({{"metadata_mode", "500"}});
    failoverd::fetch_droplet_id(loop, curl, fake.metadata_url_for(kFakeDroplet1),
                                loop.now() + 1500ms, finish);
    REQUIRE(loop.run_until([&] { return done; }, kWait));
    CHECK_FALSE(id.has_value());
    CAPTURE(error);
    CHECK(error.find("metadata service " + fake.metadata_url_for(kFakeDroplet1)) == 0);
    CHECK(error.find("attempt(s): HTTP 500") != std::string::npos);
}

TEST_CASE("resolve_provider_identity: metadata id and peers from the tag, self excluded") {
    EventLoop loop;
    CurlMulti curl(loop);
    // Reads only: listing droplets by tag needs tag:read besides droplet:read.
    auto setup = failoverd::testing::default_fake_do_setup();
    setup["tokens"][kFakeReadOnlyToken]["scopes"].push_back("tag:read");
    setup["tokens"]["dop_v1_notag_0123456789abcdef"] = {
        {"name", "notag"}, {"scopes", {"reserved_ip:read", "droplet:read", "account:read"}}};
    FakeDoApi fake(setup);
    Config c = make_config(fake, fake.write_token_file("token", kFakeReadOnlyToken));
    c.cluster.peers_from_tag = "failoverd";
    c.node.listen.port = 6000;
    std::optional<ProviderIdentity> identity;
    std::string error;
    bool done = false;
    auto finish = [&](std::optional<ProviderIdentity> i, std::string e) {
        identity = std::move(i);
        error = std::move(e);
        done = true;
    };
    failoverd::resolve_provider_identity(c, loop, curl, 30s, finish);
    CHECK_FALSE(done);
    REQUIRE(loop.run_until([&] { return done; }, kWait));
    REQUIRE_MESSAGE(identity.has_value(), error);
    CHECK(identity->provider_id == self());
    REQUIRE(identity->tag_peers.size() == 1);
    CHECK(identity->tag_peers[0].host == "10.77.0.2");
    CHECK(identity->tag_peers[0].port == 6000);

    SUBCASE("a configured droplet id skips the metadata service") {
        c.provider.droplet_id = std::to_string(kFakeDroplet2);
        c.provider.metadata_base_url = "http://127.0.0.1:1";
        done = false;
        failoverd::resolve_provider_identity(c, loop, curl, 30s, finish);
        REQUIRE(loop.run_until([&] { return done; }, kWait));
        REQUIRE_MESSAGE(identity.has_value(), error);
        CHECK(identity->provider_id == std::to_string(kFakeDroplet2));
        REQUIRE(identity->tag_peers.size() == 1);
        CHECK(identity->tag_peers[0].host == "10.77.0.1");
    }
    SUBCASE("a 5xx during discovery is retried") {
        fake.post_fault({{"route", "droplets"}, {"kind", "503"}, {"count", 2}});
        done = false;
        failoverd::resolve_provider_identity(c, loop, curl, 30s, finish);
        REQUIRE(loop.run_until([&] { return done; }, kWait));
        REQUIRE_MESSAGE(identity.has_value(), error);
        CHECK(identity->tag_peers.size() == 1);
    }
    SUBCASE("a bad token fails at once, without showing it") {
        c.provider.token_file = fake.write_token_file("bad", "dop_v1_revoked_secret");
        done = false;
        const auto before = fake.request_log().size();
        failoverd::resolve_provider_identity(c, loop, curl, 30s, finish);
        REQUIRE(loop.run_until([&] { return done; }, kWait));
        CHECK_FALSE(identity.has_value());
        CHECK(error.find("refused the token") != std::string::npos);
        CHECK(error.find("HTTP 401") != std::string::npos);
        CHECK(error.find("dop_v1_revoked_secret") == std::string::npos);
        // Not retried: exactly one more request reaches the log.
        failoverd::testing::poll_until(
            loop, [&] { return fake.request_log().size() >= before + 1; }, kWait);
        CHECK(fake.request_log().size() == before + 1);
    }
    SUBCASE("a token without tag:read may not list the tag") {
        c.provider.token_file = fake.write_token_file("notag", "dop_v1_notag_0123456789abcdef");
        done = false;
        failoverd::resolve_provider_identity(c, loop, curl, 30s, finish);
        REQUIRE(loop.run_until([&] { return done; }, kWait));
        CHECK_FALSE(identity.has_value());
        CHECK(error.find("HTTP 403") != std::string::npos);
        CHECK(error.find("tag:read") != std::string::npos);
    }
    SUBCASE("a tag no droplet carries fails") {
        c.cluster.peers_from_tag = "nobody";
        done = false;
        failoverd::resolve_provider_identity(c, loop, curl, 30s, finish);
        REQUIRE(loop.run_until([&] { return done; }, kWait));
        CHECK_FALSE(identity.has_value());
        CHECK(error.find("no droplet carries the tag") != std::string::npos);
    }
    SUBCASE("a droplet id that is not a number fails") {
        c.provider.droplet_id = "web-1";
        done = false;
        failoverd::resolve_provider_identity(c, loop, curl, 30s, finish);
        CHECK_FALSE(done);
        REQUIRE(loop.run_until([&] { return done; }, kWait));
        CHECK_FALSE(identity.has_value());
        CHECK(error.find("'web-1'") != std::string::npos);
    }
}

TEST_CASE("tag peers: private address preferred, public as fallback, self and duplicates out") {
    std::vector<failoverd::digitalocean::Droplet> droplets(4);
    droplets[0] = {1, "self", "nyc3", "10.0.0.1", "198.51.100.1", {}};
    droplets[1] = {2, "a", "nyc3", "10.0.0.2", "198.51.100.2", {}};
    droplets[2] = {3, "b", "nyc3", "", "198.51.100.3", {}};
    droplets[3] = {4, "c", "nyc3", "", "", {}};
    const auto peers = failoverd::tag_peer_endpoints(droplets, 1, 5405);
    REQUIRE(peers.size() == 2);
    CHECK(peers[0].to_string() == "10.0.0.2:5405");
    CHECK(peers[1].to_string() == "198.51.100.3:5405");
}

TEST_CASE("DigitalOceanProvider: the token appears in no log, detail or status") {
    LogCapture logs;
    Harness h;
    h.fake.post_fault({{"route", "any"}, {"kind", "500"}, {"count", 2}});
    h.call(ProviderOp::ReadHolder);
    h.call(ProviderOp::Assign);
    h.fake.post_fault({{"route", "read_ip"}, {"kind", "502"}});
    h.call(ProviderOp::ReadHolder);
    h.fake.post_fault({{"route", "read_ip"}, {"kind", "429"}, {"retry_after", 3}});
    h.call(ProviderOp::ReadHolder);
    h.call(ProviderOp::ReadAction, kFakeIp, "999999");
    h.call(ProviderOp::ReadHolder);  // succeeds: "succeeded again" line
    auto bad = h.second("dop_v1_wrong_secret_value");
    h.call(*bad, ProviderOp::ReadHolder);
    h.call(*bad, ProviderOp::Assign);

    const std::string text = logs.text();
    CHECK(text.find("[web] provider read-holder " + std::string(kFakeIp) +
                    " failed (transient): HTTP 500 server_error") != std::string::npos);
    CHECK(text.find("failed (unauthorized): HTTP 401") != std::string::npos);
    CHECK(text.find("succeeded again") != std::string::npos);
    for (const char* token : {kFakeGoodToken, "dop_v1_wrong_secret_value"}) {
        CAPTURE(token);
        CHECK(text.find(token) == std::string::npos);
        CHECK(h.provider->status().dump().find(token) == std::string::npos);
        CHECK(bad->status().dump().find(token) == std::string::npos);
        for (const auto& d : h.details) {
            CHECK(d.find(token) == std::string::npos);
        }
    }
    CHECK(text.find("Bearer") == std::string::npos);
}

namespace {

failoverd::testing::FakeDoApiOptions with_tls() {
    failoverd::testing::FakeDoApiOptions o;
    o.tls = true;
    return o;
}

}  // namespace

TEST_CASE(
    "DigitalOceanProvider: over HTTPS with ca_file, the assign goes out on a warm connection") {
    LogCapture logs;
    Harness h(kFakeGoodToken, with_tls());
    REQUIRE(h.fake.api_url().rfind("https://", 0) == 0);
    // Keep-warm on, as in the daemon: the first read opens the connection (TCP + TLS).
    h.provider->set_keep_warm_idle(DigitalOceanProvider::kKeepWarmIdle);
    REQUIRE(h.loop.run_until(
        [&] { return h.provider->keep_warm_calls() == 1 && h.provider->connections_new() == 1; },
        kWait));
    REQUIRE(h.poll([&] { return h.fake.request_log().size() >= 1; }));
    CHECK(h.fake.request_log().at(0).at("path") == "/v2/reserved_ips?per_page=1");

    const auto read = h.call(ProviderOp::ReadHolder);
    CHECK(read.outcome == ProviderOutcome::Ok);
    const auto assign = h.call(ProviderOp::Assign);
    REQUIRE(assign.outcome == ProviderOutcome::Ok);
    CHECK(assign.http_status == 201);
    CHECK(h.provider->connections_new() == 1);  // one handshake for all three requests
    CHECK(h.provider->connections_reused() == 2);
    CHECK(h.provider->keep_warm_failures() == 0);
    const auto status = h.provider->status();
    CHECK(status.at("connections").at("last_assign") == "reused");
    CHECK(status.at("connections").at("new") == 1);
    CHECK(status.at("keep_warm").at("calls") == 1);
    CHECK(logs.text().find("[web] provider assign " + std::string(kFakeIp) +
                           " answered HTTP 201 in ") != std::string::npos);
    CHECK(logs.text().find(" on a reused connection") != std::string::npos);
    const auto done = h.poll_action(*h.provider, assign.action_id);
    CHECK(done.action_status == ActionStatus::Completed);
    CHECK(h.call(ProviderOp::ReadHolder).holder == self());
}

TEST_CASE("DigitalOceanProvider: keep-warm reads only while idle, on the same connection") {
    Harness h;
    h.provider->set_keep_warm_idle(300ms);
    REQUIRE(h.loop.run_until([&] { return h.provider->keep_warm_calls() >= 3; }, kWait));
    // Each keep-warm read found the connection the first one opened.
    REQUIRE(h.loop.run_until(
        [&] {
            return h.provider->connections_new() + h.provider->connections_reused() >=
                   h.provider->keep_warm_calls();
        },
        kWait));
    CHECK(h.provider->connections_new() == 1);
    CHECK(h.provider->connections_reused() >= 2);
    // Calls from the core push the next keep-warm read out: none while they keep coming.
    h.provider->set_keep_warm_idle(2s);
    const auto before = h.provider->keep_warm_calls();
    for (int i = 0; i < 5; ++i) {
        CHECK(h.call(ProviderOp::ReadHolder).outcome == ProviderOutcome::Ok);
    }
    CHECK(h.provider->keep_warm_calls() <= before + 1);  // at most one already due
    for (const auto& r : h.fake.request_log()) {
        CHECK(r.at("method") == "GET");
    }
}

TEST_CASE("DigitalOceanProvider: HTTPS without the test CA fails as a TLS error, token unseen") {
    LogCapture logs;
    // The system store does not know the test CA: every request fails verification.
    Harness h(kFakeGoodToken, with_tls(), /*trust_ca=*/false);
    CHECK(h.config.provider.ca_file.empty());
    h.provider->set_keep_warm_idle(200ms);
    const auto r = h.call(ProviderOp::ReadHolder);
    CHECK(r.outcome == ProviderOutcome::Transient);
    CHECK(r.http_status == 0);
    MESSAGE("without ca_file: " << r.detail);
    CHECK(r.detail.find("SSL certificate problem") != std::string::npos);
    CHECK(r.detail.find("local issuer certificate") != std::string::npos);
    const auto assign = h.call(ProviderOp::Assign);
    CHECK(assign.outcome == ProviderOutcome::Transient);
    REQUIRE(h.loop.run_until([&] { return h.provider->keep_warm_failures() >= 1; }, kWait));
    const auto status = h.provider->status();
    const std::string text = logs.text();
    CHECK(status.at("outcomes").at("transient") == 2);
    CHECK(status.at("last_error").at("detail").get<std::string>().find("SSL certificate") !=
          std::string::npos);
    CHECK(status.at("keep_warm").at("last_error").get<std::string>().find("certificate") !=
          std::string::npos);
    // A connection was opened for it, and the handshake failed.
    CHECK(status.at("connections").at("last_assign") == "new");
    CHECK(text.find("provider assign " + std::string(kFakeIp) + " answered nothing in ") !=
          std::string::npos);
    CHECK(h.fake.holder() != kFakeDroplet1);
    CHECK(text.find("SSL certificate problem") != std::string::npos);
    CHECK(text.find(kFakeGoodToken) == std::string::npos);
    CHECK(status.dump().find(kFakeGoodToken) == std::string::npos);
    for (const auto& d : h.details) {
        CHECK(d.find(kFakeGoodToken) == std::string::npos);
    }
}

TEST_CASE("make_provider: by type") {
    FakeDoApi fake;
    EventLoop loop;
    CurlMulti curl(loop);
    Config c = make_config(fake, fake.write_token_file("token", kFakeGoodToken));
    auto p = failoverd::make_provider(c, loop, curl, self());
    REQUIRE(p != nullptr);
    CHECK(p->identity() == self());
    CHECK(p->status().at("type") == "digitalocean");
    c.provider.type = ProviderType::None;
    CHECK(failoverd::make_provider(c, loop, curl, "") == nullptr);
    c.provider.type = ProviderType::Exec;
    c.provider.exec_command = {"/bin/true"};
    auto e = failoverd::make_provider(c, loop, curl, "n1");
    REQUIRE(e != nullptr);
    CHECK(e->identity() == "n1");
    CHECK(e->status().at("type") == "exec");
}
