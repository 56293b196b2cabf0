#include "daemon/shell/rate_limited_log.hpp"

#include <spdlog/spdlog.h>

namespace failoverd {

namespace {
constexpr std::string_view kOverflowKey = "(other reasons)";
}

bool RateLimitedLog::log(Instant now, spdlog::level::level_enum level, std::string_view key,
                         std::string_view message) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        if (entries_.size() >= kMaxKeys) {
            key = kOverflowKey;
            it = entries_.find(key);
        }
        if (it == entries_.end()) {
            spdlog::log(level, "{}", message);
            entries_.emplace(std::string(key), Entry{now, 0});
            return true;
        }
    }
    Entry& entry = it->second;
    if (now - entry.last_written < period_) {
        ++entry.pending;
        ++suppressed_total_;
        return false;
    }
    if (entry.pending > 0) {
        spdlog::log(level, "{} ({} similar suppressed in the last {})", message, entry.pending,
                    format_duration(now - entry.last_written));
    } else {
        spdlog::log(level, "{}", message);
    }
    entry.last_written = now;
    entry.pending = 0;
    return true;
}

std::uint64_t RateLimitedLog::pending(std::string_view key) const {
    const auto it = entries_.find(key);
    return it == entries_.end() ? 0 : it->second.pending;
}

}  // namespace failoverd
