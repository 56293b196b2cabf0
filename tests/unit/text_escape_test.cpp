#include "daemon/core/text_escape.hpp"

#include <doctest/doctest.h>

#include <string>

using failoverd::escape_text;
using failoverd::is_plain_text;
using namespace std::string_literals;

TEST_CASE("escape_text: printable ASCII and valid UTF-8 pass unchanged") {
    CHECK(escape_text("") == "");
    CHECK(escape_text("node-1.example_2 {x} ~!@#$%^&*()") == "node-1.example_2 {x} ~!@#$%^&*()");
    CHECK(escape_text("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") ==
          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    CHECK(is_plain_text("web-2"));
    CHECK(is_plain_text("caf\xc3\xa9"));
}

TEST_CASE("escape_text: control bytes become \\xNN, a backslash is doubled") {
    CHECK(escape_text("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m");
    CHECK(escape_text("a\tb\r\nc") == "a\\x09b\\x0d\\x0ac");
    CHECK(escape_text("nul\0end"s) == "nul\\x00end");
    CHECK(escape_text("del\x7f") == "del\\x7f");
    CHECK(escape_text("C:\\path") == "C:\\\\path");
    CHECK_FALSE(is_plain_text("a\x1b"));
    CHECK_FALSE(is_plain_text("a\\b"));
}

TEST_CASE("escape_text: every byte of invalid UTF-8 becomes \\xNN") {
    CHECK(escape_text("\xff\xfe") == "\\xff\\xfe");
    CHECK(escape_text("\x80x") == "\\x80x");                           // stray continuation byte
    CHECK(escape_text("\xc0\xaf") == "\\xc0\\xaf");                    // overlong '/'
    CHECK(escape_text("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");           // overlong, three bytes
    CHECK(escape_text("\xed\xa0\x80") == "\\xed\\xa0\\x80");           // a surrogate
    CHECK(escape_text("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
    CHECK(escape_text("\xe2\x82") == "\\xe2\\x82");                    // cut off at the end
    CHECK(escape_text("\xe2\x82x") == "\\xe2\\x82x");                  // cut off by ASCII
    CHECK(escape_text("\xc3\xa9\xff\xc3\xa9") == "\xc3\xa9\\xff\xc3\xa9");
    CHECK_FALSE(is_plain_text("\xff"));
}

TEST_CASE("escape_text: C1 controls and bidirectional overrides become \\uNNNN") {
    CHECK(escape_text("\xc2\x9b"
                      "31m") == "\\u009b31m");  // CSI
    CHECK(escape_text("\xc2\x85") == "\\u0085");
    CHECK(escape_text("abc\xe2\x80\xae"
                      "def") == "abc\\u202edef");
    CHECK(escape_text("\xe2\x80\xa8") == "\\u2028");
    CHECK(escape_text("\xe2\x81\xa6") == "\\u2066");
    CHECK(escape_text("\xc2\xa0") == "\xc2\xa0");  // a no-break space is printable
}

TEST_CASE("escape_text: different inputs never look alike") {
    CHECK(escape_text("\x1b") != escape_text("\\x1b"));
    CHECK(escape_text("\\x1b") == "\\\\x1b");
    CHECK(escape_text("\xc2\x85") != escape_text("\\u0085"));
}
