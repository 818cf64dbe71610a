// UTF-8 checking shared by the Prometheus and JSON writers: both put untrusted
// bytes (model names, paths, user agents) into formats that must be UTF-8.
#pragma once

#include <cstddef>
#include <string_view>

namespace sluice {

// Length of the well-formed UTF-8 sequence that starts at s[i] (1..4), or, if
// the bytes there are ill-formed, minus the number of bytes to replace with
// one U+FFFD (the "maximal subpart" rule of Unicode 15, section 3.9).
// Requires i < s.size().
int utf8_sequence_at(std::string_view s, size_t i);

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace sluice
