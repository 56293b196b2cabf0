// Docker check verdicts from the Engine's JSON. No I/O and no clock in this file.
#include "health/docker_verdict.hpp"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

namespace failoverd::health {

namespace {

// Reasons stay one readable line even when a whole stack is down.
constexpr std::size_t kNamesInReason = 5;

std::string join_names(const std::vector<std::string>& names) {
    std::string out;
    const std::size_t shown = std::min(names.size(), kNamesInReason);
    for (std::size_t i = 0; i < shown; ++i) {
        if (i > 0) {
            out += ", ";
        }
        out += names[i];
    }
    if (names.size() > shown) {
        out += " and " + std::to_string(names.size() - shown) + " more";
    }
    return out;
}

std::string first_name(const nlohmann::json& item) {
    const auto names = item.find("Names");
    if (names != item.end() && names->is_array()) {
        // Legacy links add names like "/other/alias"; the container's own has a single '/'.
        std::string fallback;
        for (const auto& n : *names) {
            if (!n.is_string()) {
                continue;
            }
            std::string s = n.get<std::string>();
            if (!s.empty() && s.front() == '/') {
                s.erase(0, 1);
            }
            if (s.find('/') == std::string::npos) {
                return s;
            }
            if (fallback.empty()) {
                fallback = s;
            }
        }
        if (!fallback.empty()) {
            return fallback;
        }
    }
    const auto id = item.find("Id");
    if (id != item.end() && id->is_string()) {
        return id->get<std::string>().substr(0, 12);
    }
    return "?";
}

std::string string_field(const nlohmann::json& item, const char* key) {
    const auto it = item.find(key);
    return it != item.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Stopped containers for a reason: those this check knew first, then the most recently
// stopped, then those that never ran, by name within each.
bool stopped_earlier_in_reason(const DockerContainer& a, bool a_known, const DockerContainer& b,
                               bool b_known) {
    if (a_known != b_known) {
        return a_known;
    }
    const auto age = [](const DockerContainer& c) {
        return c.stopped_seconds_ago.value_or(std::numeric_limits<long long>::max());
    };
    if (age(a) != age(b)) {
        return age(a) < age(b);
    }
    if (a.created != b.created) {
        return a.created > b.created;
    }
    return a.name < b.name;
}

}  // namespace

ContainerHealth parse_health(std::string_view status) {
    if (status.find("(unhealthy)") != std::string_view::npos) {
        return ContainerHealth::Unhealthy;
    }
    if (status.find("(healthy)") != std::string_view::npos) {
        return ContainerHealth::Healthy;
    }
    if (status.find("(health: starting)") != std::string_view::npos) {
        return ContainerHealth::Starting;
    }
    return ContainerHealth::None;
}

std::optional<long long> parse_stopped_ago(std::string_view status) {
    constexpr std::string_view suffix = " ago";
    if (status.size() < suffix.size() || status.substr(status.size() - suffix.size()) != suffix) {
        return std::nullopt;
    }
    status.remove_suffix(suffix.size());
    // "Exited (137) 2 minutes": the age follows the exit code, when there is one.
    std::string_view age;
    if (const auto paren = status.find(") "); paren != std::string_view::npos) {
        age = status.substr(paren + 2);
    } else if (const auto space = status.find(' '); space != std::string_view::npos) {
        age = status.substr(space + 1);
    } else {
        return std::nullopt;
    }
    if (age == "Less than a second") {
        return 0;
    }
    if (age == "About a minute") {
        return 60;
    }
    if (age == "About an hour") {
        return 3600;
    }
    static const std::pair<std::string_view, long long> units[] = {
        {"second", 1},       {"minute", 60},        {"hour", 3600},       {"day", 86400},
        {"week", 7 * 86400}, {"month", 30 * 86400}, {"year", 365 * 86400}};
    const auto space = age.find(' ');
    if (space == std::string_view::npos || space == 0) {
        return std::nullopt;
    }
    long long count = 0;
    for (const char ch : age.substr(0, space)) {
        if (ch < '0' || ch > '9' || count > 1000000) {
            return std::nullopt;
        }
        count = count * 10 + (ch - '0');
    }
    std::string_view unit = age.substr(space + 1);
    if (!unit.empty() && unit.back() == 's') {
        unit.remove_suffix(1);
    }
    for (const auto& [name, seconds] : units) {
        if (unit == name) {
            return count * seconds;
        }
    }
    return std::nullopt;
}

std::variant<std::vector<DockerContainer>, std::string> parse_containers(std::string_view body) {
    const auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
        return std::string("engine sent invalid JSON");
    }
    if (!doc.is_array()) {
        return std::string("engine sent unexpected JSON: expected an array of containers, got ") +
               doc.type_name();
    }
    std::vector<DockerContainer> out;
    out.reserve(doc.size());
    for (const auto& item : doc) {
        if (!item.is_object()) {
            return std::string("engine sent unexpected JSON: a container is not an object");
        }
        DockerContainer c;
        c.id = string_field(item, "Id");
        c.name = first_name(item);
        c.status = string_field(item, "Status");
        c.state = string_field(item, "State");
        if (c.state.empty()) {
            // Engines before API 1.23 had no "State"; "Status" still starts with "Up".
            const bool up = c.status.rfind("Up", 0) == 0;
            const bool paused = c.status.find("(Paused)") != std::string::npos;
            c.state = up ? (paused ? "paused" : "running") : "exited";
        }
        const auto labels = item.find("Labels");
        if (labels != item.end() && labels->is_object()) {
            for (const auto& [k, v] : labels->items()) {
                if (v.is_string()) {
                    c.labels.emplace(k, v.get<std::string>());
                }
            }
        }
        c.health = parse_health(c.status);
        if (!c.running()) {
            c.stopped_seconds_ago = parse_stopped_ago(c.status);
        }
        const auto created = item.find("Created");
        if (created != item.end() && created->is_number_integer()) {
            c.created = created->get<long long>();
        }
        out.push_back(std::move(c));
    }
    return out;
}

DockerSelector::DockerSelector(std::vector<std::string> labels, std::string name_pattern)
    : labels_(std::move(labels)), name_pattern_(std::move(name_pattern)) {
    if (!name_pattern_.empty()) {
        name_regex_.emplace(name_pattern_, std::regex::ECMAScript);
    }
}

bool DockerSelector::matches(const DockerContainer& c) const {
    for (const auto& label : labels_) {
        const auto eq = label.find('=');
        const std::string key = label.substr(0, eq);
        const auto it = c.labels.find(key);
        if (it == c.labels.end()) {
            return false;
        }
        if (eq != std::string::npos && it->second != label.substr(eq + 1)) {
            return false;
        }
    }
    return !name_regex_ || std::regex_search(c.name, *name_regex_);
}

std::string DockerSelector::describe() const {
    std::string out;
    for (const auto& label : labels_) {
        out += (out.empty() ? "label " : " and label ") + label;
    }
    if (!name_pattern_.empty()) {
        out += (out.empty() ? "name /" : " and name /") + name_pattern_ + "/";
    }
    return out;
}

std::string DockerSelector::engine_filters() const {
    if (labels_.empty()) {
        return {};
    }
    return nlohmann::json{{"label", labels_}}.dump();
}

DockerVerdict evaluate_containers(const std::vector<DockerContainer>& containers,
                                  const DockerSelector& selector, const DockerExpectation& expect,
                                  const std::set<std::string>& known_names) {
    DockerVerdict v;
    std::set<std::string> listed;
    std::vector<const DockerContainer*> not_running;
    for (const auto& c : containers) {
        if (!selector.matches(c)) {
            continue;
        }
        ++v.matched;
        listed.insert(c.name);
        if (!c.running()) {
            not_running.push_back(&c);
            continue;
        }
        ++v.running;
        v.running_names.push_back(c.name);
        if (c.health == ContainerHealth::Unhealthy) {
            v.unhealthy.push_back(c.name);
        } else if (c.health == ContainerHealth::Starting) {
            v.starting.push_back(c.name);
        }
    }
    std::sort(v.running_names.begin(), v.running_names.end());
    std::sort(v.unhealthy.begin(), v.unhealthy.end());
    std::sort(v.starting.begin(), v.starting.end());

    const bool count_ok = (!expect.expect || v.running == *expect.expect) &&
                          (!expect.min || v.running >= *expect.min) &&
                          (expect.expect || expect.min || v.running >= 1);
    const bool short_of_target = (expect.expect && v.running < *expect.expect) ||
                                 (expect.min && v.running < *expect.min) ||
                                 (!expect.expect && !expect.min && v.running < 1);
    if (short_of_target) {
        for (const auto& name : known_names) {
            if (listed.count(name) == 0) {
                v.missing.push_back(name);
            }
        }
        const auto known = [&known_names](const DockerContainer* c) {
            return known_names.count(c->name) > 0;
        };
        std::stable_sort(not_running.begin(), not_running.end(),
                         [&known](const DockerContainer* a, const DockerContainer* b) {
                             return stopped_earlier_in_reason(*a, known(a), *b, known(b));
                         });
        const int target = std::max({expect.expect.value_or(0), expect.min.value_or(0), 1});
        const std::size_t short_by = static_cast<std::size_t>(target - v.running);
        for (const auto* c : not_running) {
            // Without a selector every old exited container on the host is listed: name only
            // as many as are missing (the most recent), and every one this check knew.
            if (selector.empty() && !known(c) && v.missing.size() >= short_by) {
                break;
            }
            v.missing.push_back(c->name);
        }
    }
    const bool health_ok = !expect.require_healthy || (v.unhealthy.empty() && v.starting.empty());
    v.ok = count_ok && health_ok;

    if (v.matched == 0 && !count_ok) {
        v.reason = selector.empty() ? "no containers" : "0 containers match " + selector.describe();
        if (!v.missing.empty()) {
            v.reason += "; missing: " + join_names(v.missing);
        }
        return v;
    }

    if (expect.expect) {
        v.reason = std::to_string(v.running) + "/" + std::to_string(*expect.expect) + " running";
        if (expect.min) {
            v.reason += " (min " + std::to_string(*expect.min) + ")";
        }
    } else if (expect.min) {
        v.reason = std::to_string(v.running) + " running (min " + std::to_string(*expect.min) + ")";
    } else {
        v.reason = std::to_string(v.running) + " running";
    }
    if (!v.missing.empty()) {
        v.reason += "; missing: " + join_names(v.missing);
    }
    const char* ignored = expect.require_healthy ? "" : " (not required)";
    if (!v.unhealthy.empty()) {
        v.reason += "; " + join_names(v.unhealthy) + " unhealthy" + ignored;
    }
    if (!v.starting.empty()) {
        v.reason += "; " + join_names(v.starting) + " health: starting" + ignored;
    }
    return v;
}

}  // namespace failoverd::health
