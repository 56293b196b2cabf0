// The pure DigitalOcean API layer: request shapes and the classification of every answer the
// reference (provider-apis.md §1.4, §6) lists, from fixtures in tests/fixtures/digitalocean.
#include "provider/digitalocean_api.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
using failoverd::ActionStatus;
using failoverd::ProviderOp;
using failoverd::ProviderOutcome;
using failoverd::ProviderReplied;
namespace api = failoverd::digitalocean;

namespace {

constexpr std::int64_t kNow = 1764250000;

std::string read_fixture(const std::string& name) {
    std::ifstream in(std::string(FAILOVERD_FIXTURES) + "/digitalocean/" + name);
    REQUIRE_MESSAGE(in.good(), "missing fixture " << name);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

api::ApiResponse response(long status, const std::string& fixture,
                          std::map<std::string, std::string> headers = {}) {
    api::ApiResponse r;
    r.status = status;
    r.body = fixture.empty() ? std::string() : read_fixture(fixture);
    r.headers = std::move(headers);
    return r;
}

ProviderReplied classify(ProviderOp op, const api::ApiResponse& r) {
    return api::classify(op, r, kNow);
}

std::string header_value(const api::ApiRequest& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
        if (k == name) {
            return v;
        }
    }
    return {};
}

}  // namespace

TEST_CASE("digitalocean api: read holder, read action and listing requests are GETs") {
    const auto holder = api::read_holder_request("203.0.113.10");
    CHECK(holder.method == "GET");
    CHECK(holder.path == "/v2/reserved_ips/203.0.113.10");
    CHECK(holder.body.empty());
    CHECK(header_value(holder, "Accept") == "application/json");
    CHECK(header_value(holder, "Content-Type").empty());

    const auto action = api::read_action_request("203.0.113.10", "2147483649");
    CHECK(action.method == "GET");
    CHECK(action.path == "/v2/reserved_ips/203.0.113.10/actions/2147483649");

    const auto list = api::tagged_droplets_request("failoverd:prod web", 3);
    CHECK(list.path == "/v2/droplets?tag_name=failoverd%3Aprod%20web&page=3&per_page=200");
    CHECK(api::droplet_request(3000000001).path == "/v2/droplets/3000000001");
    CHECK(api::account_request().path == "/v2/account");
    CHECK(api::account_request().method == "GET");
}

TEST_CASE("digitalocean api: assign posts an integer droplet id as JSON") {
    const auto r = api::assign_request("203.0.113.10", 9007199254740993);
    CHECK(r.method == "POST");
    CHECK(r.path == "/v2/reserved_ips/203.0.113.10/actions");
    CHECK(header_value(r, "Content-Type") == "application/json");
    CHECK(header_value(r, "Accept") == "application/json");
    const auto body = nlohmann::json::parse(r.body);
    CHECK(body.at("type") == "assign");
    REQUIRE(body.at("droplet_id").is_number_integer());
    CHECK(body.at("droplet_id").get<std::int64_t>() == 9007199254740993);
    CHECK(r.body.find("\"9007199254740993\"") == std::string::npos);
}

TEST_CASE("digitalocean api: read holder with a full droplet object and a huge id") {
    const auto r = classify(ProviderOp::ReadHolder,
                            response(200, "reserved_ip_assigned.json", {{"x-request-id", "r1"}}));
    CHECK(r.outcome == ProviderOutcome::Ok);
    CHECK(r.holder == "9007199254740993");
    CHECK_FALSE(r.locked);
    CHECK(r.http_status == 200);
    CHECK(r.detail == "HTTP 200 (request r1)");

    const auto ip = api::parse_reserved_ip(read_fixture("reserved_ip_assigned.json"));
    REQUIRE(ip.has_value());
    CHECK(ip->ip == "203.0.113.10");
    CHECK(ip->region == "nyc3");
    CHECK(ip->holder == 9007199254740993);
}

TEST_CASE("digitalocean api: droplet null, droplet absent and the floating_ip root key") {
    const auto unassigned =
        classify(ProviderOp::ReadHolder, response(200, "reserved_ip_unassigned.json"));
    CHECK(unassigned.outcome == ProviderOutcome::Ok);
    CHECK(unassigned.holder.empty());
    CHECK_FALSE(unassigned.locked);

    CHECK(unassigned.holder_known);

    // No "droplet" key: a token without droplet:read. Not "unassigned": unknown.
    const auto absent =
        classify(ProviderOp::ReadHolder, response(200, "reserved_ip_locked_no_droplet.json"));
    CHECK(absent.outcome == ProviderOutcome::Ok);
    CHECK_FALSE(absent.holder_known);
    CHECK(absent.holder.empty());
    CHECK(absent.locked);
    CHECK_FALSE(
        api::parse_reserved_ip(read_fixture("reserved_ip_locked_no_droplet.json"))->holder_shown);

    const auto legacy =
        classify(ProviderOp::ReadHolder, response(200, "floating_ip_assigned.json"));
    CHECK(legacy.outcome == ProviderOutcome::Ok);
    CHECK(legacy.holder == "3000000002");
    CHECK(legacy.locked);
    CHECK(api::parse_reserved_ip(read_fixture("floating_ip_assigned.json"))->region == "ams3");
}

TEST_CASE("digitalocean api: truncated JSON or HTML on a 2xx is transient") {
    const auto truncated =
        classify(ProviderOp::ReadHolder,
                 response(200, "reserved_ip_truncated.json", {{"X-Request-Id", "r-trunc"}}));
    CHECK(truncated.outcome == ProviderOutcome::Transient);
    CHECK(truncated.http_status == 200);
    CHECK(truncated.detail ==
          "HTTP 200: unreadable reserved IP in the response body (request r-trunc)");

    const auto html = classify(ProviderOp::Assign, response(201, "html_502.html"));
    CHECK(html.outcome == ProviderOutcome::Transient);
    CHECK(html.action_id.empty());

    api::ApiResponse empty;
    empty.status = 200;
    CHECK(classify(ProviderOp::ReadAction, empty).outcome == ProviderOutcome::Transient);
    // Valid JSON of the wrong shape is just as unreadable.
    empty.body = R"({"reserved_ip": {"droplet": {"name": "no id"}}})";
    CHECK(classify(ProviderOp::ReadHolder, empty).outcome == ProviderOutcome::Transient);
    empty.body = R"({"reserved_ip": {"droplet": null, "locked": "yes"}})";
    CHECK(classify(ProviderOp::ReadHolder, empty).outcome == ProviderOutcome::Transient);
}

TEST_CASE("digitalocean api: assign returns the action id; polls map the action status") {
    const auto assign = classify(ProviderOp::Assign, response(201, "action_in_progress.json"));
    CHECK(assign.outcome == ProviderOutcome::Ok);
    CHECK(assign.action_id == "2147483649");
    CHECK(assign.action_status == ActionStatus::Pending);

    const auto done = classify(ProviderOp::ReadAction, response(200, "action_completed.json"));
    CHECK(done.outcome == ProviderOutcome::Ok);
    CHECK(done.action_status == ActionStatus::Completed);

    const auto errored = classify(ProviderOp::ReadAction, response(200, "action_errored.json"));
    CHECK(errored.action_status == ActionStatus::Errored);
    CHECK(errored.action_id == "2147483650");

    // The Terraform provider treats "new" as pending; so does anything unexpected.
    const auto fresh = classify(ProviderOp::ReadAction, response(200, "action_new_status.json"));
    CHECK(fresh.outcome == ProviderOutcome::Ok);
    CHECK(fresh.action_status == ActionStatus::Pending);
}

TEST_CASE("digitalocean api: 401 in either casing and 403 are unauthorized") {
    const auto upper = classify(ProviderOp::ReadHolder,
                                response(401, "error_401_upper.json", {{"x-request-id", "h401"}}));
    CHECK(upper.outcome == ProviderOutcome::Unauthorized);
    CHECK(upper.http_status == 401);
    CHECK(upper.detail == "HTTP 401 Unauthorized: Unable to authenticate you (request h401)");

    const auto lower = classify(ProviderOp::Assign, response(401, "error_401_lower.json"));
    CHECK(lower.outcome == ProviderOutcome::Unauthorized);
    // Without the header, the body's request_id is used.
    CHECK(lower.detail ==
          "HTTP 401 unauthorized: Unable to authenticate you (request body-req-401)");

    const auto forbidden = classify(ProviderOp::Assign, response(403, "error_403.json"));
    CHECK(forbidden.outcome == ProviderOutcome::Unauthorized);
    CHECK(forbidden.http_status == 403);
}

TEST_CASE("digitalocean api: 404 is not found, on the IP and on an action") {
    const auto ip = classify(ProviderOp::ReadHolder, response(404, "error_404.json"));
    CHECK(ip.outcome == ProviderOutcome::NotFound);
    const auto action = classify(ProviderOp::ReadAction, response(404, "error_404.json"));
    CHECK(action.outcome == ProviderOutcome::NotFound);
    CHECK(action.detail.find("not_found") != std::string::npos);
}

TEST_CASE("digitalocean api: 422 pending event on IP or droplet is locked, other 422 rejected") {
    const auto ip = classify(ProviderOp::Assign, response(422, "error_422_ip_pending.json"));
    CHECK(ip.outcome == ProviderOutcome::Locked);
    const auto droplet =
        classify(ProviderOp::Assign, response(422, "error_422_droplet_pending.json"));
    CHECK(droplet.outcome == ProviderOutcome::Locked);
    const auto assigned =
        classify(ProviderOp::Assign, response(422, "error_422_already_assigned.json"));
    CHECK(assigned.outcome == ProviderOutcome::Rejected);
    CHECK(assigned.detail ==
          "HTTP 422 unprocessable_entity: Droplet already has a reserved IP assigned. (request "
          "body-req-422c)");

    api::ApiResponse bad_request;
    bad_request.status = 400;
    bad_request.body = R"({"id":"bad_request","message":"malformed"})";
    CHECK(classify(ProviderOp::Assign, bad_request).outcome == ProviderOutcome::Rejected);
}

TEST_CASE("digitalocean api: 429 waits for retry-after, else ratelimit-reset minus now") {
    const auto burst =
        classify(ProviderOp::ReadHolder, response(429, "error_429.json",
                                                  {{"Retry-After", "7"},
                                                   {"RateLimit-Reset", std::to_string(kNow + 900)},
                                                   {"ratelimit-remaining", "0"}}));
    CHECK(burst.outcome == ProviderOutcome::RateLimited);
    REQUIRE(burst.retry_after.has_value());
    CHECK(*burst.retry_after == 7s);

    const auto hourly =
        classify(ProviderOp::Assign,
                 response(429, "error_429.json", {{"ratelimit-reset", std::to_string(kNow + 42)}}));
    CHECK(hourly.outcome == ProviderOutcome::RateLimited);
    CHECK(hourly.retry_after == 42s);

    // Clock skew: a reset in the past still waits the floor; a far future one the cap.
    const auto past = classify(
        ProviderOp::Assign,
        response(429, "error_429.json", {{"ratelimit-reset", std::to_string(kNow - 100)}}));
    CHECK(past.retry_after == 1s);
    const auto far = classify(
        ProviderOp::Assign,
        response(429, "error_429.json", {{"ratelimit-reset", std::to_string(kNow + 86400)}}));
    CHECK(far.retry_after == std::chrono::hours(1));
    const auto zero =
        classify(ProviderOp::Assign, response(429, "error_429.json", {{"retry-after", "0"}}));
    CHECK(zero.retry_after == 1s);

    const auto none = classify(ProviderOp::Assign, response(429, "error_429.json"));
    CHECK(none.outcome == ProviderOutcome::RateLimited);
    CHECK_FALSE(none.retry_after.has_value());
}

TEST_CASE("digitalocean api: 5xx, HTML 502, timeouts and dropped connections are transient") {
    const auto server = classify(ProviderOp::Assign,
                                 response(500, "error_500.json", {{"x-request-id", "abc-500"}}));
    CHECK(server.outcome == ProviderOutcome::Transient);
    CHECK(server.http_status == 500);
    CHECK(server.detail ==
          "HTTP 500 server_error: Server was unable to give you a response. (request abc-500)");

    const auto html = classify(ProviderOp::ReadHolder, response(502, "html_502.html"));
    CHECK(html.outcome == ProviderOutcome::Transient);
    CHECK(html.http_status == 502);
    CHECK(html.detail == "HTTP 502: 502 Bad Gateway 502 Bad Gateway cloudflare");

    for (const int status : {503, 504}) {
        api::ApiResponse r;
        r.status = status;
        CHECK(classify(ProviderOp::ReadAction, r).outcome == ProviderOutcome::Transient);
    }

    api::ApiResponse timeout;
    timeout.timed_out = true;
    timeout.transport_detail = "Operation timed out after 10001 milliseconds with 0 bytes received";
    const auto t = classify(ProviderOp::Assign, timeout);
    CHECK(t.outcome == ProviderOutcome::Transient);
    CHECK(t.http_status == 0);
    CHECK(t.detail.rfind("timed out: Operation timed out", 0) == 0);

    api::ApiResponse dropped;
    dropped.transport_error = true;
    dropped.status = 200;  // headers arrived, then the connection closed mid-body
    dropped.body = R"({"action": {"id": 5)";
    dropped.transport_detail = "transfer closed with 40 bytes remaining to read";
    const auto d = classify(ProviderOp::Assign, dropped);
    CHECK(d.outcome == ProviderOutcome::Transient);
    CHECK(d.detail == "transport error: transfer closed with 40 bytes remaining to read");
}

TEST_CASE("digitalocean api: rate-limit headers are read case-insensitively") {
    const auto limit = api::parse_rate_limit({{"RateLimit-Limit", "5000"},
                                              {"ratelimit-remaining", "4987"},
                                              {"rateLimit-reset", "1764250042"},
                                              {"other", "x"}});
    CHECK(limit.limit == 5000);
    CHECK(limit.remaining == 4987);
    CHECK(limit.reset_epoch == 1764250042);
    CHECK_FALSE(limit.retry_after_s.has_value());
    CHECK_FALSE(limit.empty());
    CHECK(api::parse_rate_limit({{"ratelimit-limit", "garbage"}}).empty());
    CHECK(api::find_header({{"X-Request-ID", "q"}}, "x-request-id") == "q");
}

TEST_CASE("digitalocean api: tagged droplets with pagination by links or by meta.total") {
    const auto first = api::parse_droplets(read_fixture("droplets_page1.json"), 1);
    REQUIRE(first.has_value());
    CHECK(first->has_next);
    REQUIRE(first->droplets.size() == 2);
    CHECK(first->droplets[0].id == 3000000001);
    CHECK(first->droplets[0].name == "n1");
    CHECK(first->droplets[0].region == "nyc3");
    CHECK(first->droplets[0].private_ipv4 == "10.77.0.1");
    CHECK(first->droplets[0].public_ipv4 == "198.51.100.1");
    CHECK(first->droplets[0].tags == std::vector<std::string>{"failoverd", "web"});
    // The reserved IP shows as a second public entry; the droplet's own comes first.
    CHECK(first->droplets[1].private_ipv4.empty());
    CHECK(first->droplets[1].public_ipv4 == "198.51.100.2");

    const auto last = api::parse_droplets(read_fixture("droplets_page2.json"), 2);
    REQUIRE(last.has_value());
    CHECK_FALSE(last->has_next);
    CHECK(last->droplets.at(0).private_ipv4 == "10.77.0.3");

    const auto meta = read_fixture("droplets_meta_only.json");
    CHECK(api::parse_droplets(meta, 1)->has_next);
    CHECK(api::parse_droplets(meta, 2)->has_next);
    CHECK_FALSE(api::parse_droplets(meta, 3)->has_next);

    CHECK_FALSE(api::parse_droplets(R"({"droplets": [{"name": "no id"}]})", 1).has_value());
    CHECK_FALSE(api::parse_droplets(R"({"droplets": [)", 1).has_value());
    CHECK_FALSE(api::parse_droplets(R"({"droplets": [], "meta": {"total": 0}})", 1)->has_next);
}

TEST_CASE("digitalocean api: a single droplet and ids") {
    const auto d = api::parse_droplet(read_fixture("droplet.json"));
    REQUIRE(d.has_value());
    CHECK(d->id == 3000000001);
    CHECK(d->private_ipv4 == "10.77.0.1");
    CHECK(d->public_ipv4 == "198.51.100.1");
    CHECK(d->tags.empty());

    CHECK(api::parse_id("3000000001") == 3000000001);
    CHECK(api::parse_id("9223372036854775807") == INT64_MAX);
    CHECK_FALSE(api::parse_id("9223372036854775808").has_value());
    CHECK_FALSE(api::parse_id("").has_value());
    CHECK_FALSE(api::parse_id("0").has_value());
    CHECK_FALSE(api::parse_id("-5").has_value());
    CHECK_FALSE(api::parse_id("+5").has_value());
    CHECK_FALSE(api::parse_id("12a").has_value());
    CHECK_FALSE(api::parse_id(" 12").has_value());
}

TEST_CASE("digitalocean api: error text is bounded and printable, and carries no token") {
    // A body that echoes what it was sent must not make the detail unbounded or multi-line.
    api::ApiResponse r;
    r.status = 400;
    r.body = std::string(5000, 'x') + "\n\r\tend";
    const auto reply = classify(ProviderOp::Assign, r);
    CHECK(reply.detail.size() < 300);
    CHECK(reply.detail.find('\n') == std::string::npos);

    // The pure layer never sees the token: requests carry no Authorization header.
    const std::string token = "dop_v1_secret_token_value";
    for (const auto& req :
         {api::read_holder_request("203.0.113.10"), api::assign_request("203.0.113.10", 1),
          api::read_action_request("203.0.113.10", "7"), api::tagged_droplets_request("t", 1),
          api::account_request()}) {
        for (const auto& [name, value] : req.headers) {
            CHECK(name != "Authorization");
            CHECK(value.find(token) == std::string::npos);
        }
    }
    for (const char* fixture : {"error_401_upper.json", "error_403.json", "error_500.json",
                                "html_502.html", "reserved_ip_truncated.json"}) {
        const auto c = classify(ProviderOp::ReadHolder, response(401, fixture));
        CHECK(c.detail.find(token) == std::string::npos);
        CHECK(c.detail.find("Bearer") == std::string::npos);
    }
}

namespace {

// One body of DigitalOcean's OpenAPI examples (tests/fixtures/digitalocean/openapi/).
std::string openapi(const std::string& name) {
    return read_fixture("openapi/" + name);
}

api::ApiResponse openapi_response(long status, const std::string& name) {
    api::ApiResponse r;
    r.status = status;
    r.body = openapi(name);
    return r;
}

// {"reserved_ips": [a, b]} -> each entry as {"reserved_ip": a}, the shape of a single read.
std::vector<std::string> list_entries(const std::string& body, const std::string& list_key,
                                      const std::string& item_key) {
    std::vector<std::string> out;
    const auto doc = nlohmann::json::parse(body);
    for (const auto& item : doc.at(list_key)) {
        out.push_back(nlohmann::json{{item_key, item}}.dump());
    }
    return out;
}

void reserved_ip_list(const std::string& name, const std::string& list_key,
                      const std::string& item_key) {
    CHECK(api::classify_status(openapi_response(200, name), kNow).outcome == ProviderOutcome::Ok);
    const auto entries = list_entries(openapi(name), list_key, item_key);
    REQUIRE(entries.size() == 1);
    const auto ip = api::parse_reserved_ip(entries[0]);
    REQUIRE(ip.has_value());
    CHECK(ip->ip == "45.55.96.47");
    CHECK(ip->holder_shown);
    CHECK_FALSE(ip->holder.has_value());
}

void assigned(const std::string& name) {
    const auto r = classify(ProviderOp::ReadHolder, openapi_response(200, name));
    CHECK(r.outcome == ProviderOutcome::Ok);
    CHECK(r.holder_known);
    CHECK(r.holder == "3164444");
    CHECK_FALSE(r.locked);
    CHECK(api::parse_reserved_ip(openapi(name))->region == "nyc3");
}

void unassigned(const std::string& name, long status = 200, bool locked = false) {
    const auto r = classify(ProviderOp::ReadHolder, openapi_response(status, name));
    CHECK(r.outcome == ProviderOutcome::Ok);
    CHECK(r.holder_known);
    CHECK(r.holder.empty());
    CHECK(r.locked == locked);
}

void completed_action(const std::string& name) {
    // The 201 of an assign carries the action; the example's is already done.
    const auto posted = classify(ProviderOp::Assign, openapi_response(201, name));
    CHECK(posted.outcome == ProviderOutcome::Ok);
    CHECK(posted.action_id == "72531856");
    CHECK(posted.action_status == ActionStatus::Completed);
    const auto polled = classify(ProviderOp::ReadAction, openapi_response(200, name));
    CHECK(polled.action_status == ActionStatus::Completed);
}

void completed_actions_list(const std::string& name) {
    CHECK(api::classify_status(openapi_response(200, name), kNow).outcome == ProviderOutcome::Ok);
    const auto entries = list_entries(openapi(name), "actions", "action");
    REQUIRE(entries.size() == 1);
    CHECK(api::parse_action(entries[0])->status == ActionStatus::Completed);
}

// The failoverd API layer reads reserved IPv4 only (the config refuses an IPv6 reserved_ip):
// a reserved IPv6 body is not a reserved IP to it, so a read that got one is unreadable.
void reserved_ipv6(const std::string& name) {
    CHECK_FALSE(api::parse_reserved_ip(openapi(name)).has_value());
    CHECK(classify(ProviderOp::ReadHolder, openapi_response(200, name)).outcome ==
          ProviderOutcome::Transient);
}

void droplet_list(const std::string& name, std::vector<std::int64_t> ids) {
    const auto page = api::parse_droplets(openapi(name), 1);
    REQUIRE(page.has_value());
    CHECK_FALSE(page->has_next);  // "pages": {} and meta.total on one page
    std::vector<std::int64_t> got;
    for (const auto& d : page->droplets) {
        got.push_back(d.id);
        CHECK(d.private_ipv4.rfind("10.128.192.", 0) == 0);
        CHECK_FALSE(d.public_ipv4.empty());
    }
    CHECK(got == ids);
}

void error(const std::string& name, long status, ProviderOutcome outcome, const std::string& id) {
    const auto r = api::classify_status(openapi_response(status, name), kNow);
    CHECK_MESSAGE(r.outcome == outcome, name);
    CHECK(r.error_id == id);
    CHECK(r.detail.find(nlohmann::json::parse(openapi(name)).at("message").get<std::string>()) !=
          std::string::npos);
}

}  // namespace

TEST_CASE(
    "digitalocean api: every example of DigitalOcean's OpenAPI specification classifies "
    "as the specification means") {
    const std::map<std::string, std::function<void()>> expectations = {
        {"reserved_ip_get_assigned.json", [] { assigned("reserved_ip_get_assigned.json"); }},
        {"reserved_ip_get_reserved.json", [] { unassigned("reserved_ip_get_reserved.json"); }},
        // POST /v2/reserved_ips (failoverd never creates one): the same object, while the
        // assignment a create may include is pending it is locked.
        {"reserved_ip_create_assigning.json",
         [] { unassigned("reserved_ip_create_assigning.json", 202, true); }},
        {"reserved_ip_create_reserving.json",
         [] { unassigned("reserved_ip_create_reserving.json", 202, false); }},
        {"reserved_ip_list.json",
         [] { reserved_ip_list("reserved_ip_list.json", "reserved_ips", "reserved_ip"); }},
        {"reserved_ip_action.json", [] { completed_action("reserved_ip_action.json"); }},
        {"reserved_ip_actions_list.json",
         [] { completed_actions_list("reserved_ip_actions_list.json"); }},
        {"floating_ip_get_assigned.json", [] { assigned("floating_ip_get_assigned.json"); }},
        {"floating_ip_get_reserved.json", [] { unassigned("floating_ip_get_reserved.json"); }},
        {"floating_ip_list.json",
         [] { reserved_ip_list("floating_ip_list.json", "floating_ips", "floating_ip"); }},
        {"floating_ip_action.json", [] { completed_action("floating_ip_action.json"); }},
        {"floating_ip_actions_list.json",
         [] { completed_actions_list("floating_ip_actions_list.json"); }},
        {"reserved_ipv6_get_assigned.json",
         [] { reserved_ipv6("reserved_ipv6_get_assigned.json"); }},
        {"reserved_ipv6_get_reserved.json",
         [] { reserved_ipv6("reserved_ipv6_get_reserved.json"); }},
        {"reserved_ipv6_list.json",
         [] {
             CHECK(api::classify_status(openapi_response(200, "reserved_ipv6_list.json"), kNow)
                       .outcome == ProviderOutcome::Ok);
             for (const auto& entry : list_entries(openapi("reserved_ipv6_list.json"),
                                                   "reserved_ipv6s", "reserved_ip")) {
                 // Shaped like a reserved IP, these entries have no droplet key: unknown.
                 const auto ip = api::parse_reserved_ip(entry);
                 REQUIRE(ip.has_value());
                 CHECK_FALSE(ip->holder_shown);
             }
         }},
        {"reserved_ipv6_action.json", [] { completed_action("reserved_ipv6_action.json"); }},
        {"droplets_all.json",
         [] {
             droplet_list("droplets_all.json", {3164444, 3164459, 3164412});
         }},
        {"droplets_tagged.json",
         [] {
             droplet_list("droplets_tagged.json", {3164444, 3164459});
         }},
        {"droplets_gpu.json", [] { droplet_list("droplets_gpu.json", {448543583}); }},
        {"droplet_single.json",
         [] {
             const auto d = api::parse_droplet(openapi("droplet_single.json"));
             REQUIRE(d.has_value());
             CHECK(d->id == 3164444);
             CHECK(d->region == "nyc3");
             CHECK(d->private_ipv4 == "10.128.192.124");
             CHECK(d->public_ipv4 == "192.241.165.154");
         }},
        {"account_assembled.json",
         [] {
             // doctor reads only the status of /v2/account: the token authenticated.
             CHECK(api::classify_status(openapi_response(200, "account_assembled.json"), kNow)
                       .outcome == ProviderOutcome::Ok);
         }},
        {"action_model_assembled.json",
         [] {
             const auto a = api::parse_action(openapi("action_model_assembled.json"));
             REQUIRE(a.has_value());
             CHECK(a->id == 36804636);
             CHECK(a->status == ActionStatus::Completed);
         }},
        {"error_400_bad_request.json",
         [] {
             error("error_400_bad_request.json", 400, ProviderOutcome::Rejected, "bad_request");
         }},
        {"error_401_unauthorized.json",
         [] {
             error("error_401_unauthorized.json", 401, ProviderOutcome::Unauthorized,
                   "unauthorized");
         }},
        {"error_403_forbidden.json",
         [] {
             error("error_403_forbidden.json", 403, ProviderOutcome::Unauthorized, "forbidden");
         }},
        {"error_404_not_found.json",
         [] { error("error_404_not_found.json", 404, ProviderOutcome::NotFound, "not_found"); }},
        {"error_409_conflict.json",
         [] { error("error_409_conflict.json", 409, ProviderOutcome::Rejected, "conflict"); }},
        // Not a "pending event": a refusal, not a lock that clears by itself.
        {"error_422_unprocessable_entity.json",
         [] {
             error("error_422_unprocessable_entity.json", 422, ProviderOutcome::Rejected,
                   "unprocessable_entity");
         }},
        {"error_429_too_many_requests.json",
         [] {
             error("error_429_too_many_requests.json", 429, ProviderOutcome::RateLimited,
                   "too_many_requests");
         }},
        {"error_500_server_error.json",
         [] {
             error("error_500_server_error.json", 500, ProviderOutcome::Transient, "server_error");
         }},
        // "default": any other status; a 503 is what failoverd would meet.
        {"error_default_unexpected_error.json",
         [] {
             error("error_default_unexpected_error.json", 503, ProviderOutcome::Transient,
                   "example_error");
         }},
        {"error_model_assembled.json",
         [] {
             error("error_model_assembled.json", 404, ProviderOutcome::NotFound, "not_found");
             CHECK(
                 api::parse_error(openapi_response(404, "error_model_assembled.json")).request_id ==
                 "4d9d8375-3c56-4925-a3e7-eb137fed17e9");
         }},
        {"ratelimit_headers.json",
         [] {
             // Header values arrive as text; a 429 carrying them waits until the reset.
             api::ApiResponse r = openapi_response(429, "error_429_too_many_requests.json");
             const auto headers = nlohmann::json::parse(openapi("ratelimit_headers.json"));
             for (const auto& [k, v] : headers.items()) {
                 r.headers[k] = v.is_string() ? v.get<std::string>() : v.dump();
             }
             const auto limit = api::parse_rate_limit(r.headers);
             CHECK(limit.limit == 5000);
             CHECK(limit.remaining == 4816);
             CHECK(limit.reset_epoch == 1444931833);
             const auto c = api::classify_status(r, 1444931833 - 42);
             CHECK(c.outcome == ProviderOutcome::RateLimited);
             CHECK(c.retry_after == std::chrono::seconds(42));
             CHECK(c.request_id == "515850a0-a812-50bf-aa3c-d0d21d287e40");
         }},
    };

    // Every file the index lists has its expectation here, and nothing else is expected.
    std::ifstream index(std::string(FAILOVERD_FIXTURES) + "/digitalocean/openapi/index.tsv");
    REQUIRE(index.good());
    std::set<std::string> listed;
    std::string line;
    while (std::getline(index, line)) {
        if (line.empty() || line.front() == '#' || line.rfind("file\t", 0) == 0) {
            continue;
        }
        listed.insert(line.substr(0, line.find('\t')));
    }
    CHECK(listed.size() == 33);
    for (const auto& name : listed) {
        const auto it = expectations.find(name);
        REQUIRE_MESSAGE(it != expectations.end(), "no expectation for " << name);
        INFO("fixture " << name);
        it->second();
    }
    CHECK(expectations.size() == listed.size());
}
