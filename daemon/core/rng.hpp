// A small deterministic generator. The shell seeds it once from the OS; the simulator
// seeds it from the test seed. Nothing in the core creates one on its own.
#pragma once

#include <cstdint>

namespace failoverd {

// SplitMix64: tiny, fast, good enough for jitter and fault schedules (not for keys).
class Rng {
  public:
    explicit Rng(std::uint64_t seed) : state_(seed) {}

    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }

    // Uniform in [0, bound); bound 0 gives 0.
    std::uint64_t below(std::uint64_t bound) { return bound == 0 ? 0 : next() % bound; }

    // Uniform in [0, 1).
    double unit() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }

    bool chance(double p) { return unit() < p; }

  private:
    std::uint64_t state_;
};

}  // namespace failoverd
