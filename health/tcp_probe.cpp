// The connect goes through CurlMulti with CONNECT_ONLY rather than a hand-made socket: curl
// resolves names without blocking the loop (threaded resolver), tries IPv6 and IPv4 (happy
// eyeballs) and enforces the connect timeout, all driven by the same sd-event sources.
#include "health/tcp_probe.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

namespace failoverd::health {

TcpProbeParams TcpProbeParams::from_config(const CheckConfig& check) {
    TcpProbeParams p;
    p.host = check.target.host;
    p.port = check.target.port;
    p.timeout = check.timeout;
    return p;
}

std::string TcpProbeParams::target() const {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

ProbeResult make(Verdict verdict, std::string reason) {
    ProbeResult r;
    r.verdict = verdict;
    r.reason = std::move(reason);
    return r;
}

}  // namespace

ProbeResult tcp_verdict(const TcpProbeParams& params, const HttpResponse& response) {
    const std::string target = params.target();
    if (response.ok()) {
        return make(Verdict::Pass, "connected to " + target);
    }
    if (response.timed_out) {
        return make(Verdict::TimedOut,
                    "connect to " + target + " timed out after " + format_duration(params.timeout));
    }
    if (response.curl_code == CURLE_COULDNT_RESOLVE_HOST) {
        return make(Verdict::Fail, "cannot resolve " + params.host);
    }
    if (response.os_errno == ECONNREFUSED) {
        return make(Verdict::Fail, "connect to " + target + " refused");
    }
    if (response.os_errno != 0) {
        return make(Verdict::Fail,
                    "connect to " + target + " failed: " + std::strerror(response.os_errno));
    }
    if (response.curl_code == CURLE_URL_MALFORMAT || response.curl_code == CURLE_FAILED_INIT) {
        return make(Verdict::Error, "connect to " + target + ": " + response.error);
    }
    return make(Verdict::Fail, "connect to " + target + " failed: " + response.error);
}

TcpProbe::TcpProbe(CurlMulti& curl, TcpProbeParams params)
    : curl_(curl), params_(std::move(params)) {}

TcpProbe::~TcpProbe() {
    cancel();
}

void TcpProbe::start(std::function<void(ProbeResult)> done) {
    cancel();
    HttpRequest request;
    request.url = "http://" + params_.target() + "/";
    request.connect_only = true;
    request.timeout = params_.timeout;
    request.connect_timeout = params_.timeout;
    request_ =
        curl_.perform(std::move(request), [this, done = std::move(done)](HttpResponse response) {
            request_.reset();
            done(tcp_verdict(params_, response));
        });
}

void TcpProbe::cancel() {
    if (request_) {
        curl_.cancel(*request_);
        request_.reset();
    }
}

}  // namespace failoverd::health
