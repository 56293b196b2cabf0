// TCP check: the connection opens within the timeout, nothing is sent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "daemon/config.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "health/probe.hpp"

namespace failoverd::health {

struct TcpProbeParams {
    std::string host;  // IPv4/IPv6 literal or a name (resolved without blocking the loop)
    std::uint16_t port = 0;
    Duration timeout = std::chrono::seconds(1);

    static TcpProbeParams from_config(const CheckConfig& check);
    std::string target() const;  // "127.0.0.1:8080", "[::1]:8080"
};

// Pure verdict: "connected to 127.0.0.1:8080", "connect to 127.0.0.1:8080 refused",
// "connect to db:5432 timed out after 1.00 s", "cannot resolve db".
ProbeResult tcp_verdict(const TcpProbeParams& params, const HttpResponse& response);

class TcpProbe : public Probe {
  public:
    TcpProbe(CurlMulti& curl, TcpProbeParams params);
    ~TcpProbe() override;

    void start(std::function<void(ProbeResult)> done) override;
    void cancel() override;

  private:
    CurlMulti& curl_;
    TcpProbeParams params_;
    std::optional<RequestId> request_;
};

}  // namespace failoverd::health
