// DigitalOcean over CurlMulti: each CallProvider becomes one HTTPS request; the answer is
// classified by digitalocean_api (pure) and handed back once, from the loop. The token lives
// only in this object and in the Authorization header it sends; it never reaches a log,
// an error text or status().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "daemon/config.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "daemon/shell/event_loop.hpp"
#include "daemon/shell/rate_limited_log.hpp"
#include "provider/digitalocean_api.hpp"
#include "provider/provider.hpp"

namespace failoverd {

// Reads an API token file at start-up: whitespace trimmed; refuses a file that cannot be read,
// is readable by group or others, or is empty. Throws std::runtime_error naming the file and
// the fix, never showing its content.
std::string read_token_file(const std::string& path);

// Replaces every occurrence of `secret` in `text` with "***" (for text that came from outside).
std::string redact(std::string text, const std::string& secret);

// The wall clock as Unix seconds, for ratelimit-reset (shell side only).
std::int64_t wall_clock_epoch_s();

// An HttpRequest for `request` against `base_url` with the bearer token and the provider's
// timeout and CA settings (also used by peer discovery).
HttpRequest make_http_request(const std::string& base_url, const digitalocean::ApiRequest& request,
                              const std::string& token, const ProviderConfig& config);

// The HTTP answer as the pure layer reads it.
digitalocean::ApiResponse to_api_response(const HttpResponse& response);

class DigitalOceanProvider final : public Provider {
  public:
    // Keep one warm connection to the API host (docs/benchmarks.md, "Cold and warm API
    // requests"): after this long without a request, a cheap read goes out, so a backup that
    // becomes Master after hours sends its assign on a connection that is already open (no
    // DNS, TCP or TLS handshake). Below curl's 118 s limit on reusing an idle connection and
    // common server idle timeouts (nginx: 75 s). At most 72 reads an hour, only when idle.
    static constexpr Duration kKeepWarmIdle = std::chrono::seconds(50);
    static constexpr Duration kTcpKeepaliveIdle = std::chrono::seconds(30);
    // Keep-warm keeps the connection younger than this. One idle longer (keep-warm off or
    // late) is not reused: a server with a 60-75 s idle timeout may be closing it, and an
    // assign sent into that is lost and costs reads before the daemon may post again.
    static constexpr Duration kMaxIdleReuse = std::chrono::seconds(60);

    // Reads config.token_file (throws std::runtime_error, see read_token_file) and checks that
    // `droplet_id` is a positive decimal id (throws std::invalid_argument otherwise). Opens
    // the warm connection at once (from the loop) with a keep-warm read.
    DigitalOceanProvider(EventLoop& loop, CurlMulti& curl, const ProviderConfig& config,
                         std::string droplet_id);
    // Cancels what is in flight; no callback follows.
    ~DigitalOceanProvider() override;
    DigitalOceanProvider(const DigitalOceanProvider&) = delete;
    DigitalOceanProvider& operator=(const DigitalOceanProvider&) = delete;

    void call(const CallProvider& call, Done done) override;
    void cancel_all() override;
    const std::string& identity() const override { return droplet_id_text_; }
    // {"type", "identity", "api_base_url", "calls", "failures", "in_flight",
    //  "outcomes": {"ok": N, "transient": N, ...}, "rate_limit": {"limit", "remaining",
    //  "reset"}, "last_error": {"instance", "op", "http_status", "request_id", "detail"},
    //  "connections": {"new": N, "reused": N, "last_assign": "new"|"reused"|null},
    //  "keep_warm": {"idle_s", "calls", "failures", "last_error"}}
    nlohmann::json status() const override;

    // How long without a request before a keep-warm read; zero turns keep-warm off. The
    // daemon keeps kKeepWarmIdle; tests shorten it or turn it off.
    void set_keep_warm_idle(Duration idle);

    std::size_t in_flight() const { return in_flight_.size(); }
    std::uint64_t calls() const { return calls_; }
    // Requests (core calls and keep-warm reads) answered on a connection opened for them, and
    // on one reused from the cache.
    std::uint64_t connections_new() const { return connections_new_; }
    std::uint64_t connections_reused() const { return connections_reused_; }
    std::uint64_t keep_warm_calls() const { return keep_warm_calls_; }
    std::uint64_t keep_warm_failures() const { return keep_warm_failures_; }
    std::uint64_t count(ProviderOutcome outcome) const;
    const digitalocean::RateLimit& last_rate_limit() const { return rate_limit_; }

  private:
    struct LastError {
        std::string instance;
        ProviderOp op = ProviderOp::ReadHolder;
        int http_status = 0;
        std::string request_id;
        std::string detail;
    };

    void finish(const CallProvider& call, const HttpResponse& response, const Done& done);
    void record(const CallProvider& call, ProviderReplied& reply, const std::string& request_id);
    void answer_later(ProviderReplied reply, Done done);
    HttpRequest http_request(const digitalocean::ApiRequest& request) const;
    // Counts the connection a response came on; returns "new", "reused" or "" (none made).
    const char* count_connection(const HttpResponse& response);
    void note_request();
    void on_keep_warm_timer();
    void keep_warm_done(const HttpResponse& response);

    EventLoop& loop_;
    CurlMulti& curl_;
    ProviderConfig config_;
    std::string token_;
    std::int64_t droplet_id_ = 0;
    std::string droplet_id_text_;
    std::map<RequestId, std::uint64_t> in_flight_;  // curl id -> the core's request id
    std::uint64_t generation_ = 0;                  // bumped by cancel_all: drops posted answers
    std::uint64_t calls_ = 0;
    std::map<ProviderOutcome, std::uint64_t> outcomes_;
    std::map<std::string, std::uint64_t> failing_;  // "instance/op" -> failures in a row
    digitalocean::RateLimit rate_limit_;
    std::optional<LastError> last_error_;
    RateLimitedLog log_;
    std::uint64_t connections_new_ = 0;
    std::uint64_t connections_reused_ = 0;
    std::string last_assign_connection_;
    Duration keep_warm_idle_ = kKeepWarmIdle;
    Timer keep_warm_timer_;
    Instant last_request_at_{};
    std::optional<RequestId> keep_warm_in_flight_;
    std::uint64_t keep_warm_calls_ = 0;
    std::uint64_t keep_warm_failures_ = 0;
    std::string keep_warm_error_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace failoverd
