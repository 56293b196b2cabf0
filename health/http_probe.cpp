#include "health/http_probe.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace failoverd::health {

HttpProbeParams HttpProbeParams::from_config(const CheckConfig& check) {
    HttpProbeParams p;
    p.url = check.url;
    p.expected_status = check.expected_status;
    p.body_contains = check.body_contains;
    p.timeout = check.timeout;
    p.tls_verify = check.tls_verify;
    return p;
}

namespace {

std::string status_list(const std::vector<int>& statuses) {
    std::string out;
    for (const int s : statuses) {
        out += (out.empty() ? "" : ", ") + std::to_string(s);
    }
    return out;
}

ProbeResult make(Verdict verdict, std::string reason) {
    ProbeResult r;
    r.verdict = verdict;
    r.reason = std::move(reason);
    return r;
}

}  // namespace

ProbeResult http_verdict(const HttpProbeParams& params, const HttpResponse& response) {
    if (response.timed_out) {
        return make(Verdict::TimedOut, "timed out after " + format_duration(params.timeout));
    }
    if (!response.ok()) {
        switch (response.curl_code) {
            case CURLE_COULDNT_CONNECT:
                return make(Verdict::Fail,
                            "connect failed: " + (response.os_errno != 0
                                                      ? std::string(strerror(response.os_errno))
                                                      : response.error));
            case CURLE_URL_MALFORMAT:
            case CURLE_UNSUPPORTED_PROTOCOL:
            case CURLE_FAILED_INIT:
                return make(Verdict::Error, response.error);
            default:
                return make(Verdict::Fail, response.error);
        }
    }
    const auto& expected = params.expected_status;
    if (std::find(expected.begin(), expected.end(), response.status) == expected.end()) {
        return make(Verdict::Fail, "HTTP " + std::to_string(response.status) + " (expected " +
                                       status_list(expected) + ")");
    }
    if (!params.body_contains.empty() &&
        response.body.find(params.body_contains) == std::string::npos) {
        return make(Verdict::Fail, "body lacks '" + params.body_contains + "'");
    }
    return make(Verdict::Pass, "HTTP " + std::to_string(response.status));
}

HttpProbe::HttpProbe(CurlMulti& curl, HttpProbeParams params)
    : curl_(curl), params_(std::move(params)) {}

HttpProbe::~HttpProbe() {
    cancel();
}

void HttpProbe::start(std::function<void(ProbeResult)> done) {
    cancel();
    HttpRequest request;
    request.url = params_.url;
    request.timeout = params_.timeout;
    request.connect_timeout = params_.timeout;
    request.verify_tls = params_.tls_verify;
    request.ca_file = params_.ca_file;
    request.unix_socket_path = params_.unix_socket_path;
    request_ =
        curl_.perform(std::move(request), [this, done = std::move(done)](HttpResponse response) {
            request_.reset();
            done(http_verdict(params_, response));
        });
}

void HttpProbe::cancel() {
    if (request_) {
        curl_.cancel(*request_);
        request_.reset();
    }
}

}  // namespace failoverd::health
