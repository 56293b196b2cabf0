// The simulated advert network: etcd raft's fault vocabulary (drop, cut, isolate, recover)
// plus latency, duplication and reordering. It decides when a datagram arrives, never sends it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "daemon/core/rng.hpp"
#include "daemon/core/time.hpp"

namespace failoverd::sim {

// Up to two arrival times for one datagram (two when duplicated, none when dropped).
struct Delivery {
    int count = 0;
    std::array<Instant, 2> at{};
};

struct NetworkCounters {
    std::uint64_t sent = 0;
    std::uint64_t delivered = 0;
    std::uint64_t dropped = 0;
    std::uint64_t duplicated = 0;
    std::uint64_t reordered = 0;
};

class SimNetwork {
  public:
    explicit SimNetwork(int node_count);

    // Messages from a to b are dropped with probability p (one direction), as etcd's drop().
    void drop(int a, int b, double p);
    // No message passes between a and b in either direction.
    void cut(int a, int b);
    // Cut every link of n.
    void isolate(int n);
    // Cut every link between the two groups (a partition); links inside a group stay.
    void partition(const std::vector<int>& left, const std::vector<int>& right);
    // Heal every link and clear drop, duplicate and reorder faults; latency stays.
    void recover();

    // One-way latency, uniform in [min, max] per datagram. A link keeps FIFO order (one path):
    // a datagram never arrives before the one sent before it on the same link.
    void set_delay(Duration min, Duration max);
    // Each datagram is delivered twice with probability p.
    void set_duplicate(double p);
    // With probability p a datagram is held back by up to `extra` beyond its latency, and may
    // be overtaken: the only way datagrams on one link change order.
    void set_reorder(double p, Duration extra);

    // No cut, no drop, no duplicate, no reorder: what the quiet period requires.
    bool whole() const;
    bool connected(int a, int b) const;
    Duration max_delay() const { return delay_max_; }
    int node_count() const { return node_count_; }

    Delivery route(int from, int to, Instant now, Rng& rng);

    const NetworkCounters& counters() const { return counters_; }
    std::string describe() const;  // "cut 0-1, drop 2->0 30%" for the trace

  private:
    struct Link {
        bool cut = false;
        double drop = 0.0;
        Instant last_arrival{};  // FIFO: the latest arrival scheduled on this link
    };
    Link& link(int a, int b) { return links_[static_cast<std::size_t>(a * node_count_ + b)]; }
    const Link& link(int a, int b) const {
        return links_[static_cast<std::size_t>(a * node_count_ + b)];
    }
    Duration one_latency(Rng& rng) const;

    int node_count_;
    std::vector<Link> links_;
    Duration delay_min_ = std::chrono::milliseconds(1);
    Duration delay_max_ = std::chrono::milliseconds(2);
    double duplicate_ = 0.0;
    double reorder_ = 0.0;
    Duration reorder_extra_{0};
    NetworkCounters counters_;
};

}  // namespace failoverd::sim
