#include "tests/sim/event_queue.hpp"

#include <utility>

namespace failoverd::sim {

void EventQueue::at(Instant at, std::function<void()> fn) {
    heap_.push(Entry{at < now_ ? now_ : at, seq_++, std::move(fn)});
}

bool EventQueue::run_one() {
    if (heap_.empty()) {
        return false;
    }
    // priority_queue::top is const; the entry is popped before it runs so that fn may
    // schedule new events.
    Entry e = std::move(const_cast<Entry&>(heap_.top()));
    heap_.pop();
    now_ = e.at;
    ++executed_;
    e.fn();
    return true;
}

}  // namespace failoverd::sim
