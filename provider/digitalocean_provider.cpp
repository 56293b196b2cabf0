#include "provider/digitalocean_provider.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace failoverd {

namespace {

std::string octal_mode(mode_t mode) {
    return fmt::format("{:04o}", static_cast<unsigned>(mode & 07777));
}

std::string trim(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n\f\v");
    if (first == std::string::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r\n\f\v");
    return text.substr(first, last - first + 1);
}

std::string strip_trailing_slash(std::string url) {
    while (!url.empty() && url.back() == '/') {
        url.pop_back();
    }
    return url;
}

}  // namespace

std::string read_token_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw std::runtime_error("API token file " + path + ": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        throw std::runtime_error("API token file " + path + " is not a regular file");
    }
    if ((st.st_mode & 077) != 0) {
        throw std::runtime_error("API token file " + path +
                                 " is readable by group or others (mode " + octal_mode(st.st_mode) +
                                 "): run chmod 600 " + path);
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("API token file " + path +
                                 ": cannot be read: " + std::strerror(errno));
    }
    std::stringstream text;
    text << in.rdbuf();
    std::string token = trim(text.str());
    if (token.empty()) {
        throw std::runtime_error("API token file " + path + " is empty");
    }
    if (token.find_first_of(" \t\r\n") != std::string::npos) {
        throw std::runtime_error("API token file " + path +
                                 " holds more than one word (expected the token alone)");
    }
    return token;
}

std::string redact(std::string text, const std::string& secret) {
    if (secret.empty()) {
        return text;
    }
    for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos)) {
        text.replace(pos, secret.size(), "***");
        pos += 3;
    }
    return text;
}

std::int64_t wall_clock_epoch_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

HttpRequest make_http_request(const std::string& base_url, const digitalocean::ApiRequest& request,
                              const std::string& token, const ProviderConfig& config) {
    HttpRequest r;
    r.method = request.method;
    r.url = strip_trailing_slash(base_url) + request.path;
    r.headers = request.headers;
    r.headers.emplace_back("Authorization", "Bearer " + token);
    r.headers.emplace_back("User-Agent", "failoverd/" FAILOVERD_VERSION);
    r.body = request.body;
    r.timeout = config.request_timeout;
    r.connect_timeout = std::min<Duration>(config.request_timeout, std::chrono::seconds(5));
    r.ca_file = config.ca_file;
    r.max_body_bytes = 4 * 1024 * 1024;
    r.tcp_keepalive_idle = DigitalOceanProvider::kTcpKeepaliveIdle;
    r.max_idle_reuse = DigitalOceanProvider::kMaxIdleReuse;
    // Whether a POST whose reply was lost is sent again is the core's decision (it reads the
    // holder first), never libcurl's.
    r.send_once = request.method != "GET" && request.method != "HEAD";
    return r;
}

digitalocean::ApiResponse to_api_response(const HttpResponse& response) {
    digitalocean::ApiResponse r;
    r.status = response.status;
    r.headers = response.headers;
    r.body = response.body;
    r.timed_out = response.timed_out;
    r.transport_error = !response.ok() && !response.timed_out;
    r.transport_detail = response.error;
    return r;
}

DigitalOceanProvider::DigitalOceanProvider(EventLoop& loop, CurlMulti& curl,
                                           const ProviderConfig& config, std::string droplet_id)
    : loop_(loop),
      curl_(curl),
      config_(config),
      token_(read_token_file(config.token_file)),
      droplet_id_text_(std::move(droplet_id)) {
    const auto id = digitalocean::parse_id(droplet_id_text_);
    if (!id) {
        throw std::invalid_argument("droplet id '" + droplet_id_text_ +
                                    "' is not a positive decimal number");
    }
    droplet_id_ = *id;
    keep_warm_timer_ = Timer(loop_, [this] { on_keep_warm_timer(); });
    keep_warm_timer_.arm_after(Duration::zero());
}

DigitalOceanProvider::~DigitalOceanProvider() {
    cancel_all();
}

HttpRequest DigitalOceanProvider::http_request(const digitalocean::ApiRequest& request) const {
    return make_http_request(config_.api_base_url, request, token_, config_);
}

void DigitalOceanProvider::set_keep_warm_idle(Duration idle) {
    keep_warm_idle_ = idle;
    if (idle <= Duration::zero()) {
        keep_warm_timer_.disarm();
        return;
    }
    keep_warm_timer_.arm_at(std::max(last_request_at_ + idle, loop_.now()));
}

void DigitalOceanProvider::note_request() {
    last_request_at_ = loop_.now();
    if (keep_warm_idle_ > Duration::zero()) {
        keep_warm_timer_.arm_at(last_request_at_ + keep_warm_idle_);
    }
}

void DigitalOceanProvider::on_keep_warm_timer() {
    if (keep_warm_idle_ <= Duration::zero()) {
        return;
    }
    const Instant now = loop_.now();
    if (keep_warm_in_flight_ || !in_flight_.empty()) {
        keep_warm_timer_.arm_at(now + keep_warm_idle_);  // a request in flight keeps it warm
        return;
    }
    if (last_request_at_ != Instant{} && now - last_request_at_ < keep_warm_idle_) {
        keep_warm_timer_.arm_at(last_request_at_ + keep_warm_idle_);
        return;
    }
    ++keep_warm_calls_;
    note_request();
    auto pending = std::make_shared<RequestId>(0);
    const RequestId id = curl_.perform(http_request(digitalocean::keep_warm_request()),
                                       [this, pending](HttpResponse response) {
                                           if (keep_warm_in_flight_ == *pending) {
                                               keep_warm_in_flight_.reset();
                                           }
                                           keep_warm_done(response);
                                       });
    *pending = id;
    keep_warm_in_flight_ = id;
}

void DigitalOceanProvider::keep_warm_done(const HttpResponse& response) {
    count_connection(response);
    if (response.ok() && response.status >= 200 && response.status < 300) {
        keep_warm_error_.clear();
        return;
    }
    ++keep_warm_failures_;
    // Not the core's business (it made no call), but a TLS or token problem shows here first.
    const std::string detail =
        redact(response.ok() ? "HTTP " + std::to_string(response.status) : response.error, token_);
    keep_warm_error_ = detail;
    log_.log(loop_.now(), spdlog::level::warn, "keep-warm",
             fmt::format("provider keep-warm read of {} failed: {}", config_.api_base_url, detail));
}

const char* DigitalOceanProvider::count_connection(const HttpResponse& response) {
    if (response.new_connections > 0) {
        connections_new_ += static_cast<std::uint64_t>(response.new_connections);
        return "new";
    }
    if (response.status > 0) {
        ++connections_reused_;
        return "reused";
    }
    return "";
}

void DigitalOceanProvider::call(const CallProvider& call, Done done) {
    ++calls_;
    note_request();
    digitalocean::ApiRequest request;
    switch (call.op) {
        case ProviderOp::ReadHolder:
            request = digitalocean::read_holder_request(call.ip);
            break;
        case ProviderOp::Assign:
            request = digitalocean::assign_request(call.ip, droplet_id_);
            break;
        case ProviderOp::ReadAction:
            if (!digitalocean::parse_id(call.action_id)) {
                // Not an id this provider handed out: the core falls back to the holder.
                ProviderReplied reply;
                reply.outcome = ProviderOutcome::NotFound;
                reply.detail = "action id '" + call.action_id + "' is not a DigitalOcean id";
                record(call, reply, "");
                answer_later(std::move(reply), std::move(done));
                return;
            }
            request = digitalocean::read_action_request(call.ip, call.action_id);
            break;
    }
    auto pending = std::make_shared<RequestId>(0);
    const RequestId id = curl_.perform(http_request(request), [this, call, done = std::move(done),
                                                               pending](HttpResponse response) {
        in_flight_.erase(*pending);
        finish(call, response, done);
    });
    *pending = id;
    in_flight_.emplace(id, call.request_id);
}

void DigitalOceanProvider::finish(const CallProvider& call, const HttpResponse& response,
                                  const Done& done) {
    const char* connection = count_connection(response);
    const digitalocean::ApiResponse api = to_api_response(response);
    ProviderReplied reply = digitalocean::classify(call.op, api, wall_clock_epoch_s());
    if (call.op == ProviderOp::Assign) {
        // The takeover's critical request: was it sent without a handshake?
        last_assign_connection_ = connection;
        spdlog::info("[{}] provider assign {} answered {} in {:.1f} ms on a {} connection",
                     call.instance, call.ip,
                     response.status > 0 ? "HTTP " + std::to_string(response.status)
                                         : std::string("nothing"),
                     std::chrono::duration<double, std::milli>(response.total_time).count(),
                     *connection != '\0' ? connection : "failed");
    }
    const digitalocean::RateLimit limit = digitalocean::parse_rate_limit(api.headers);
    if (!limit.empty()) {
        rate_limit_ = limit;
    }
    std::string request_id;
    if (api.status > 0) {
        request_id = digitalocean::parse_error(api).request_id;
    }
    record(call, reply, request_id);
    done(std::move(reply));
}

void DigitalOceanProvider::record(const CallProvider& call, ProviderReplied& reply,
                                  const std::string& request_id) {
    reply.instance = call.instance;
    reply.request_id = call.request_id;
    // The body is the server's text; if it ever echoed the token, it stops here.
    reply.detail = redact(std::move(reply.detail), token_);
    ++outcomes_[reply.outcome];
    const std::string key = call.instance + "/" + std::string(to_string(call.op));
    if (reply.outcome == ProviderOutcome::Ok) {
        const auto it = failing_.find(key);
        if (it != failing_.end()) {
            spdlog::info("[{}] provider {} succeeded again after {} failure(s)", call.instance,
                         to_string(call.op), it->second);
            failing_.erase(it);
        }
        return;
    }
    ++failing_[key];
    last_error_ = LastError{call.instance, call.op, reply.http_status, redact(request_id, token_),
                            reply.detail};
    const std::string line =
        fmt::format("[{}] provider {} {} failed ({}): {}", call.instance, to_string(call.op),
                    call.ip, to_string(reply.outcome), reply.detail);
    log_.log(loop_.now(), spdlog::level::warn, key + "/" + std::string(to_string(reply.outcome)),
             line);
}

void DigitalOceanProvider::answer_later(ProviderReplied reply, Done done) {
    std::weak_ptr<int> alive = alive_;
    loop_.post([this, alive, generation = generation_, reply = std::move(reply),
                done = std::move(done)]() mutable {
        if (alive.expired() || generation != generation_) {
            return;
        }
        done(std::move(reply));
    });
}

void DigitalOceanProvider::cancel_all() {
    ++generation_;
    if (keep_warm_in_flight_) {
        curl_.cancel(*keep_warm_in_flight_);
        keep_warm_in_flight_.reset();
    }
    const auto ids = std::move(in_flight_);
    in_flight_.clear();
    for (const auto& [id, request] : ids) {
        curl_.cancel(id);
    }
}

std::uint64_t DigitalOceanProvider::count(ProviderOutcome outcome) const {
    const auto it = outcomes_.find(outcome);
    return it == outcomes_.end() ? 0 : it->second;
}

nlohmann::json DigitalOceanProvider::status() const {
    nlohmann::json out;
    out["type"] = "digitalocean";
    out["identity"] = droplet_id_text_;
    out["api_base_url"] = config_.api_base_url;
    out["calls"] = calls_;
    add_outcome_counts(out, outcomes_);
    out["in_flight"] = in_flight_.size();
    nlohmann::json limit = nlohmann::json::object();
    if (rate_limit_.limit) {
        limit["limit"] = *rate_limit_.limit;
    }
    if (rate_limit_.remaining) {
        limit["remaining"] = *rate_limit_.remaining;
    }
    if (rate_limit_.reset_epoch) {
        limit["reset"] = *rate_limit_.reset_epoch;
    }
    if (rate_limit_.retry_after_s) {
        limit["retry_after"] = *rate_limit_.retry_after_s;
    }
    out["rate_limit"] = limit;
    if (last_error_) {
        out["last_error"] = {{"instance", last_error_->instance},
                             {"op", std::string(to_string(last_error_->op))},
                             {"http_status", last_error_->http_status},
                             {"request_id", last_error_->request_id},
                             {"detail", last_error_->detail}};
    } else {
        out["last_error"] = nullptr;
    }
    out["connections"] = {
        {"new", connections_new_},
        {"reused", connections_reused_},
        {"last_assign", last_assign_connection_.empty() ? nlohmann::json(nullptr)
                                                        : nlohmann::json(last_assign_connection_)}};
    out["keep_warm"] = {
        {"idle_s", std::chrono::duration<double>(keep_warm_idle_).count()},
        {"calls", keep_warm_calls_},
        {"failures", keep_warm_failures_},
        {"last_error",
         keep_warm_error_.empty() ? nlohmann::json(nullptr) : nlohmann::json(keep_warm_error_)}};
    return out;
}

}  // namespace failoverd
