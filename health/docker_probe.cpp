#include "health/docker_probe.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>
#include <utility>
#include <variant>

namespace failoverd::health {

namespace {

// known_names only grows with containers seen running; the bound keeps a host that churns
// through uniquely named containers from growing it without end.
constexpr std::size_t kMaxKnownNames = 1024;

constexpr Duration kCurlTimeoutSlack = std::chrono::milliseconds(500);

// dockerd 20.10 sends `die` before its container list says so: measured 140-330 ms on the
// project's machines. The event counts at once (an override, docker_override_verdict); the
// listing is repeated after 50, 100, 200, 400, 800 and 1600 ms (then every 3.2 s) while an
// override holds, until the listing agrees or the override expires. A run on a kill or a start
// whose listing does not show it yet is repeated the same way, six times at most.
constexpr Duration kFollowUpFirst = std::chrono::milliseconds(50);
constexpr int kFollowUps = 6;

// The last listing kept for judging events (only the containers the check selects).
constexpr std::size_t kMaxListed = 4096;

std::string joined(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) {
        out += (out.empty() ? "" : ", ") + p;
    }
    return out;
}

std::string before_the_list(const std::vector<std::string>& applied) {
    return " (event: " + joined(applied) + ", before the engine's list shows it)";
}

// The Engine returns errors as {"message": "..."}.
std::string engine_message(const std::string& body) {
    const auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object()) {
        const auto it = doc.find("message");
        if (it != doc.end() && it->is_string()) {
            return it->get<std::string>();
        }
    }
    return {};
}

std::string connect_failure(const DockerProbeParams& params, const HttpResponse& response) {
    const std::string where = "docker socket " + params.socket_path + ": ";
    switch (response.os_errno) {
        case ENOENT:
            return where + "no such file";
        case EACCES:
        case EPERM:
            return where + "permission denied";
        case ECONNREFUSED:
            return where + "connection refused (is dockerd running?)";
        case ENOTSOCK:
            return where + "not a socket";
        default:
            break;
    }
    if (response.os_errno != 0) {
        return where + std::strerror(response.os_errno);
    }
    return where + response.error;
}

ProbeResult result(Verdict verdict, std::string reason) {
    ProbeResult r;
    r.verdict = verdict;
    r.reason = std::move(reason);
    return r;
}

}  // namespace

DockerProbeParams DockerProbeParams::from_config(const CheckConfig& check) {
    DockerProbeParams p;
    p.socket_path = check.docker_socket;
    p.labels = check.docker_labels;
    p.name_pattern = check.docker_name_pattern;
    p.expectation.expect = check.expect;
    p.expectation.min = check.min;
    p.expectation.require_healthy = check.require_healthy;
    p.timeout = check.timeout;
    p.interval = check.interval;
    p.events = check.docker_events;
    return p;
}

std::string docker_containers_url(const DockerSelector& selector) {
    std::string url =
        std::string("http://localhost/") + kDockerApiVersion + "/containers/json?all=1";
    const std::string filters = selector.engine_filters();
    if (!filters.empty()) {
        // libcurl >= 7.82 needs no handle for escaping.
        std::unique_ptr<char, decltype(&curl_free)> escaped(
            curl_easy_escape(nullptr, filters.data(), static_cast<int>(filters.size())),
            &curl_free);
        if (!escaped) {
            throw std::bad_alloc();
        }
        url += "&filters=";
        url += escaped.get();
    }
    return url;
}

std::variant<std::vector<DockerContainer>, ProbeResult> docker_listing(
    const DockerProbeParams& params, const HttpResponse& response) {
    if (!response.ok()) {
        if (response.timed_out) {
            return result(
                Verdict::TimedOut,
                "docker engine at " + params.socket_path + " timed out after " +
                    format_duration(response.total_time > Duration::zero() ? response.total_time
                                                                           : params.timeout));
        }
        if (response.curl_code == CURLE_COULDNT_CONNECT || response.os_errno != 0) {
            return result(Verdict::Error, connect_failure(params, response));
        }
        if (response.curl_code == CURLE_GOT_NOTHING) {
            return result(Verdict::Error, "engine closed the connection without answering");
        }
        return result(Verdict::Error,
                      "docker engine at " + params.socket_path + ": " + response.error);
    }
    if (response.status != 200) {
        std::string reason = "engine returned HTTP " + std::to_string(response.status);
        const std::string message = engine_message(response.body);
        if (!message.empty()) {
            reason += ": " + message;
        }
        return result(Verdict::Error, reason);
    }
    auto parsed = parse_containers(response.body);
    if (auto* error = std::get_if<std::string>(&parsed)) {
        return result(Verdict::Error, std::move(*error));
    }
    return std::move(std::get<std::vector<DockerContainer>>(parsed));
}

ProbeResult docker_judge(const DockerProbeParams& params, const DockerSelector& selector,
                         const std::vector<DockerContainer>& containers,
                         std::set<std::string>& known_names) {
    const DockerVerdict v =
        evaluate_containers(containers, selector, params.expectation, known_names);
    for (const auto& name : v.running_names) {
        if (known_names.size() >= kMaxKnownNames) {
            break;
        }
        known_names.insert(name);
    }
    return result(v.ok ? Verdict::Pass : Verdict::Fail, v.reason);
}

ProbeResult docker_result(const DockerProbeParams& params, const DockerSelector& selector,
                          const HttpResponse& response, std::set<std::string>& known_names) {
    auto listing = docker_listing(params, response);
    if (auto* failed = std::get_if<ProbeResult>(&listing)) {
        return std::move(*failed);
    }
    return docker_judge(params, selector, std::get<std::vector<DockerContainer>>(listing),
                        known_names);
}

namespace {

DockerSelector make_selector(const DockerProbeParams& params) {
    try {
        return DockerSelector(params.labels, params.name_pattern);
    } catch (const std::regex_error& e) {
        throw std::invalid_argument("docker name pattern '" + params.name_pattern +
                                    "' is not a valid regular expression: " + e.what());
    }
}

}  // namespace

DockerProbe::DockerProbe(CurlMulti& curl, DockerProbeParams params)
    : curl_(curl),
      params_(std::move(params)),
      selector_(make_selector(params_)),
      url_(docker_containers_url(selector_)) {}

DockerProbe::~DockerProbe() {
    cancel();
    if (stream_) {
        stream_->unsubscribe(subscription_);
    }
}

void DockerProbe::watch_events(EventLoop& loop, std::function<void()> run_now) {
    if (stream_) {
        stream_->unsubscribe(subscription_);
    }
    run_now_ = std::move(run_now);
    loop_ = &loop;
    follow_up_timer_ = Timer(loop, [this] {
        if (!pending_.event) {
            pending_ = follow_up_;
            pending_.fresh = false;
        }
        run_now_();
    });
    stream_ = DockerEventStream::shared(loop, params_.socket_path);
    DockerEventStream::Subscriber s;
    s.on_event = [this](const DockerEvent& event) { on_event(event); };
    s.on_up = [this] { run_now_(); };
    subscription_ = stream_->subscribe(std::move(s));
}

void DockerProbe::on_event(const DockerEvent& event) {
    if (!event_concerns(event, selector_, known_names_)) {
        return;
    }
    ++events_matched_;
    pending_.event = true;
    const auto noted = overrides_.note(event, loop_->now());
    const std::string_view base = event.base_action();
    if (event_signals_failure(event)) {
        pending_.failure = true;
        pending_.recovery = false;
        pending_.attempt = 0;
        pending_.what = describe_event(event);
        pending_.fresh = pending_.fresh || noted == DockerOverrides::Noted::Added;
    } else {
        if (!pending_.failure) {
            pending_.what = describe_event(event);
        }
        if (base == "start" || base == "unpause" || base == "health_status") {
            // The listing may lag behind these too: look again until it shows the container.
            pending_.recovery = true;
            pending_.attempt = 0;
        }
    }
    run_now_();
}

void DockerProbe::follow_up(const Trigger& trigger, const ProbeResult& result) {
    if (!run_now_ || !loop_) {
        return;
    }
    const int attempt = std::min(trigger.attempt, kFollowUps);
    std::optional<Duration> delay;
    // An event said a container stopped (or came back) and the listing does not show it yet.
    const bool lagging = (trigger.failure && result.verdict == Verdict::Pass) ||
                         (trigger.recovery && result.verdict != Verdict::Pass);
    if (lagging && trigger.attempt < kFollowUps) {
        delay = kFollowUpFirst * (1 << attempt);
    }
    // An override holds: look again until the listing agrees, at the latest when it expires.
    if (const auto expiry = overrides_.next_expiry()) {
        const Duration until = std::max<Duration>(*expiry - loop_->now(), Duration::zero()) +
                               std::chrono::milliseconds(1);
        delay = std::min(delay.value_or(kFollowUpFirst * (1 << attempt)), until);
    }
    if (!delay) {
        return;
    }
    follow_up_ = trigger;
    follow_up_.event = true;
    follow_up_.fresh = false;
    ++follow_up_.attempt;
    follow_up_timer_.arm_after(*delay);
}

std::optional<ProbeResult> DockerProbe::event_verdict() {
    if (!last_listing_ || !loop_) {
        return std::nullopt;
    }
    const OverriddenListing over = overrides_.preview(*last_listing_, loop_->now());
    if (over.applied.empty()) {
        return std::nullopt;
    }
    ProbeResult r = docker_judge(params_, selector_, over.containers, known_names_);
    if (r.verdict != Verdict::Fail) {
        return std::nullopt;
    }
    r.reason += before_the_list(over.applied);
    r.confirms_event = true;
    return r;
}

void DockerProbe::on_listing(const Trigger& trigger, const HttpResponse& response,
                             const std::function<void(ProbeResult)>& done) {
    auto listing = docker_listing(params_, response);
    ProbeResult r;
    if (auto* failed = std::get_if<ProbeResult>(&listing)) {
        last_listing_.reset();
        r = std::move(*failed);
    } else {
        auto& containers = std::get<std::vector<DockerContainer>>(listing);
        std::vector<DockerContainer> kept;
        for (const auto& c : containers) {
            if (kept.size() < kMaxListed && selector_.matches(c)) {
                kept.push_back(c);
            }
        }
        last_listing_ = std::move(kept);
        if (overrides_.empty() || !loop_) {
            r = docker_judge(params_, selector_, containers, known_names_);
        } else {
            const OverriddenListing over = overrides_.apply(containers, loop_->now());
            r = docker_judge(params_, selector_, over.containers, known_names_);
            if (!over.applied.empty()) {
                r.reason += before_the_list(over.applied);
            }
        }
    }
    r = finish(std::move(r), trigger);
    follow_up(trigger, r);
    done(std::move(r));
}

ProbeResult DockerProbe::finish(ProbeResult r, const Trigger& trigger) const {
    if (trigger.event) {
        r.reason += " (after event: " + trigger.what + ")";
        // The engine said the container stopped serving and the listing agrees: not a flake.
        r.confirms_event = trigger.failure && r.verdict == Verdict::Fail;
    }
    if (stream_ && stream_->state() == DockerEventStream::State::Down) {
        r.reason += " (event stream down: " + stream_->down_reason() + "; polling every " +
                    short_duration(params_.interval) + ")";
    }
    return r;
}

void DockerProbe::start(std::function<void(ProbeResult)> done) {
    Trigger trigger = std::exchange(pending_, Trigger{});
    if (trigger.event) {
        ++event_runs_;
    }
    if (trigger.fresh) {
        // The engine said a container stopped; its list says so only 140-330 ms later. If the
        // last listing with that word laid over it fails, that is the result now, and a
        // listing follows to confirm (it has the override laid over it too, so it cannot
        // pass while the engine's list lags).
        if (auto r = event_verdict()) {
            ++event_verdicts_;
            follow_up_ = trigger;
            follow_up_.fresh = false;
            follow_up_.attempt = 0;
            follow_up_timer_.arm_after(kFollowUpFirst);
            loop_->post([this, alive = std::weak_ptr<int>(alive_), generation = generation_,
                         done = std::move(done), r = std::move(*r)]() mutable {
                if (!alive.expired() && generation == generation_) {
                    done(std::move(r));
                }
            });
            return;
        }
    }
    HttpRequest request;
    request.url = url_;
    request.unix_socket_path = params_.socket_path;
    // ProbeRunner enforces the timeout and reports it; curl's limit is only a backstop for a
    // probe used without a runner.
    request.timeout = params_.timeout + kCurlTimeoutSlack;
    request.connect_timeout = request.timeout;
    request.headers.emplace_back("Accept", "application/json");
    request_ = curl_.perform(
        std::move(request),
        [this, done = std::move(done), trigger = std::move(trigger)](HttpResponse response) {
            request_.reset();
            on_listing(trigger, response, done);
        });
}

void DockerProbe::cancel() {
    ++generation_;
    if (request_) {
        curl_.cancel(*request_);
        request_.reset();
    }
}

}  // namespace failoverd::health
