// The simulator's virtual clock and event queue: events run in (time, sequence) order, and
// time jumps straight to the next event, so an hour of cluster time takes milliseconds.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "daemon/core/time.hpp"

namespace failoverd::sim {

class EventQueue {
  public:
    explicit EventQueue(Instant start) : now_(start) {}

    Instant now() const { return now_; }
    bool empty() const { return heap_.empty(); }
    Instant next_time() const { return heap_.top().at; }
    std::uint64_t executed() const { return executed_; }

    // Schedules fn at `at` (never before now); equal times run in scheduling order.
    void at(Instant at, std::function<void()> fn);
    void after(Duration d, std::function<void()> fn) { at(now_ + d, std::move(fn)); }

    // Advances the clock to the earliest event and runs it. Returns false when empty.
    bool run_one();

  private:
    struct Entry {
        Instant at;
        std::uint64_t seq;
        std::function<void()> fn;
    };
    struct Later {
        bool operator()(const Entry& a, const Entry& b) const {
            return a.at != b.at ? a.at > b.at : a.seq > b.seq;
        }
    };

    Instant now_;
    std::uint64_t seq_ = 0;
    std::uint64_t executed_ = 0;
    std::priority_queue<Entry, std::vector<Entry>, Later> heap_;
};

}  // namespace failoverd::sim
