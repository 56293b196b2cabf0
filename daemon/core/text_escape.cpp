#include "daemon/core/text_escape.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace failoverd {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence of two or more bytes at the start of `s`, and its code
// point; 0 when `s` does not start with one (RFC 3629 table 4).
std::size_t utf8_sequence(std::string_view s, std::uint32_t& code_point) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char lead = byte(0);
    std::size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) {
        length = 2;
        code_point = lead & 0x1f;
    } else if (lead >= 0xe0 && lead <= 0xef) {
        length = 3;
        code_point = lead & 0x0f;
        low = lead == 0xe0 ? 0xa0 : 0x80;   // no overlong forms
        high = lead == 0xed ? 0x9f : 0xbf;  // no surrogates
    } else if (lead >= 0xf0 && lead <= 0xf4) {
        length = 4;
        code_point = lead & 0x07;
        low = lead == 0xf0 ? 0x90 : 0x80;   // no overlong forms
        high = lead == 0xf4 ? 0x8f : 0xbf;  // nothing past U+10FFFF
    } else {
        return 0;
    }
    if (s.size() < length) {
        return 0;
    }
    for (std::size_t i = 1; i < length; ++i) {
        const unsigned char b = byte(i);
        if (b < (i == 1 ? low : 0x80) || b > (i == 1 ? high : 0xbf)) {
            return 0;
        }
        code_point = (code_point << 6) | (b & 0x3f);
    }
    return length;
}

bool shown_escaped(std::uint32_t code_point) {
    return (code_point >= 0x80 && code_point <= 0x9f) || code_point == 0x2028 ||
           code_point == 0x2029 || (code_point >= 0x202a && code_point <= 0x202e) ||
           (code_point >= 0x2066 && code_point <= 0x2069);
}

void append_byte_escape(std::string& out, unsigned char b) {
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 0x0f];
}

void append_code_point_escape(std::string& out, std::uint32_t code_point) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) {
        out += kHex[(code_point >> shift) & 0x0f];
    }
}

}  // namespace

std::string escape_text(std::string_view text, std::size_t limit) {
    std::string out;
    out.reserve(std::min(text.size(), limit) + 3);
    while (!text.empty()) {
        if (out.size() >= limit) {
            out += "...";
            break;
        }
        const auto b = static_cast<unsigned char>(text.front());
        if (b >= 0x20 && b < 0x7f) {
            if (b == '\\') {
                out += '\\';
            }
            out += static_cast<char>(b);
            text.remove_prefix(1);
            continue;
        }
        std::uint32_t code_point = 0;
        const std::size_t length = b >= 0x80 ? utf8_sequence(text, code_point) : 0;
        if (length == 0) {
            append_byte_escape(out, b);
            text.remove_prefix(1);
        } else {
            if (shown_escaped(code_point)) {
                append_code_point_escape(out, code_point);
            } else {
                out.append(text.substr(0, length));
            }
            text.remove_prefix(length);
        }
    }
    return out;
}

bool is_plain_text(std::string_view text) {
    for (const char c : text) {
        const auto b = static_cast<unsigned char>(c);
        if (b < 0x20 || b >= 0x7f || b == '\\') {
            return escape_text(text) == text;
        }
    }
    return true;
}

}  // namespace failoverd
