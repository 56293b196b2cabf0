// HTTP(S) check: GET a URL over CurlMulti, expect one of the listed statuses and optionally a
// substring in the body.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "health/probe.hpp"

namespace failoverd::health {

struct HttpProbeParams {
    std::string url;
    std::vector<int> expected_status{200};
    std::string body_contains;  // empty: not checked
    Duration timeout = std::chrono::seconds(1);
    bool tls_verify = true;
    std::string ca_file;
    std::optional<std::string> unix_socket_path;

    static HttpProbeParams from_config(const CheckConfig& check);
};

// Pure verdict from a finished transfer: "HTTP 503 (expected 200)", "body lacks 'ok'",
// "connect failed: Connection refused", "timed out after 1.00 s".
ProbeResult http_verdict(const HttpProbeParams& params, const HttpResponse& response);

class HttpProbe : public Probe {
  public:
    HttpProbe(CurlMulti& curl, HttpProbeParams params);
    ~HttpProbe() override;

    void start(std::function<void(ProbeResult)> done) override;
    void cancel() override;

  private:
    CurlMulti& curl_;
    HttpProbeParams params_;
    std::optional<RequestId> request_;
};

}  // namespace failoverd::health
