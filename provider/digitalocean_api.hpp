// The DigitalOcean API as data: request paths and bodies, and the classification of answers
// into ProviderReplied (provider-apis.md §1, §6). No I/O and no clock in this file: the wall
// clock needed for ratelimit-reset is handed in as a number.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/core/input.hpp"
#include "daemon/core/time.hpp"

namespace failoverd::digitalocean {

// Droplet listings ask for this many per page (the API's maximum).
inline constexpr int kDropletsPerPage = 200;

// A request relative to the API base URL. The caller adds "Authorization: Bearer ...".
struct ApiRequest {
    std::string method = "GET";
    std::string path;                                          // "/v2/reserved_ips/203.0.113.10"
    std::string body;                                          // JSON for POST, else empty
    std::vector<std::pair<std::string, std::string>> headers;  // Accept, Content-Type on POST
};

ApiRequest read_holder_request(std::string_view ip);
// {"type":"assign","droplet_id":N}: the id goes out as an integer, never a string.
ApiRequest assign_request(std::string_view ip, std::int64_t droplet_id);
ApiRequest read_action_request(std::string_view ip, std::string_view action_id);
ApiRequest tagged_droplets_request(std::string_view tag, int page);
ApiRequest droplet_request(std::int64_t droplet_id);
ApiRequest account_request();
// The cheapest read the token's reserved_ip:read scope allows (one reserved IP of the list):
// keeps the provider's connection warm while the core makes no calls.
ApiRequest keep_warm_request();

// What came back, transport included. Header names in any case.
struct ApiResponse {
    long status = 0;  // 0 when no HTTP answer arrived
    std::map<std::string, std::string> headers;
    std::string body;
    bool transport_error = false;  // connect failure, dropped connection, TLS, ...
    bool timed_out = false;
    std::string transport_detail;  // curl's reason, for the detail text
};

// Case-insensitive header lookup.
std::optional<std::string> find_header(const std::map<std::string, std::string>& headers,
                                       std::string_view name);

// The rate-limit headers of one response (every response carries them, errors included).
struct RateLimit {
    std::optional<std::int64_t> limit;
    std::optional<std::int64_t> remaining;
    std::optional<std::int64_t> reset_epoch;  // Unix seconds: when the oldest request ages out
    std::optional<std::int64_t> retry_after_s;

    bool empty() const { return !limit && !remaining && !reset_epoch && !retry_after_s; }
};
RateLimit parse_rate_limit(const std::map<std::string, std::string>& headers);

// The wait a 429 asks for: retry-after when present, else ratelimit-reset minus `now_epoch_s`,
// clamped to [1 s, 1 h] against clock skew and garbage; nullopt when neither header is there.
std::optional<Duration> rate_limited_wait(const RateLimit& limit, std::int64_t now_epoch_s);

// The error envelope {"id", "message", "request_id"}; for a non-JSON body (an HTML 502 page)
// the message is a cleaned snippet of the body.
struct ApiError {
    std::string id;
    std::string message;
    std::string request_id;  // the x-request-id header, else the body's request_id
};
ApiError parse_error(const ApiResponse& response);

// The outcome of any call from status and transport alone, before the 2xx body is read:
// Ok for 2xx; 422 with "pending event" -> Locked; other 422 and 4xx -> Rejected; 429 ->
// RateLimited; 401/403 -> Unauthorized; 404 -> NotFound; 5xx, timeouts and transport
// errors -> Transient.
struct Classified {
    ProviderOutcome outcome = ProviderOutcome::Transient;
    int http_status = 0;
    std::optional<Duration> retry_after;
    std::string detail;  // "HTTP 503 server_error: Server was unable ... (request 8f1c...)"
    std::string request_id;
    std::string error_id;
};
Classified classify_status(const ApiResponse& response, std::int64_t now_epoch_s);

struct ReservedIp {
    std::string ip;
    std::string region;                  // slug; empty when absent
    std::optional<std::int64_t> holder;  // droplet id; nullopt when unassigned or not shown
    // The "droplet" key is there ("droplet": null is unassigned). The API leaves it out for a
    // token without droplet:read: then the holder is unknown, not "nobody".
    bool holder_shown = false;
    bool locked = false;
};
// {"reserved_ip": {...}} or the legacy {"floating_ip": {...}}; nullopt when malformed.
std::optional<ReservedIp> parse_reserved_ip(std::string_view body);

struct Action {
    std::int64_t id = 0;
    ActionStatus status = ActionStatus::Pending;  // anything but completed/errored is pending
};
std::optional<Action> parse_action(std::string_view body);

struct Droplet {
    std::int64_t id = 0;
    std::string name;
    std::string region;
    std::string private_ipv4;  // first networks.v4 entry of type private
    std::string public_ipv4;   // first of type public (a reserved IP comes after it)
    std::vector<std::string> tags;
};

struct DropletPage {
    std::vector<Droplet> droplets;
    bool has_next = false;  // links.pages.next, else meta.total beyond this page
};
// `page` is the 1-based page that was asked for (for the meta.total rule).
std::optional<DropletPage> parse_droplets(std::string_view body, int page);
std::optional<Droplet> parse_droplet(std::string_view body);

// One call's answer as the core wants it (instance and request_id are the caller's):
// ReadHolder -> holder, locked; Assign -> action_id; ReadAction -> action_status. A 2xx whose
// body cannot be read (truncated, HTML) is Transient.
ProviderReplied classify(ProviderOp op, const ApiResponse& response, std::int64_t now_epoch_s);

// A decimal droplet or action id ("3000000001"); nullopt when not a positive int64.
std::optional<std::int64_t> parse_id(std::string_view text);

}  // namespace failoverd::digitalocean
