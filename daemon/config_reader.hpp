// Splits an INI file into numbered lines: sections and key = value entries. Knows no keys.
// A line whose first non-blank character is '#' or ';' is a comment, and so is the rest of a
// line from a '#' or ';' that follows a space or a tab ("label = a=b  # our stack" is "a=b").
// "\#" and "\;" stand for a literal '#' and ';' anywhere, so a value can still hold " #".
// A '#' or ';' right after another character belongs to the value (URL fragments, "a;b").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace failoverd {

// Longer lines are refused whole: every later step (messages, regexes, edit distances) then
// works on bounded text.
inline constexpr std::size_t kMaxConfigLine = 4096;

struct ConfigLine {
    enum class Kind { Section, Entry, Malformed };
    Kind kind = Kind::Malformed;
    int line = 0;
    std::string name;   // section name without brackets, the key, or (Malformed) the text
    std::string value;  // the value, trimmed; for Malformed, what is wrong
};

std::vector<ConfigLine> read_config_lines(std::string_view text);

}  // namespace failoverd
