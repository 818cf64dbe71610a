#include "core/json_escape.h"

#include <array>
#include <cstdint>

#include "core/utf8.h"

namespace sluice {

namespace {

// Bytes that cannot be copied as they are: control characters, '"', '\\' and
// everything outside ASCII (which must be checked for well-formed UTF-8).
constexpr std::array<bool, 256> kSpecial = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
  return t;
}();

}  // namespace

void json_escape_append(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < s.size()) {
    // Copy the longest run that needs no attention in one append.
    size_t j = i;
    while (j < s.size() && !kSpecial[static_cast<uint8_t>(s[j])]) ++j;
    out.append(s.data() + i, j - i);
    i = j;
    if (i == s.size()) break;

    const auto c = static_cast<uint8_t>(s[i]);
    if (c >= 0x80) {
      const int n = utf8_sequence_at(s, i);
      if (n > 0) {
        out.append(s.data() + i, static_cast<size_t>(n));
        i += static_cast<size_t>(n);
      } else {
        out += kReplacementChar;
        i += static_cast<size_t>(-n);
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(esc, sizeof esc);
      }
    }
    ++i;
  }
}

}  // namespace sluice
