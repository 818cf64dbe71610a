#pragma once

#include <string>
#include <string_view>

namespace sluice {

// Appends `s` as the inside of a JSON string (RFC 8259), without the quotes.
// `"` and `\` are escaped, control characters become \b \f \n \r \t or
// \u00XX, and ill-formed UTF-8 (the bytes come from clients and upstreams)
// is replaced by U+FFFD, one per maximal ill-formed subpart. Valid UTF-8 is
// copied as is.
void json_escape_append(std::string& out, std::string_view s);

}  // namespace sluice
