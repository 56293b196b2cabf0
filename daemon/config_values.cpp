// The value parsers of the config file (durations, endpoints, command lines) and the model's
// small methods; the loader itself is in config.cpp.
#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <limits>

#include "daemon/config.hpp"

namespace failoverd {

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Host names are checked loosely (the resolver has the last word), but a dotted-number host
// must be a real IPv4 address so "10.0.0.300" is caught here.
bool valid_host(const std::string& host) {
    if (host.empty() || host.size() > 253 || host.front() == '.' || host.front() == '-') {
        return false;
    }
    bool numeric = true;
    for (const char c : host) {
        if (!is_digit(c) && !is_alpha(c) && c != '.' && c != '-' && c != '_') {
            return false;
        }
        numeric = numeric && (is_digit(c) || c == '.');
    }
    if (numeric) {
        in_addr addr{};
        return inet_pton(AF_INET, host.c_str(), &addr) == 1;
    }
    return true;
}

std::optional<std::uint16_t> parse_port(const std::string& text) {
    if (text.empty() || text.size() > 5) {
        return std::nullopt;
    }
    unsigned value = 0;
    for (const char c : text) {
        if (!is_digit(c)) {
            return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

}  // namespace

std::string ConfigError::to_string() const {
    std::string out = escape_text(file, 1024);
    if (line > 0) {
        out += ":" + std::to_string(line);
    }
    out += ": ";
    if (!key.empty()) {
        out += escape_text(key, 80) + ": ";
    }
    out += escape_text(message, 1024);
    return out;
}

namespace {

std::string join_errors(const std::vector<ConfigError>& errors) {
    std::string out;
    for (const auto& e : errors) {
        if (!out.empty()) {
            out += '\n';
        }
        out += e.to_string();
    }
    return out;
}

}  // namespace

ConfigErrors::ConfigErrors(std::vector<ConfigError> errors, std::size_t total)
    : std::runtime_error(join_errors(errors)),
      errors_(std::move(errors)),
      total_(std::max(total, errors_.size())) {}

std::vector<std::string> ConfigErrors::report(std::size_t limit) const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < errors_.size() && i < limit; ++i) {
        out.push_back(errors_[i].to_string());
    }
    if (total_ > out.size()) {
        const std::size_t more = total_ - out.size();
        out.push_back("... and " + std::to_string(more) + " more error" + (more == 1 ? "" : "s"));
    }
    return out;
}

std::string Endpoint::to_string() const {
    const std::string h = host.find(':') == std::string::npos ? host : "[" + host + "]";
    return h + ":" + std::to_string(port);
}

std::string to_string(ProviderType t) {
    switch (t) {
        case ProviderType::None:
            return "none";
        case ProviderType::DigitalOcean:
            return "digitalocean";
        case ProviderType::Exec:
            return "exec";
    }
    return "unknown";
}

std::string to_string(CheckType t) {
    switch (t) {
        case CheckType::Docker:
            return "docker";
        case CheckType::Http:
            return "http";
        case CheckType::Tcp:
            return "tcp";
        case CheckType::Exec:
            return "exec";
    }
    return "unknown";
}

std::optional<Duration> parse_duration(const std::string& text) {
    // One or more "NUMBER UNIT" parts ("1m30s"); a bare number only as the whole text.
    constexpr std::int64_t kNsPerSecond = 1'000'000'000;
    const std::size_t n = text.size();
    if (n == 0) {
        return std::nullopt;
    }
    __int128 total = 0;
    std::size_t i = 0;
    while (i < n) {
        const std::size_t start = i;
        std::int64_t whole = 0;
        int whole_digits = 0;
        for (; i < n && is_digit(text[i]); ++i) {
            if (++whole_digits > 12) {
                return std::nullopt;
            }
            whole = whole * 10 + (text[i] - '0');
        }
        if (whole_digits == 0) {
            return std::nullopt;
        }
        std::int64_t fraction = 0;
        std::int64_t fraction_scale = 1;
        if (i < n && text[i] == '.') {
            ++i;
            int fraction_digits = 0;
            for (; i < n && is_digit(text[i]); ++i) {
                if (++fraction_digits > 9) {
                    return std::nullopt;
                }
                fraction = fraction * 10 + (text[i] - '0');
                fraction_scale *= 10;
            }
            if (fraction_digits == 0) {
                return std::nullopt;
            }
        }
        const std::size_t unit_start = i;
        while (i < n && is_alpha(text[i])) {
            ++i;
        }
        const std::string unit = text.substr(unit_start, i - unit_start);
        std::int64_t scale = 0;
        if (unit.empty()) {
            if (start != 0 || i != n) {
                return std::nullopt;
            }
            scale = kNsPerSecond;
        } else if (unit == "ms") {
            scale = kNsPerSecond / 1000;
        } else if (unit == "s") {
            scale = kNsPerSecond;
        } else if (unit == "m") {
            scale = 60 * kNsPerSecond;
        } else if (unit == "h") {
            scale = 3600 * kNsPerSecond;
        } else {
            return std::nullopt;
        }
        total += static_cast<__int128>(whole) * scale +
                 static_cast<__int128>(fraction) * scale / fraction_scale;
        if (total > std::numeric_limits<std::int64_t>::max()) {
            return std::nullopt;
        }
    }
    return Duration{static_cast<std::int64_t>(total)};
}

std::optional<Endpoint> parse_endpoint(const std::string& text) {
    Endpoint out;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        out.host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        in6_addr addr{};
        if (inet_pton(AF_INET6, out.host.c_str(), &addr) != 1) {
            return std::nullopt;
        }
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) {
            return std::nullopt;
        }
        out.host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (!valid_host(out.host)) {
            return std::nullopt;
        }
    }
    const auto parsed = parse_port(port);
    if (!parsed) {
        return std::nullopt;
    }
    out.port = *parsed;
    return out;
}

namespace {

struct Word {
    std::string text;
    bool quoted = false;  // any part of it was quoted or escaped
};

std::optional<std::vector<Word>> split_words(const std::string& text) {
    std::vector<Word> words;
    Word word;
    bool in_word = false;
    const std::size_t n = text.size();
    for (std::size_t i = 0; i < n; ++i) {
        const char c = text[i];
        if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) {
                words.push_back(std::move(word));
                word = Word{};
                in_word = false;
            }
            continue;
        }
        in_word = true;
        if (c == '\'') {
            const auto close = text.find('\'', i + 1);
            if (close == std::string::npos) {
                return std::nullopt;
            }
            word.text += text.substr(i + 1, close - i - 1);
            word.quoted = true;
            i = close;
        } else if (c == '"') {
            // As in sh, a backslash inside double quotes escapes only " \ $ and `.
            for (++i; i < n && text[i] != '"'; ++i) {
                if (text[i] == '\\' && i + 1 < n && std::strchr("\"\\$`", text[i + 1]) != nullptr) {
                    ++i;
                }
                word.text += text[i];
            }
            if (i >= n) {
                return std::nullopt;
            }
            word.quoted = true;
        } else if (c == '\\') {
            if (i + 1 >= n) {
                return std::nullopt;
            }
            word.text += text[++i];
            word.quoted = true;
        } else {
            word.text += c;
        }
    }
    if (in_word) {
        words.push_back(std::move(word));
    }
    return words;
}

bool is_shell_operator(const std::string& w) {
    // No ";": a " ;" starts a comment, and "\;" is find's argument, not a separator.
    static const char* const kExact[] = {"|", "||", "&", "&&", "|&"};
    for (const char* op : kExact) {
        if (w == op) {
            return true;
        }
    }
    // Redirections with an optional descriptor ("2>&1", ">>log", "<in", "&>/dev/null") and
    // substitutions.
    std::size_t i = 0;
    while (i < w.size() && is_digit(w[i])) {
        ++i;
    }
    if (i < w.size() && (w[i] == '>' || w[i] == '<')) {
        return true;
    }
    return w.rfind("&>", 0) == 0 || w.rfind("$(", 0) == 0 || w.rfind("`", 0) == 0 ||
           w.find('|') != std::string::npos;
}

}  // namespace

std::optional<std::vector<std::string>> split_command(const std::string& text) {
    const auto words = split_words(text);
    if (!words) {
        return std::nullopt;
    }
    std::vector<std::string> argv;
    argv.reserve(words->size());
    for (const auto& w : *words) {
        argv.push_back(w.text);
    }
    return argv;
}

std::optional<std::string> shell_operator_word(const std::string& text) {
    const auto words = split_words(text);
    if (!words) {
        return std::nullopt;
    }
    for (const auto& w : *words) {
        if (!w.quoted && is_shell_operator(w.text)) {
            return w.text;
        }
    }
    return std::nullopt;
}

const CheckConfig* Config::find_check(const std::string& name) const {
    for (const auto& c : checks) {
        if (c.name == name) {
            return &c;
        }
    }
    return nullptr;
}

const InstanceConfig* Config::find_instance(const std::string& name) const {
    for (const auto& i : instances) {
        if (i.name == name) {
            return &i;
        }
    }
    return nullptr;
}

namespace {

std::string count(std::size_t n, const std::string& noun) {
    return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

}  // namespace

std::string Config::summary() const {
    std::string out = path + ": OK: node " + node.name + ", " + count(cluster.peers.size(), "peer");
    if (!cluster.peers_from_tag.empty()) {
        out += " + tag " + cluster.peers_from_tag;
    }
    out += ", " + count(instances.size(), "instance");
    if (!instances.empty()) {
        std::string ips;
        for (const auto& i : instances) {
            ips += (ips.empty() ? "" : ", ") + i.reserved_ip;
        }
        out += " (" + ips + ")";
    }
    out += ", " + count(checks.size(), "check") + ", provider " + to_string(provider.type);
    return out;
}

}  // namespace failoverd
