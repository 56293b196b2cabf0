// Splits an INI file into numbered lines: sections and key = value entries. Knows no keys.
// Only a line whose first non-blank character is '#' or ';' is a comment, so values may hold
// '#' (URL fragments, shell commands) and ';'.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace failoverd {

struct ConfigLine {
    enum class Kind { Section, Entry, Malformed };
    Kind kind = Kind::Malformed;
    int line = 0;
    std::string name;   // section name without brackets, the key, or (Malformed) the text
    std::string value;  // the value, trimmed; for Malformed, what is wrong
};

std::vector<ConfigLine> read_config_lines(std::string_view text);

}  // namespace failoverd
