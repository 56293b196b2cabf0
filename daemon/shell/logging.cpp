#include "daemon/shell/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdlib>
#include <stdexcept>

namespace failoverd {

bool started_by_systemd() {
    // JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; compare with stderr's.
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) {
        return false;
    }
    struct stat st {};
    if (fstat(2, &st) != 0) {
        return false;
    }
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) {
        return false;
    }
    return dev == static_cast<unsigned long long>(st.st_dev) &&
           ino == static_cast<unsigned long long>(st.st_ino);
}

void setup_logging(const std::string& level, LogTarget target) {
    const auto parsed = spdlog::level::from_str(level);
    if (parsed == spdlog::level::off && level != "off") {
        throw std::invalid_argument("unknown log level '" + level +
                                    "' (allowed: trace, debug, info, warn, error, critical, off)");
    }
    const bool journal =
        target == LogTarget::Journal || (target == LogTarget::Auto && started_by_systemd());
    std::shared_ptr<spdlog::logger> logger;
    if (journal) {
        auto sink = std::make_shared<spdlog::sinks::systemd_sink_st>("failoverd");
        logger = std::make_shared<spdlog::logger>("failoverd", sink);
        logger->set_pattern("%v");
    } else {
        auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_st>();
        logger = std::make_shared<spdlog::logger>("failoverd", sink);
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
    }
    logger->set_level(parsed);
    spdlog::set_default_logger(logger);
}

}  // namespace failoverd
