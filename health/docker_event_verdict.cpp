// Decoding and judging Docker events. No I/O and no clock in this file.
#include "health/docker_event_verdict.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <utility>

namespace failoverd::health {

namespace {

constexpr std::size_t kMaxChunkLineBytes = 1024;

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

std::string percent_encode(std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
            out += ch;
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        }
    }
    return out;
}

// Printable and short, for a reason line: garbage from a broken engine is data.
std::string excerpt(std::string_view s) {
    std::string out;
    for (const char ch : s.substr(0, 40)) {
        const auto c = static_cast<unsigned char>(ch);
        out += (c >= 0x20 && c < 0x7f) ? ch : '?';
    }
    if (s.size() > 40) {
        out += "...";
    }
    return out;
}

}  // namespace

std::string_view DockerEvent::base_action() const {
    std::string_view a = action;
    const auto colon = a.find(':');
    return colon == std::string_view::npos ? a : a.substr(0, colon);
}

std::variant<DockerEvent, std::string> parse_docker_event(std::string_view line) {
    const auto doc = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object()) {
        return std::string("engine sent a line that is not a JSON event: '") + excerpt(line) + "'";
    }
    DockerEvent ev;
    const auto str = [](const nlohmann::json& obj, const char* key) {
        const auto it = obj.find(key);
        return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    ev.type = str(doc, "Type");
    ev.action = str(doc, "Action");
    if (ev.action.empty()) {
        ev.action = str(doc, "status");  // the pre-1.22 field, still sent
    }
    const auto actor = doc.find("Actor");
    if (actor != doc.end() && actor->is_object()) {
        ev.id = str(*actor, "ID");
        const auto attrs = actor->find("Attributes");
        if (attrs != actor->end() && attrs->is_object()) {
            for (const auto& [key, value] : attrs->items()) {
                if (value.is_string()) {
                    ev.attributes.emplace(key, value.get<std::string>());
                }
            }
        }
    }
    if (ev.id.empty()) {
        ev.id = str(doc, "id");
    }
    if (const auto it = ev.attributes.find("name"); it != ev.attributes.end()) {
        ev.name = it->second;
        if (!ev.name.empty() && ev.name.front() == '/') {
            ev.name.erase(0, 1);
        }
    }
    if (ev.action.empty()) {
        return std::string("engine sent an event without an action: '") + excerpt(line) + "'";
    }
    return ev;
}

bool is_watched_action(std::string_view base_action) {
    return std::any_of(std::begin(kWatchedDockerActions), std::end(kWatchedDockerActions),
                       [&](const char* a) { return base_action == a; });
}

bool event_signals_failure(const DockerEvent& event) {
    const std::string_view base = event.base_action();
    if (base == "health_status") {
        return trim(std::string_view(event.action).substr(base.size() + 1)) == "unhealthy";
    }
    return base == "die" || base == "kill" || base == "stop" || base == "oom" ||
           base == "destroy" || base == "pause";
}

bool event_concerns(const DockerEvent& event, const DockerSelector& selector,
                    const std::set<std::string>& known_names) {
    if (!event.type.empty() && event.type != "container") {
        return false;
    }
    if (!is_watched_action(event.base_action())) {
        return false;
    }
    if (event.name.empty() || known_names.count(event.name) != 0) {
        return true;
    }
    DockerContainer c;
    c.name = event.name;
    c.labels = event.attributes;  // labels come flattened into the attributes
    return selector.matches(c);
}

std::string short_duration(Duration d) {
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    if (d > Duration::zero() && d % seconds(1) == Duration::zero()) {
        return std::to_string(std::chrono::duration_cast<seconds>(d).count()) + " s";
    }
    if (d > Duration::zero() && d < seconds(1) && d % milliseconds(1) == Duration::zero()) {
        return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
    }
    return format_duration(d);
}

std::string docker_events_target(std::string_view api_version) {
    nlohmann::json filters;
    filters["type"] = {"container"};
    filters["event"] = nlohmann::json::array();
    for (const char* a : kWatchedDockerActions) {
        filters["event"].push_back(a);
    }
    return "/" + std::string(api_version) + "/events?filters=" + percent_encode(filters.dump());
}

std::string docker_events_request(std::string_view target) {
    std::string r = "GET ";
    r += target;
    r += " HTTP/1.1\r\nHost: docker\r\nUser-Agent: failoverd\r\nAccept: application/json\r\n\r\n";
    return r;
}

bool DockerEventDecoder::fail(std::string reason) {
    state_ = State::Failed;
    error_ = std::move(reason);
    return false;
}

bool DockerEventDecoder::feed(std::string_view bytes, std::vector<DockerEvent>& out) {
    if (state_ == State::Failed) {
        return false;
    }
    if (state_ == State::Ended) {
        return bytes.empty() || fail("engine sent data after the end of the event stream");
    }
    if (state_ == State::Head) {
        const std::size_t before = head_.size();
        head_.append(bytes);
        const auto end = head_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
        if (end == std::string::npos) {
            if (head_.size() > kMaxResponseHeadBytes) {
                return fail("engine sent a response head over " +
                            std::to_string(kMaxResponseHeadBytes) + " bytes");
            }
            return true;
        }
        const std::size_t body_start = end + 4 - before;  // offset in `bytes`
        head_.resize(end + 4);
        if (!parse_head()) {
            return false;
        }
        state_ = State::Body;
        bytes.remove_prefix(body_start);
    }
    return body(bytes, out);
}

bool DockerEventDecoder::parse_head() {
    std::string_view head(head_);
    const auto eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, eol);
    // "HTTP/1.1 200 OK"
    if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12 || status_line[8] != ' ') {
        return fail("engine sent no HTTP response on the event stream: '" + excerpt(status_line) +
                    "'");
    }
    int status = 0;
    const auto code = status_line.substr(9, 3);
    if (std::from_chars(code.data(), code.data() + code.size(), status).ec != std::errc() ||
        status < 100) {
        return fail("engine sent a bad HTTP status line: '" + excerpt(status_line) + "'");
    }
    status_ = status;
    if (status != 200) {
        return fail("engine returned HTTP " + std::to_string(status));
    }
    framing_ = Framing::UntilClose;
    head.remove_prefix(eol + 2);
    while (!head.empty()) {
        const auto next = head.find("\r\n");
        const std::string_view line = head.substr(0, next);
        head.remove_prefix(next == std::string_view::npos ? head.size() : next + 2);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            continue;
        }
        const std::string name = lower(trim(line.substr(0, colon)));
        const std::string value = lower(trim(line.substr(colon + 1)));
        if (name == "transfer-encoding" && value.find("chunked") != std::string::npos) {
            framing_ = Framing::Chunked;
        } else if (name == "content-length" && framing_ != Framing::Chunked) {
            std::uint64_t n = 0;
            if (std::from_chars(value.data(), value.data() + value.size(), n).ec != std::errc()) {
                return fail("engine sent a bad Content-Length on the event stream");
            }
            framing_ = Framing::Length;
            remaining_ = n;
        }
    }
    if (framing_ == Framing::Length && remaining_ == 0) {
        state_ = State::Ended;
    }
    return true;
}

bool DockerEventDecoder::body(std::string_view bytes, std::vector<DockerEvent>& out) {
    if (framing_ == Framing::UntilClose) {
        return lines(bytes, out);
    }
    if (framing_ == Framing::Length) {
        if (bytes.size() > remaining_) {
            return fail("engine sent more than its Content-Length on the event stream");
        }
        remaining_ -= bytes.size();
        if (!lines(bytes, out)) {
            return false;
        }
        if (remaining_ == 0) {
            state_ = State::Ended;
        }
        return true;
    }
    while (!bytes.empty()) {
        switch (chunk_state_) {
            case ChunkState::Size:
            case ChunkState::Trailer: {
                const auto nl = bytes.find('\n');
                chunk_line_.append(bytes.substr(0, nl));
                bytes.remove_prefix(nl == std::string_view::npos ? bytes.size() : nl + 1);
                if (chunk_line_.size() > kMaxChunkLineBytes) {
                    return fail("engine sent a bad chunk on the event stream");
                }
                if (nl == std::string_view::npos) {
                    return true;
                }
                std::string_view line = trim(chunk_line_);
                if (chunk_state_ == ChunkState::Trailer) {
                    if (line.empty()) {
                        state_ = State::Ended;
                        chunk_line_.clear();
                        return bytes.empty() ||
                               fail("engine sent data after the end of the event stream");
                    }
                    chunk_line_.clear();
                    break;
                }
                line = line.substr(0, line.find(';'));
                std::uint64_t size = 0;
                const auto r = std::from_chars(line.data(), line.data() + line.size(), size, 16);
                if (line.empty() || r.ec != std::errc() || r.ptr != line.data() + line.size()) {
                    return fail("engine sent a bad chunk on the event stream: '" +
                                excerpt(chunk_line_) + "'");
                }
                chunk_line_.clear();
                remaining_ = size;
                chunk_state_ = size == 0 ? ChunkState::Trailer : ChunkState::Data;
                break;
            }
            case ChunkState::Data: {
                const std::size_t n =
                    static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, bytes.size()));
                if (!lines(bytes.substr(0, n), out)) {
                    return false;
                }
                bytes.remove_prefix(n);
                remaining_ -= n;
                if (remaining_ == 0) {
                    chunk_state_ = ChunkState::DataEnd;
                }
                break;
            }
            case ChunkState::DataEnd: {
                // The CRLF after the data; a bare LF is tolerated.
                const char c = bytes.front();
                bytes.remove_prefix(1);
                if (c == '\n') {
                    chunk_state_ = ChunkState::Size;
                } else if (c != '\r') {
                    return fail("engine sent a bad chunk on the event stream");
                }
                break;
            }
        }
    }
    return true;
}

bool DockerEventDecoder::lines(std::string_view bytes, std::vector<DockerEvent>& out) {
    while (!bytes.empty()) {
        const auto nl = bytes.find('\n');
        if (nl == std::string_view::npos) {
            if (line_.size() + bytes.size() > kMaxEventLineBytes) {
                return fail("engine sent over " + std::to_string(kMaxEventLineBytes / 1024) +
                            " KiB without a newline on the event stream");
            }
            line_.append(bytes);
            return true;
        }
        line_.append(bytes.substr(0, nl));
        bytes.remove_prefix(nl + 1);
        std::string line = std::move(line_);
        line_.clear();
        if (trim(line).empty()) {
            continue;
        }
        auto parsed = parse_docker_event(line);
        if (auto* error = std::get_if<std::string>(&parsed)) {
            return fail(std::move(*error));
        }
        ++events_;
        out.push_back(std::move(std::get<DockerEvent>(parsed)));
    }
    return true;
}

std::string DockerEventDecoder::closed() {
    switch (state_) {
        case State::Failed:
            return error_;
        case State::Head:
            return head_.empty() ? "engine closed the event stream without answering"
                                 : "engine closed the event stream mid-header";
        case State::Body:
            if (!line_.empty() ||
                (framing_ == Framing::Chunked && chunk_state_ != ChunkState::Size)) {
                return "engine closed the event stream mid-event";
            }
            return "engine closed the event stream";
        case State::Ended:
            return "engine ended the event stream";
    }
    return "engine closed the event stream";
}

}  // namespace failoverd::health
