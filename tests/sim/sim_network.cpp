#include "tests/sim/sim_network.hpp"

#include <algorithm>
#include <cstdio>

namespace failoverd::sim {

SimNetwork::SimNetwork(int node_count)
    : node_count_(node_count), links_(static_cast<std::size_t>(node_count * node_count)) {}

void SimNetwork::drop(int a, int b, double p) {
    link(a, b).drop = p;
}

void SimNetwork::cut(int a, int b) {
    link(a, b).cut = true;
    link(b, a).cut = true;
}

void SimNetwork::isolate(int n) {
    for (int other = 0; other < node_count_; ++other) {
        if (other != n) {
            cut(n, other);
        }
    }
}

void SimNetwork::partition(const std::vector<int>& left, const std::vector<int>& right) {
    for (int a : left) {
        for (int b : right) {
            cut(a, b);
        }
    }
}

void SimNetwork::recover() {
    for (auto& l : links_) {
        l.cut = false;
        l.drop = 0.0;
    }
    duplicate_ = 0.0;
    reorder_ = 0.0;
    reorder_extra_ = Duration{0};
}

void SimNetwork::set_delay(Duration min, Duration max) {
    delay_min_ = min;
    delay_max_ = max < min ? min : max;
}

void SimNetwork::set_duplicate(double p) {
    duplicate_ = p;
}

void SimNetwork::set_reorder(double p, Duration extra) {
    reorder_ = p;
    reorder_extra_ = extra;
}

bool SimNetwork::whole() const {
    for (const auto& l : links_) {
        if (l.cut || l.drop > 0.0) {
            return false;
        }
    }
    return duplicate_ == 0.0 && reorder_ == 0.0;
}

bool SimNetwork::connected(int a, int b) const {
    return !link(a, b).cut && !link(b, a).cut;
}

Duration SimNetwork::one_latency(Rng& rng) const {
    const auto span = static_cast<std::uint64_t>((delay_max_ - delay_min_).count());
    return delay_min_ + Duration{static_cast<Duration::rep>(rng.below(span + 1))};
}

Delivery SimNetwork::route(int from, int to, Instant now, Rng& rng) {
    ++counters_.sent;
    Delivery d;
    Link& l = link(from, to);
    if (l.cut || (l.drop > 0.0 && rng.chance(l.drop))) {
        ++counters_.dropped;
        return d;
    }
    const int copies = (duplicate_ > 0.0 && rng.chance(duplicate_)) ? 2 : 1;
    if (copies == 2) {
        ++counters_.duplicated;
    }
    for (int i = 0; i < copies; ++i) {
        Instant arrival = now + one_latency(rng);
        if (reorder_ > 0.0 && rng.chance(reorder_)) {
            ++counters_.reordered;
            const auto extra = static_cast<std::uint64_t>(reorder_extra_.count());
            arrival += Duration{static_cast<Duration::rep>(rng.below(extra + 1))};
        } else {
            arrival = std::max(arrival, l.last_arrival);
            l.last_arrival = arrival;
        }
        d.at[static_cast<std::size_t>(d.count++)] = arrival;
        ++counters_.delivered;
    }
    return d;
}

std::string SimNetwork::describe() const {
    std::string out;
    char buf[64];
    for (int a = 0; a < node_count_; ++a) {
        for (int b = 0; b < node_count_; ++b) {
            const Link& l = link(a, b);
            if (l.cut && a < b && link(b, a).cut) {
                std::snprintf(buf, sizeof buf, "cut %d-%d, ", a, b);
                out += buf;
            } else if (l.cut && !link(b, a).cut) {
                std::snprintf(buf, sizeof buf, "cut %d->%d, ", a, b);
                out += buf;
            }
            if (!l.cut && l.drop > 0.0) {
                std::snprintf(buf, sizeof buf, "drop %d->%d %.0f%%, ", a, b, l.drop * 100);
                out += buf;
            }
        }
    }
    if (duplicate_ > 0.0) {
        std::snprintf(buf, sizeof buf, "duplicate %.0f%%, ", duplicate_ * 100);
        out += buf;
    }
    if (reorder_ > 0.0) {
        std::snprintf(buf, sizeof buf, "reorder %.0f%%, ", reorder_ * 100);
        out += buf;
    }
    if (out.empty()) {
        return "whole";
    }
    out.resize(out.size() - 2);
    return out;
}

}  // namespace failoverd::sim
