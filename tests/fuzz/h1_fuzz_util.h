// Shared helpers for the HTTP/1 fuzz targets (header-only so the fuzz CMake
// needs no change).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/h1/parser.h"
#include "http/message.h"

namespace sluice::fuzz {

inline void check(bool ok) {
  if (!ok) __builtin_trap();
}

inline bool inside(std::string_view outer, std::string_view v) {
  if (v.empty()) return true;
  auto o = reinterpret_cast<uintptr_t>(outer.data());
  auto p = reinterpret_cast<uintptr_t>(v.data());
  return p >= o && p + v.size() <= o + outer.size();
}

inline bool same_headers(const std::vector<http::Header>& a, const std::vector<http::Header>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].value != b[i].value) return false;
  }
  return true;
}

inline bool same_result(const http::h1::ParseResult& a, const http::h1::ParseResult& b) {
  return a.state == b.state && a.consumed == b.consumed && a.error_status == b.error_status &&
         a.error == b.error;
}

// An incomplete result consumed nothing and stays within the head limit.
inline void check_incomplete(std::string_view buf, const http::h1::ParseResult& r, const http::h1::Limits& lim) {
  check(r.consumed == 0 && r.error_status == 0 && buf.size() <= lim.max_header_bytes);
}

// The head of a complete result: inside the buffer and the limit, ending in
// the empty line.
inline std::string_view complete_head(std::string_view buf, const http::h1::ParseResult& r,
                                      const http::h1::Limits& lim) {
  check(r.consumed > 0 && r.consumed <= buf.size() && r.consumed <= lim.max_header_bytes);
  std::string_view head = buf.substr(0, r.consumed);
  check(head.size() >= 4 && head.substr(head.size() - 4) == "\r\n\r\n");
  return head;
}

// The prefix lengths worth checking: all of them for small inputs, a spread
// of them for large ones (checking every prefix is quadratic).
template <class F>
void for_each_prefix(size_t size, F f) {
  if (size <= 512) {
    for (size_t n = 0; n < size; ++n) f(n);
    return;
  }
  for (size_t n = 0; n < 32; ++n) f(n);
  for (size_t k = 1; k < 64; ++k) f(size * k / 64);
  for (size_t n = size - 32; n < size; ++n) f(n);
}

// Parsing every prefix of `buf` must agree with parsing the whole of it
// (`whole_result`, `whole`): incomplete until the whole result is decided,
// then the same result and the same headers. `parse(prefix, head)` parses one.
template <class Head, class Parse>
void check_prefixes_agree(std::string_view buf, const http::h1::ParseResult& whole_result, const Head& whole,
                          Parse parse) {
  using http::h1::ParseState;
  Head h;
  for_each_prefix(buf.size(), [&](size_t n) {
    http::h1::ParseResult r = parse(buf.substr(0, n), h);
    switch (whole_result.state) {
      case ParseState::kIncomplete:
        check(r.state == ParseState::kIncomplete);
        break;
      case ParseState::kError:
        check(r.state == ParseState::kIncomplete || same_result(r, whole_result));
        break;
      case ParseState::kComplete:
        if (n < whole_result.consumed) {
          check(r.state == ParseState::kIncomplete);
        } else {
          check(same_result(r, whole_result) && same_headers(h.headers, whole.headers));
        }
        break;
    }
  });
}

}  // namespace sluice::fuzz
