// Text from outside the daemon (hook and check output, names in a peer's advert, a config
// file's bytes) made safe to echo in a log line or a status field: what a terminal or a log
// viewer could act on is shown escaped, never passed on raw.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace failoverd {

inline constexpr std::size_t kNoEscapeLimit = static_cast<std::size_t>(-1);

// Printable ASCII and valid, printable UTF-8 stay as they are. A backslash becomes "\\"; a
// control byte (0x00-0x1f, 0x7f) and every byte that is not part of valid UTF-8 (stray
// continuation bytes, overlong forms, surrogates, code points past U+10FFFF, a cut-off
// sequence) becomes "\xNN"; C1 controls (U+0080-U+009F) and the code points that reorder or
// break lines in a viewer (U+2028, U+2029, U+202A-U+202E, U+2066-U+2069) become "\uNNNN".
// Lower-case hex. The mapping is one-to-one, so two different inputs never look alike.
// With a `limit`, the output stops once it reaches that many bytes and ends in "...", so a
// huge input costs a bounded line.
std::string escape_text(std::string_view text, std::size_t limit = kNoEscapeLimit);

// True when escape_text(text) == text.
bool is_plain_text(std::string_view text);

}  // namespace failoverd
