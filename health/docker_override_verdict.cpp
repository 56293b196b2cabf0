#include "health/docker_override_verdict.hpp"

#include <algorithm>
#include <set>
#include <utility>

namespace failoverd::health {

namespace {

std::optional<OverrideKind> failure_kind(const DockerEvent& event) {
    const std::string_view base = event.base_action();
    if (base == "die" || base == "oom" || base == "stop") {
        return OverrideKind::Exited;
    }
    // Any other signal may be caught, but SIGKILL to a container's init always ends it, and the
    // engine sends `kill` 100-160 ms before `die`.
    if (base == "kill") {
        const auto signal = event.attributes.find("signal");
        if (signal != event.attributes.end() &&
            (signal->second == "9" || signal->second == "SIGKILL" || signal->second == "KILL")) {
            return OverrideKind::Exited;
        }
    }
    if (base == "destroy") {
        return OverrideKind::Removed;
    }
    if (base == "pause") {
        return OverrideKind::Paused;
    }
    if (base == "health_status" && event_signals_failure(event)) {
        return OverrideKind::Unhealthy;
    }
    return std::nullopt;
}

// Whether the event takes back an override of that kind.
bool contradicts(const DockerEvent& event, OverrideKind kind) {
    const std::string_view base = event.base_action();
    if (base == "start") {
        return true;
    }
    if (base == "unpause") {
        return kind == OverrideKind::Paused;
    }
    if (base == "health_status" && !event_signals_failure(event)) {
        return kind == OverrideKind::Unhealthy;
    }
    return false;
}

// A later event can only make it worse: exited after unhealthy, removed after exited.
int severity(OverrideKind k) {
    switch (k) {
        case OverrideKind::Unhealthy:
            return 0;
        case OverrideKind::Paused:
            return 1;
        case OverrideKind::Exited:
            return 2;
        case OverrideKind::Removed:
            return 3;
    }
    return 0;
}

bool listing_agrees(const DockerContainer& c, OverrideKind kind) {
    switch (kind) {
        case OverrideKind::Exited:
        case OverrideKind::Paused:
            return !c.running();
        case OverrideKind::Removed:
            return false;  // still listed
        case OverrideKind::Unhealthy:
            return !c.running() || c.health == ContainerHealth::Unhealthy;
    }
    return false;
}

}  // namespace

std::string describe_event(const DockerEvent& event) {
    return event.action + " " + (event.name.empty() ? event.id.substr(0, 12) : event.name);
}

DockerOverrides::Noted DockerOverrides::note(const DockerEvent& event, Instant now) {
    if (event.id.empty()) {
        return Noted::None;
    }
    const auto kind = failure_kind(event);
    auto it = overrides_.find(event.id);
    if (!kind) {
        if (it != overrides_.end() && contradicts(event, it->second.kind)) {
            overrides_.erase(it);
            return Noted::Dropped;
        }
        return Noted::None;
    }
    if (it != overrides_.end()) {
        if (severity(*kind) >= severity(it->second.kind)) {
            it->second.kind = *kind;
            it->second.event = describe_event(event);
        }
        it->second.at = now;
        return Noted::Added;
    }
    if (overrides_.size() >= kMaxDockerOverrides) {
        const auto oldest = std::min_element(
            overrides_.begin(), overrides_.end(),
            [](const auto& a, const auto& b) { return a.second.at < b.second.at; });
        overrides_.erase(oldest);
    }
    overrides_.emplace(event.id, DockerOverride{*kind, now, event.name, describe_event(event)});
    return Noted::Added;
}

OverriddenListing DockerOverrides::lay_over(const std::vector<DockerContainer>& listing,
                                            Instant now, std::vector<std::string>& ended) const {
    OverriddenListing out;
    std::set<std::string> seen;  // ids of overridden containers that are listed
    out.containers.reserve(listing.size());
    for (const auto& c : listing) {
        const auto it = c.id.empty() ? overrides_.end() : overrides_.find(c.id);
        if (it == overrides_.end()) {
            out.containers.push_back(c);
            continue;
        }
        const DockerOverride& o = it->second;
        seen.insert(c.id);
        if (now - o.at > bound_ || listing_agrees(c, o.kind)) {
            ended.push_back(c.id);
            out.containers.push_back(c);
            continue;
        }
        out.applied.push_back(o.event);
        DockerContainer changed = c;
        switch (o.kind) {
            case OverrideKind::Exited:
                changed.state = "exited";
                changed.status = "Exited (" + o.event + ")";
                changed.health = ContainerHealth::None;
                break;
            case OverrideKind::Paused:
                changed.state = "paused";
                changed.status = "Up (Paused) (" + o.event + ")";
                break;
            case OverrideKind::Unhealthy:
                changed.health = ContainerHealth::Unhealthy;
                changed.status += " (unhealthy)";
                break;
            case OverrideKind::Removed:
                continue;  // not listed
        }
        out.containers.push_back(std::move(changed));
    }
    for (const auto& entry : overrides_) {
        // Not listed at all: the listing agrees with every kind of failure.
        if (seen.count(entry.first) == 0) {
            ended.push_back(entry.first);
        }
    }
    return out;
}

OverriddenListing DockerOverrides::apply(const std::vector<DockerContainer>& listing, Instant now) {
    std::vector<std::string> ended;
    OverriddenListing out = lay_over(listing, now, ended);
    for (const auto& id : ended) {
        overrides_.erase(id);
    }
    return out;
}

OverriddenListing DockerOverrides::preview(const std::vector<DockerContainer>& listing,
                                           Instant now) const {
    std::vector<std::string> ended;
    return lay_over(listing, now, ended);
}

void DockerOverrides::expire(Instant now) {
    for (auto it = overrides_.begin(); it != overrides_.end();) {
        it = now - it->second.at > bound_ ? overrides_.erase(it) : std::next(it);
    }
}

std::optional<Instant> DockerOverrides::next_expiry() const {
    std::optional<Instant> first;
    for (const auto& entry : overrides_) {
        const DockerOverride& o = entry.second;
        if (!first || o.at + bound_ < *first) {
            first = o.at + bound_;
        }
    }
    return first;
}

}  // namespace failoverd::health
