#include "daemon/shell/rate_limited_log.hpp"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
using failoverd::Instant;
using failoverd::RateLimitedLog;

namespace {

class LogCapture {
  public:
    LogCapture() : previous_(spdlog::default_logger()) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out_);
        auto logger = std::make_shared<spdlog::logger>("capture", sink);
        logger->set_pattern("%v");
        spdlog::set_default_logger(logger);
    }
    ~LogCapture() { spdlog::set_default_logger(previous_); }
    std::string text() const { return out_.str(); }

  private:
    std::shared_ptr<spdlog::logger> previous_;
    std::ostringstream out_;
};

Instant at(std::chrono::milliseconds ms) {
    return Instant{ms};
}

}  // namespace

TEST_CASE("RateLimitedLog: one line per key per minute, then the number held back") {
    LogCapture capture;
    RateLimitedLog log;
    const auto warn = spdlog::level::warn;
    CHECK(log.log(at(1000ms), warn, "bad-mac", "dropping advert: bad MAC"));
    CHECK_FALSE(log.log(at(2000ms), warn, "bad-mac", "dropping advert: bad MAC"));
    CHECK_FALSE(log.log(at(30000ms), warn, "bad-mac", "dropping advert: bad MAC"));
    CHECK(log.log(at(3000ms), warn, "replay", "dropping advert: replayed"));
    CHECK(log.pending("bad-mac") == 2);
    CHECK(log.log(at(61000ms), warn, "bad-mac", "dropping advert: bad MAC"));
    CHECK(log.pending("bad-mac") == 0);
    CHECK(log.log(at(130000ms), warn, "bad-mac", "dropping advert: bad MAC {}"));
    CHECK(log.suppressed_total() == 2);
    CHECK(capture.text() ==
          "dropping advert: bad MAC\n"
          "dropping advert: replayed\n"
          "dropping advert: bad MAC (2 similar suppressed in the last 60.00 s)\n"
          "dropping advert: bad MAC {}\n");
}

TEST_CASE("RateLimitedLog: keys beyond the limit share one entry") {
    LogCapture capture;
    RateLimitedLog log;
    for (std::size_t i = 0; i < RateLimitedLog::kMaxKeys; ++i) {
        CHECK(log.log(at(0ms), spdlog::level::info, "k" + std::to_string(i), "x"));
    }
    CHECK(log.log(at(0ms), spdlog::level::info, "new-1", "first overflow"));
    CHECK_FALSE(log.log(at(1ms), spdlog::level::info, "new-2", "second overflow"));
    CHECK(log.suppressed_total() == 1);
}
