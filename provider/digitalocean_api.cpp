#include "provider/digitalocean_api.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

namespace failoverd::digitalocean {

namespace {

using nlohmann::json;

constexpr std::size_t kMessageMax = 200;
constexpr Duration kRateLimitFloor = std::chrono::seconds(1);
constexpr Duration kRateLimitCap = std::chrono::hours(1);

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool icontains(std::string_view haystack, std::string_view needle) {
    if (needle.size() > haystack.size()) {
        return false;
    }
    for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
        if (iequals(haystack.substr(i, needle.size()), needle)) {
            return true;
        }
    }
    return false;
}

std::string percent_encode(std::string_view text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += kHex[u >> 4];
            out += kHex[u & 0xF];
        }
    }
    return out;
}

ApiRequest get(std::string path) {
    ApiRequest r;
    r.method = "GET";
    r.path = std::move(path);
    r.headers = {{"Accept", "application/json"}};
    return r;
}

std::optional<std::int64_t> integer_header(const std::map<std::string, std::string>& headers,
                                           std::string_view name) {
    const auto value = find_header(headers, name);
    if (!value) {
        return std::nullopt;
    }
    std::string_view v = *value;
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) {
        v.remove_prefix(1);
    }
    std::int64_t out = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc{} || end == v.data()) {
        return std::nullopt;
    }
    return out;
}

// Operators read this; control characters and markup are noise, the length is bounded.
std::string clean_snippet(std::string_view text) {
    std::string out;
    bool in_tag = false;
    bool space = false;
    for (const char c : text) {
        if (c == '<') {
            in_tag = true;
            continue;
        }
        if (in_tag) {
            in_tag = c != '>';
            if (!in_tag) {
                space = !out.empty();
            }
            continue;
        }
        const auto u = static_cast<unsigned char>(c);
        if (std::isspace(u) || u < 0x20 || u == 0x7F) {
            space = !out.empty();
            continue;
        }
        if (space) {
            out += ' ';
            space = false;
        }
        out += c;
        if (out.size() >= kMessageMax) {
            out += "...";
            break;
        }
    }
    return out;
}

std::optional<json> parse_json(std::string_view body) {
    json j = json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_discarded()) {
        return std::nullopt;
    }
    return j;
}

std::optional<std::int64_t> json_id(const json& j) {
    if (j.is_number_integer()) {
        const auto v = j.get<std::int64_t>();
        return v > 0 ? std::optional<std::int64_t>(v) : std::nullopt;
    }
    if (j.is_number_unsigned()) {
        const auto v = j.get<std::uint64_t>();
        if (v == 0 || v > static_cast<std::uint64_t>(INT64_MAX)) {
            return std::nullopt;
        }
        return static_cast<std::int64_t>(v);
    }
    if (j.is_string()) {
        return parse_id(j.get_ref<const std::string&>());
    }
    return std::nullopt;
}

std::string json_string(const json& obj, const char* key) {
    const auto it = obj.find(key);
    if (it == obj.end() || !it->is_string()) {
        return {};
    }
    return it->get<std::string>();
}

std::string region_slug(const json& obj) {
    const auto it = obj.find("region");
    if (it == obj.end()) {
        return {};
    }
    if (it->is_string()) {
        return it->get<std::string>();
    }
    if (it->is_object()) {
        return json_string(*it, "slug");
    }
    return {};
}

std::optional<Droplet> droplet_from(const json& d) {
    if (!d.is_object()) {
        return std::nullopt;
    }
    const auto id_it = d.find("id");
    if (id_it == d.end()) {
        return std::nullopt;
    }
    const auto id = json_id(*id_it);
    if (!id) {
        return std::nullopt;
    }
    Droplet out;
    out.id = *id;
    out.name = json_string(d, "name");
    out.region = region_slug(d);
    const auto networks = d.find("networks");
    if (networks != d.end() && networks->is_object()) {
        const auto v4 = networks->find("v4");
        if (v4 != networks->end() && v4->is_array()) {
            for (const auto& net : *v4) {
                if (!net.is_object()) {
                    continue;
                }
                const std::string type = json_string(net, "type");
                const std::string address = json_string(net, "ip_address");
                if (type == "private" && out.private_ipv4.empty()) {
                    out.private_ipv4 = address;
                } else if (type == "public" && out.public_ipv4.empty()) {
                    out.public_ipv4 = address;
                }
            }
        }
    }
    const auto tags = d.find("tags");
    if (tags != d.end() && tags->is_array()) {
        for (const auto& t : *tags) {
            if (t.is_string()) {
                out.tags.push_back(t.get<std::string>());
            }
        }
    }
    return out;
}

ProviderReplied from_classified(const Classified& c) {
    ProviderReplied r;
    r.outcome = c.outcome;
    r.http_status = c.http_status;
    r.retry_after = c.retry_after;
    r.detail = c.detail;
    return r;
}

std::string with_request_id(std::string text, const std::string& request_id) {
    if (!request_id.empty()) {
        text += " (request " + request_id + ")";
    }
    return text;
}

}  // namespace

ApiRequest read_holder_request(std::string_view ip) {
    return get("/v2/reserved_ips/" + percent_encode(ip));
}

ApiRequest keep_warm_request() {
    return get("/v2/reserved_ips?per_page=1");
}

ApiRequest assign_request(std::string_view ip, std::int64_t droplet_id) {
    ApiRequest r;
    r.method = "POST";
    r.path = "/v2/reserved_ips/" + percent_encode(ip) + "/actions";
    r.body = json{{"type", "assign"}, {"droplet_id", droplet_id}}.dump();
    r.headers = {{"Accept", "application/json"}, {"Content-Type", "application/json"}};
    return r;
}

ApiRequest read_action_request(std::string_view ip, std::string_view action_id) {
    return get("/v2/reserved_ips/" + percent_encode(ip) + "/actions/" + percent_encode(action_id));
}

ApiRequest tagged_droplets_request(std::string_view tag, int page) {
    return get("/v2/droplets?tag_name=" + percent_encode(tag) + "&page=" + std::to_string(page) +
               "&per_page=" + std::to_string(kDropletsPerPage));
}

ApiRequest droplet_request(std::int64_t droplet_id) {
    return get("/v2/droplets/" + std::to_string(droplet_id));
}

ApiRequest account_request() {
    return get("/v2/account");
}

std::optional<std::string> find_header(const std::map<std::string, std::string>& headers,
                                       std::string_view name) {
    for (const auto& [key, value] : headers) {
        if (iequals(key, name)) {
            return value;
        }
    }
    return std::nullopt;
}

RateLimit parse_rate_limit(const std::map<std::string, std::string>& headers) {
    RateLimit r;
    r.limit = integer_header(headers, "ratelimit-limit");
    r.remaining = integer_header(headers, "ratelimit-remaining");
    r.reset_epoch = integer_header(headers, "ratelimit-reset");
    r.retry_after_s = integer_header(headers, "retry-after");
    return r;
}

std::optional<Duration> rate_limited_wait(const RateLimit& limit, std::int64_t now_epoch_s) {
    std::optional<std::int64_t> seconds;
    if (limit.retry_after_s) {
        seconds = *limit.retry_after_s;
    } else if (limit.reset_epoch) {
        seconds = *limit.reset_epoch - now_epoch_s;
    }
    if (!seconds) {
        return std::nullopt;
    }
    constexpr std::int64_t cap_s =
        std::chrono::duration_cast<std::chrono::seconds>(kRateLimitCap).count();
    const std::int64_t clamped = std::clamp<std::int64_t>(*seconds, 1, cap_s);
    return std::max<Duration>(kRateLimitFloor, std::chrono::seconds(clamped));
}

ApiError parse_error(const ApiResponse& response) {
    ApiError e;
    if (const auto j = parse_json(response.body); j && j->is_object()) {
        e.id = json_string(*j, "id");
        e.message = clean_snippet(json_string(*j, "message"));
        e.request_id = json_string(*j, "request_id");
    } else {
        e.message = clean_snippet(response.body);
    }
    if (const auto header = find_header(response.headers, "x-request-id");
        header && !header->empty()) {
        e.request_id = *header;
    }
    e.request_id = clean_snippet(e.request_id);
    e.id = clean_snippet(e.id);
    return e;
}

Classified classify_status(const ApiResponse& response, std::int64_t now_epoch_s) {
    Classified c;
    c.http_status = static_cast<int>(response.status);
    if (response.timed_out || response.transport_error || response.status == 0) {
        c.outcome = ProviderOutcome::Transient;
        const std::string why = response.transport_detail.empty()
                                    ? std::string("no response")
                                    : clean_snippet(response.transport_detail);
        c.detail = response.timed_out ? "timed out: " + why : "transport error: " + why;
        // A body may have arrived before the connection dropped; its status is still unsure.
        c.http_status = 0;
        return c;
    }
    const ApiError error = parse_error(response);
    c.request_id = error.request_id;
    const long s = response.status;
    if (s >= 200 && s < 300) {
        c.outcome = ProviderOutcome::Ok;
        c.detail = with_request_id("HTTP " + std::to_string(s), c.request_id);
        return c;
    }
    c.error_id = error.id;
    std::string text = "HTTP " + std::to_string(s);
    if (!error.id.empty()) {
        text += " " + error.id;
    }
    if (!error.message.empty()) {
        text += ": " + error.message;
    }
    c.detail = with_request_id(std::move(text), c.request_id);
    if (s == 401 || s == 403) {
        c.outcome = ProviderOutcome::Unauthorized;
    } else if (s == 404) {
        c.outcome = ProviderOutcome::NotFound;
    } else if (s == 429) {
        c.outcome = ProviderOutcome::RateLimited;
        c.retry_after = rate_limited_wait(parse_rate_limit(response.headers), now_epoch_s);
    } else if (s == 422) {
        // "The floating IP already has a pending event." / "Droplet already has a pending
        // event.": the IP or the droplet is busy, which clears by itself.
        c.outcome = icontains(error.message, "pending event") ? ProviderOutcome::Locked
                                                              : ProviderOutcome::Rejected;
    } else if (s >= 400 && s < 500) {
        c.outcome = ProviderOutcome::Rejected;
    } else {
        c.outcome = ProviderOutcome::Transient;
    }
    return c;
}

std::optional<ReservedIp> parse_reserved_ip(std::string_view body) {
    const auto j = parse_json(body);
    if (!j || !j->is_object()) {
        return std::nullopt;
    }
    auto root = j->find("reserved_ip");
    if (root == j->end()) {
        root = j->find("floating_ip");
    }
    if (root == j->end() || !root->is_object()) {
        return std::nullopt;
    }
    ReservedIp out;
    out.ip = json_string(*root, "ip");
    out.region = region_slug(*root);
    const auto locked = root->find("locked");
    if (locked != root->end()) {
        if (!locked->is_boolean()) {
            return std::nullopt;
        }
        out.locked = locked->get<bool>();
    }
    const auto droplet = root->find("droplet");
    out.holder_shown = droplet != root->end();
    if (droplet != root->end() && !droplet->is_null()) {
        const auto d = droplet_from(*droplet);
        if (!d) {
            return std::nullopt;
        }
        out.holder = d->id;
    }
    return out;
}

std::optional<Action> parse_action(std::string_view body) {
    const auto j = parse_json(body);
    if (!j || !j->is_object()) {
        return std::nullopt;
    }
    const auto root = j->find("action");
    if (root == j->end() || !root->is_object()) {
        return std::nullopt;
    }
    const auto id_it = root->find("id");
    if (id_it == root->end()) {
        return std::nullopt;
    }
    const auto id = json_id(*id_it);
    if (!id) {
        return std::nullopt;
    }
    Action out;
    out.id = *id;
    const std::string status = json_string(*root, "status");
    if (status == "completed") {
        out.status = ActionStatus::Completed;
    } else if (status == "errored") {
        out.status = ActionStatus::Errored;
    }
    return out;
}

std::optional<DropletPage> parse_droplets(std::string_view body, int page) {
    const auto j = parse_json(body);
    if (!j || !j->is_object()) {
        return std::nullopt;
    }
    const auto list = j->find("droplets");
    if (list == j->end() || !list->is_array()) {
        return std::nullopt;
    }
    DropletPage out;
    for (const auto& d : *list) {
        auto droplet = droplet_from(d);
        if (!droplet) {
            return std::nullopt;
        }
        out.droplets.push_back(std::move(*droplet));
    }
    const auto links = j->find("links");
    if (links != j->end() && links->is_object()) {
        const auto pages = links->find("pages");
        if (pages != links->end() && pages->is_object()) {
            const auto next = pages->find("next");
            if (next != pages->end() && next->is_string() &&
                !next->get_ref<const std::string&>().empty()) {
                out.has_next = true;
                return out;
            }
        }
    }
    const auto meta = j->find("meta");
    if (meta != j->end() && meta->is_object()) {
        const auto total = meta->find("total");
        if (total != meta->end() && total->is_number_integer()) {
            out.has_next =
                !out.droplets.empty() &&
                total->get<std::int64_t>() > static_cast<std::int64_t>(page) * kDropletsPerPage;
        }
    }
    return out;
}

std::optional<Droplet> parse_droplet(std::string_view body) {
    const auto j = parse_json(body);
    if (!j || !j->is_object()) {
        return std::nullopt;
    }
    const auto root = j->find("droplet");
    if (root == j->end()) {
        return std::nullopt;
    }
    return droplet_from(*root);
}

ProviderReplied classify(ProviderOp op, const ApiResponse& response, std::int64_t now_epoch_s) {
    const Classified c = classify_status(response, now_epoch_s);
    ProviderReplied r = from_classified(c);
    if (c.outcome != ProviderOutcome::Ok) {
        return r;
    }
    const auto unreadable = [&](const char* what) {
        r.outcome = ProviderOutcome::Transient;
        r.detail = with_request_id("HTTP " + std::to_string(c.http_status) + ": unreadable " +
                                       what + " in the response body",
                                   c.request_id);
        return r;
    };
    switch (op) {
        case ProviderOp::ReadHolder: {
            const auto ip = parse_reserved_ip(response.body);
            if (!ip) {
                return unreadable("reserved IP");
            }
            r.holder = ip->holder ? std::to_string(*ip->holder) : std::string();
            r.holder_known = ip->holder_shown;
            r.locked = ip->locked;
            return r;
        }
        case ProviderOp::Assign:
        case ProviderOp::ReadAction: {
            const auto action = parse_action(response.body);
            if (!action) {
                return unreadable("action");
            }
            r.action_id = std::to_string(action->id);
            r.action_status = action->status;
            return r;
        }
    }
    return r;
}

std::optional<std::int64_t> parse_id(std::string_view text) {
    if (text.empty() || text.front() == '+' || text.front() == '-') {
        return std::nullopt;
    }
    std::int64_t out = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc{} || end != text.data() + text.size() || out <= 0) {
        return std::nullopt;
    }
    return out;
}

}  // namespace failoverd::digitalocean
