// What the Engine's failure events say before its container list does. dockerd 20.10 sends
// `die` 140-330 ms before /containers/json stops listing the container as running, so a
// docker check keeps the word of a failure event as an override on the listing until the
// listing agrees, a later event for that container takes it back, or it is too old (then the
// listing wins, so a missed or wrong event cannot hold a wrong verdict). Pure: Instants are
// handed in.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "daemon/core/time.hpp"
#include "health/docker_event_verdict.hpp"
#include "health/docker_verdict.hpp"

namespace failoverd::health {

inline constexpr Duration kDockerOverrideBound = std::chrono::seconds(5);
inline constexpr std::size_t kMaxDockerOverrides = 1024;

// What a failure event says about its container.
enum class OverrideKind { Exited, Removed, Paused, Unhealthy };

constexpr const char* to_string(OverrideKind k) {
    switch (k) {
        case OverrideKind::Exited:
            return "exited";
        case OverrideKind::Removed:
            return "removed";
        case OverrideKind::Paused:
            return "paused";
        case OverrideKind::Unhealthy:
            return "unhealthy";
    }
    return "?";
}

struct DockerOverride {
    OverrideKind kind = OverrideKind::Exited;
    Instant at{};
    std::string name;   // for reasons; may be empty if the event had none
    std::string event;  // "die web-1"
};

// The listing with the overrides laid over it, and the events that changed it.
struct OverriddenListing {
    std::vector<DockerContainer> containers;
    std::vector<std::string> applied;  // "die web-1", for each override that changed a container
};

// "die web-1" (or the short id when the event has no name).
std::string describe_event(const DockerEvent& event);

class DockerOverrides {
  public:
    explicit DockerOverrides(Duration bound = kDockerOverrideBound) : bound_(bound) {}

    enum class Noted { None, Added, Dropped };

    // die, oom and stop say exited; destroy removed; pause paused; "health_status: unhealthy"
    // unhealthy (kill is only a signal sent: it says nothing). start drops the container's
    // override; unpause drops a paused one, "health_status: healthy" an unhealthy one. An event
    // without an id is ignored. At kMaxDockerOverrides the oldest is dropped first.
    Noted note(const DockerEvent& event, Instant now);

    // Drops the overrides older than the bound and those the listing agrees with (the container
    // is listed as not running, paused or unhealthy, or not at all, as the override says), then
    // lays the rest over the listing: exited and paused set the state, removed takes the
    // container out, unhealthy sets the health. Containers are matched by Id.
    OverriddenListing apply(const std::vector<DockerContainer>& listing, Instant now);

    // The same without dropping any agreed override: for judging an older listing again.
    OverriddenListing preview(const std::vector<DockerContainer>& listing, Instant now) const;

    // Drops those older than the bound.
    void expire(Instant now);
    // When the oldest override expires, if any.
    std::optional<Instant> next_expiry() const;

    bool empty() const { return overrides_.empty(); }
    std::size_t size() const { return overrides_.size(); }
    const std::map<std::string, DockerOverride>& overrides() const { return overrides_; }
    Duration bound() const { return bound_; }

  private:
    // Also lists the ids of the overrides the listing agrees with or that are too old.
    OverriddenListing lay_over(const std::vector<DockerContainer>& listing, Instant now,
                               std::vector<std::string>& ended) const;

    Duration bound_;
    std::map<std::string, DockerOverride> overrides_;  // by container id
};

}  // namespace failoverd::health
