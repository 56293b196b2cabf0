// The pure half of the docker check: parse the Engine's /containers/json answer and judge it
// against the selector and the expected count. No I/O and no clock in this file.
#pragma once

#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace failoverd::health {

// Docker's own healthcheck, as /containers/json reports it inside "Status".
enum class ContainerHealth { None, Starting, Healthy, Unhealthy };

constexpr const char* to_string(ContainerHealth h) {
    switch (h) {
        case ContainerHealth::None:
            return "none";
        case ContainerHealth::Starting:
            return "starting";
        case ContainerHealth::Healthy:
            return "healthy";
        case ContainerHealth::Unhealthy:
            return "unhealthy";
    }
    return "?";
}

struct DockerContainer {
    std::string id;      // full Id, as events carry it
    std::string name;    // first name, without the leading '/'
    std::string state;   // "running", "exited", "paused", "restarting", "created", "dead"
    std::string status;  // "Up 5 minutes (healthy)"
    std::map<std::string, std::string> labels;
    ContainerHealth health = ContainerHealth::None;
    // How long ago it stopped, from "Exited (137) 2 minutes ago" (the list has no finish time
    // of its own); nullopt when it never ran, is running, or the Status says no time.
    std::optional<long long> stopped_seconds_ago;
    long long created = 0;  // "Created", Unix seconds

    bool running() const { return state == "running"; }
};

// "Up 5 minutes (healthy)" -> Healthy, "(unhealthy)", "(health: starting)", else None.
ContainerHealth parse_health(std::string_view status);

// The age in a stopped container's Status, in seconds, as the Engine rounds it (Docker's
// HumanDuration): "Exited (0) Less than a second ago" -> 0, "About a minute ago" -> 60,
// "3 hours ago" -> 10800. nullopt when Status carries no "... ago".
std::optional<long long> parse_stopped_ago(std::string_view status);

// Parses the JSON array the Engine returns; on failure, a reason for operators.
std::variant<std::vector<DockerContainer>, std::string> parse_containers(std::string_view body);

// Which containers a check looks at. The label filter is also sent to the Engine, but it is
// applied again here so that an older or fake engine that ignores filters cannot pass a check.
class DockerSelector {
  public:
    // labels: "key" (present) or "key=value"; name_pattern: ECMAScript regex searched in the
    // name (anchor it with ^...$ for an exact match), empty for any name.
    // Throws std::regex_error for a malformed pattern: call at start-up or config time.
    DockerSelector(std::vector<std::string> labels, std::string name_pattern);

    bool matches(const DockerContainer& c) const;
    bool empty() const { return labels_.empty() && name_pattern_.empty(); }

    // "label app=minitwit and name /^web-/" for reasons; "" when empty().
    std::string describe() const;

    // The Engine's `filters` query value before URL escaping: {"label":["app=minitwit"]}.
    // Empty string when there is nothing to filter on the Engine side.
    std::string engine_filters() const;

    const std::vector<std::string>& labels() const { return labels_; }
    const std::string& name_pattern() const { return name_pattern_; }

  private:
    std::vector<std::string> labels_;
    std::string name_pattern_;
    std::optional<std::regex> name_regex_;
};

struct DockerExpectation {
    std::optional<int> expect;    // exactly this many running
    std::optional<int> min;       // at least this many running; neither set means at least 1
    bool require_healthy = true;  // containers with a healthcheck must report healthy
};

struct DockerVerdict {
    bool ok = false;
    std::string reason;  // "9/10 running; missing: web-3", "10/10 running; api-1 unhealthy"
    int matched = 0;     // selected containers in any state
    int running = 0;
    std::vector<std::string> running_names;  // selected and running, sorted
    std::vector<std::string> missing;        // selected but not running, or known and gone
    std::vector<std::string> unhealthy;
    std::vector<std::string> starting;
};

// Judges one listing (made with all=1, so stopped containers are in it). When the count is
// short, the reason names the stopped containers, the most recently stopped first: with a
// selector every selected one; without one (every container on the host counts) only as many
// as are missing, so old leftovers do not drown the line. `known_names` are containers this
// check has seen running before: those no longer running or no longer listed are always
// named, first.
DockerVerdict evaluate_containers(const std::vector<DockerContainer>& containers,
                                  const DockerSelector& selector, const DockerExpectation& expect,
                                  const std::set<std::string>& known_names = {});

}  // namespace failoverd::health
