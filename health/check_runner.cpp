#include "health/check_runner.hpp"

#include <stdexcept>

#include "health/docker_probe.hpp"
#include "health/exec_probe.hpp"
#include "health/http_probe.hpp"
#include "health/tcp_probe.hpp"

namespace failoverd::health {

std::unique_ptr<Probe> make_probe(const CheckConfig& check, EventLoop& loop, CurlMulti& curl) {
    switch (check.type) {
        case CheckType::Docker:
            return std::make_unique<DockerProbe>(curl, DockerProbeParams::from_config(check));
        case CheckType::Http:
            return std::make_unique<HttpProbe>(curl, HttpProbeParams::from_config(check));
        case CheckType::Tcp:
            return std::make_unique<TcpProbe>(curl, TcpProbeParams::from_config(check));
        case CheckType::Exec:
            return std::make_unique<ExecProbe>(loop, ExecProbeParams::from_config(check));
    }
    throw std::invalid_argument("check " + check.name + ": unknown type");
}

ProbeSchedule schedule_of(const CheckConfig& check) {
    ProbeSchedule s;
    s.interval = check.interval;
    s.timeout = check.timeout;
    return s;
}

}  // namespace failoverd::health
