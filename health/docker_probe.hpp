// Docker check: GET /containers/json from the Engine API over its unix socket with CurlMulti
// (never by forking `docker`), then judge the answer with the pure docker_verdict. With events,
// a failure event counts before the listing shows it (docker_override_verdict).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "health/docker_event_probe.hpp"
#include "health/docker_override_verdict.hpp"
#include "health/docker_verdict.hpp"
#include "health/probe.hpp"

namespace failoverd::health {

// Engine 20.10 (Debian bookworm) speaks 1.41; newer engines still accept it (minimum 1.24).
inline constexpr const char* kDockerApiVersion = "v1.41";

struct DockerProbeParams {
    std::string socket_path = "/var/run/docker.sock";
    std::vector<std::string> labels;  // "key" or "key=value"
    std::string name_pattern;         // ECMAScript regex searched in the container name
    DockerExpectation expectation;
    Duration timeout = std::chrono::seconds(1);   // ProbeRunner enforces it; curl's is a backstop
    Duration interval = std::chrono::seconds(2);  // only for the reason while events are down
    bool events = true;                           // watch the engine's event stream

    static DockerProbeParams from_config(const CheckConfig& check);
};

// "http://localhost/v1.41/containers/json?all=1&filters=%7B%22label%22..." (all=1 so stopped
// containers can be named in the reason).
std::string docker_containers_url(const DockerSelector& selector);

// Verdict from a finished transfer, pure: "docker socket /x/docker.sock: no such file",
// "... permission denied", "engine returned HTTP 500: ...", "engine sent invalid JSON",
// "engine closed the connection without answering", or the count verdict from the listing.
// `known_names` is updated with the containers seen running (bounded).
ProbeResult docker_result(const DockerProbeParams& params, const DockerSelector& selector,
                          const HttpResponse& response, std::set<std::string>& known_names);

// The two halves of docker_result: the parsed listing, or the failing result of a transfer
// that did not bring one; then the count verdict of a listing (updating `known_names`).
std::variant<std::vector<DockerContainer>, ProbeResult> docker_listing(
    const DockerProbeParams& params, const HttpResponse& response);
ProbeResult docker_judge(const DockerProbeParams& params, const DockerSelector& selector,
                         const std::vector<DockerContainer>& containers,
                         std::set<std::string>& known_names);

class DockerProbe : public Probe {
  public:
    // Throws std::invalid_argument for a malformed name pattern (start-up time).
    DockerProbe(CurlMulti& curl, DockerProbeParams params);
    ~DockerProbe() override;
    DockerProbe(const DockerProbe&) = delete;
    DockerProbe& operator=(const DockerProbe&) = delete;

    void start(std::function<void(ProbeResult)> done) override;
    void cancel() override;

    const std::set<std::string>& known_names() const { return known_names_; }

    // Subscribes to the shared event stream of the socket: `run_now` is called (from the loop)
    // when an event concerns this check and after every (re)connect of the stream. The caller
    // keeps `run_now` valid for the probe's lifetime (ProbeRunner::run_now of its owner).
    void watch_events(EventLoop& loop, std::function<void()> run_now);
    // Null unless watch_events was called.
    const DockerEventStream* event_stream() const { return stream_.get(); }
    // Runs re-run because an event concerned this check, and events that concerned it.
    std::uint64_t event_runs() const { return event_runs_; }
    std::uint64_t events_matched() const { return events_matched_; }
    // Failing results given from an event and the last listing, before a new listing.
    std::uint64_t event_verdicts() const { return event_verdicts_; }
    // What failure events said that the listing did not show yet (see docker_override_verdict).
    const DockerOverrides& overrides() const { return overrides_; }

  private:
    // Why the next run happens, gathered from events until it starts.
    struct Trigger {
        bool event = false;     // an event concerned this check
        bool failure = false;   // one of them says a container stopped serving
        bool fresh = false;     // one of them added an override: judge the last listing at once
        bool recovery = false;  // start, unpause or healthy: follow up until the listing agrees
        std::string what;       // "die web-1", for the reason
        int attempt = 0;        // follow-up runs so far for a failure the listing did not show yet
    };

    void on_event(const DockerEvent& event);
    void follow_up(const Trigger& trigger, const ProbeResult& result);
    // The verdict of the last listing with the overrides laid over it, if they make it fail.
    std::optional<ProbeResult> event_verdict();
    void on_listing(const Trigger& trigger, const HttpResponse& response,
                    const std::function<void(ProbeResult)>& done);
    ProbeResult finish(ProbeResult result, const Trigger& trigger) const;

    CurlMulti& curl_;
    DockerProbeParams params_;
    DockerSelector selector_;
    std::string url_;
    std::optional<RequestId> request_;
    std::set<std::string> known_names_;  // seen running by this check, for "missing: web-3"
    std::shared_ptr<DockerEventStream> stream_;
    std::uint64_t subscription_ = 0;
    std::function<void()> run_now_;
    Trigger pending_;
    Trigger follow_up_;
    Timer follow_up_timer_;
    std::uint64_t event_runs_ = 0;
    std::uint64_t events_matched_ = 0;
    std::uint64_t event_verdicts_ = 0;
    EventLoop* loop_ = nullptr;
    DockerOverrides overrides_;
    // The last successful listing, the containers the selector matches (bounded); none after
    // a failed one, so an event never judges a listing the engine could not give again.
    std::optional<std::vector<DockerContainer>> last_listing_;
    std::uint64_t generation_ = 0;  // bumped by cancel, so a posted result is dropped
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // guards posted results
};

}  // namespace failoverd::health
