// Every line the default logger writes while a LogCapture lives, at debug level and above, in
// addition to its usual sinks: for checking what operators read (and what they must never read,
// such as the API token).
#pragma once

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>

namespace failoverd::testing {

class LogCapture {
  public:
    LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)) {
        logger_ = spdlog::default_logger();
        previous_level_ = logger_->level();
        logger_->set_level(spdlog::level::debug);
        sink_->set_level(spdlog::level::debug);
        logger_->sinks().push_back(sink_);
    }
    ~LogCapture() {
        auto& sinks = logger_->sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
        logger_->set_level(previous_level_);
    }
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;

    std::string text() {
        logger_->flush();
        return stream_.str();
    }

  private:
    std::ostringstream stream_;
    std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
    std::shared_ptr<spdlog::logger> logger_;
    spdlog::level::level_enum previous_level_ = spdlog::level::info;
};

}  // namespace failoverd::testing
