// Rate-limited logging for repeated errors (bad packets, send failures): one line per reason
// per period, with the number of lines held back since the previous one. Time comes from the
// caller's loop, never from a clock read here.
#pragma once

#include <spdlog/common.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "daemon/core/time.hpp"

namespace failoverd {

class RateLimitedLog {
  public:
    // Distinct keys kept; beyond that, new keys share one overflow entry so memory stays bounded.
    static constexpr std::size_t kMaxKeys = 256;

    explicit RateLimitedLog(Duration period = std::chrono::minutes(1)) : period_(period) {}

    // Writes `message` unless a line with the same `key` was written less than a period before
    // `now`; then it only counts it. A written line that follows held-back ones says how many.
    // `message` is data, never a format string. Returns true when a line was written.
    bool log(Instant now, spdlog::level::level_enum level, std::string_view key,
             std::string_view message);

    // Lines held back for `key` since its last written line.
    std::uint64_t pending(std::string_view key) const;
    // Lines held back over the lifetime of this object.
    std::uint64_t suppressed_total() const { return suppressed_total_; }
    Duration period() const { return period_; }

  private:
    struct Entry {
        Instant last_written{};
        std::uint64_t pending = 0;
    };

    Duration period_;
    std::map<std::string, Entry, std::less<>> entries_;
    std::uint64_t suppressed_total_ = 0;
};

}  // namespace failoverd
