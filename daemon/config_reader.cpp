#include "daemon/config_reader.hpp"

namespace failoverd {

namespace {

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = s.find_last_not_of(" \t");
    return s.substr(first, last - first + 1);
}

// The line without its trailing comment, with "\#" and "\;" made literal.
std::string strip_comment(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        const char c = raw[i];
        if (c == '\\' && i + 1 < raw.size() && (raw[i + 1] == '#' || raw[i + 1] == ';')) {
            out += raw[++i];
            continue;
        }
        if ((c == '#' || c == ';') && i > 0 && (raw[i - 1] == ' ' || raw[i - 1] == '\t')) {
            break;
        }
        out += c;
    }
    return out;
}

std::string excerpt(std::string_view text) {
    return std::string(text.substr(0, 40)) + (text.size() > 40 ? "..." : "");
}

ConfigLine classify(std::string_view text, int number) {
    ConfigLine out;
    out.line = number;
    out.name = excerpt(text);
    if (text.front() == '[') {
        if (text.back() != ']') {
            out.value = "a section header must end with ']'";
            return out;
        }
        if (text.find('\0') != std::string_view::npos) {
            out.value = "a NUL byte in a section header";
            return out;
        }
        out.kind = ConfigLine::Kind::Section;
        out.name = std::string(trim(text.substr(1, text.size() - 2)));
        return out;
    }
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) {
        out.value = "expected 'key = value'";
        return out;
    }
    const auto key = trim(text.substr(0, eq));
    if (key.empty()) {
        out.value = "missing key before '='";
        return out;
    }
    if (key.find('\0') != std::string_view::npos) {
        out.value = "a NUL byte in a key";
        return out;
    }
    // A NUL in the value is reported by the loader, under the key's name.
    out.kind = ConfigLine::Kind::Entry;
    out.name = std::string(key);
    out.value = std::string(trim(text.substr(eq + 1)));
    return out;
}

}  // namespace

std::vector<ConfigLine> read_config_lines(std::string_view text) {
    if (text.substr(0, 3) == "\xEF\xBB\xBF") {
        text.remove_prefix(3);
    }
    std::vector<ConfigLine> lines;
    int number = 0;
    while (!text.empty()) {
        ++number;
        const auto end = text.find('\n');
        std::string_view raw = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (!raw.empty() && raw.back() == '\r') {
            raw.remove_suffix(1);
        }
        if (raw.size() > kMaxConfigLine) {
            ConfigLine too_long;
            too_long.line = number;
            too_long.name = excerpt(trim(raw));
            too_long.value = "the line is " + std::to_string(raw.size()) + " bytes long, over " +
                             std::to_string(kMaxConfigLine);
            lines.push_back(std::move(too_long));
            continue;
        }
        const auto first = trim(raw);
        if (first.empty() || first.front() == '#' || first.front() == ';') {
            continue;
        }
        const std::string stripped = strip_comment(raw);
        const auto line = trim(stripped);
        if (line.empty()) {
            continue;
        }
        lines.push_back(classify(line, number));
    }
    return lines;
}

}  // namespace failoverd
