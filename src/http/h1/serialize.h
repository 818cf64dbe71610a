// Writing HTTP/1.1 heads and chunk framing into a caller-owned string.
// The caller is responsible for the values being valid (no CR/LF).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::http::h1 {

// "HTTP/1.1 200 OK\r\n"; an unknown status gets an empty reason phrase.
void append_status_line(std::string& out, int status);
// "name: value\r\n"
void append_header(std::string& out, std::string_view name, std::string_view value);
// "%zx\r\n": the size line of a chunk of n bytes (n > 0; use kLastChunk to end).
void append_chunk_size(std::string& out, size_t n);

inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace sluice::http::h1
