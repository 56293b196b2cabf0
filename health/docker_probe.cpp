#include "health/docker_probe.hpp"

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

ProbeResult docker_result(const DockerProbeParams& params, const DockerSelector& selector,
                          const HttpResponse& response, std::set<std::string>& known_names) {
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
    if (const auto* error = std::get_if<std::string>(&parsed)) {
        return result(Verdict::Error, *error);
    }
    const auto& containers = std::get<std::vector<DockerContainer>>(parsed);
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
}

void DockerProbe::start(std::function<void(ProbeResult)> done) {
    HttpRequest request;
    request.url = url_;
    request.unix_socket_path = params_.socket_path;
    // ProbeRunner enforces the timeout and reports it; curl's limit is only a backstop for a
    // probe used without a runner.
    request.timeout = params_.timeout + kCurlTimeoutSlack;
    request.connect_timeout = request.timeout;
    request.headers.emplace_back("Accept", "application/json");
    request_ =
        curl_.perform(std::move(request), [this, done = std::move(done)](HttpResponse response) {
            request_.reset();
            done(docker_result(params_, selector_, response, known_names_));
        });
}

void DockerProbe::cancel() {
    if (request_) {
        curl_.cancel(*request_);
        request_.reset();
    }
}

}  // namespace failoverd::health
