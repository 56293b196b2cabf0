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

ConfigLine classify(std::string_view text, int number) {
    ConfigLine out;
    out.line = number;
    out.name = std::string(text.substr(0, 40)) + (text.size() > 40 ? "..." : "");
    if (text.front() == '[') {
        if (text.back() != ']') {
            out.value = "a section header must end with ']'";
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
        const auto line = trim(raw);
        if (line.empty() || line.front() == '#' || line.front() == ';') {
            continue;
        }
        lines.push_back(classify(line, number));
    }
    return lines;
}

}  // namespace failoverd
