// Docker check: GET /containers/json from the Engine API over its unix socket with CurlMulti
// (never by forking `docker`), then judge the answer with the pure docker_verdict.
#pragma once

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/curl_multi.hpp"
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
    Duration timeout = std::chrono::seconds(1);  // ProbeRunner enforces it; curl's is a backstop

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

  private:
    CurlMulti& curl_;
    DockerProbeParams params_;
    DockerSelector selector_;
    std::string url_;
    std::optional<RequestId> request_;
    std::set<std::string> known_names_;  // seen running by this check, for "missing: web-3"
};

}  // namespace failoverd::health
