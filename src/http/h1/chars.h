// Byte classes shared by the HTTP/1 parser and chunked decoder (internal).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sluice::http::h1::chars {

enum : uint8_t { kTchar = 1, kCtl = 2, kSchemeChar = 4 };

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool digit = c >= '0' && c <= '9';
    if (alpha || digit) t[c] |= kTchar | kSchemeChar;
    if (c < 0x20 || c == 0x7f) t[c] |= kCtl;
  }
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] |= kTchar;
  for (char c : std::string_view("+-.")) t[static_cast<unsigned char>(c)] |= kSchemeChar;
  return t;
}
inline constexpr std::array<uint8_t, 256> kClass = make_classes();

inline bool has(char c, uint8_t cls) { return (kClass[static_cast<unsigned char>(c)] & cls) != 0; }
inline bool is_ows(char c) { return c == ' ' || c == '\t'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

// First byte in [p, end) that is a CTL (< 0x20 or DEL), or end. Field values,
// reason phrases: VCHAR, SP and obs-text pass; HTAB stops the scan so the
// caller decides. 16 bytes at a time, since values are most of a head.
inline const char* find_ctl(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i k1f = _mm_set1_epi8(0x1f);
  const __m128i k7f = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, k1f), v);  // v <= 0x1f (unsigned)
    int m = _mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(v, k7f)));
    if (m != 0) return p + __builtin_ctz(static_cast<unsigned>(m));
    p += 16;
  }
#endif
  while (p < end && !has(*p, kCtl)) ++p;
  return p;
}

// First byte in [p, end) outside 0x21..0x7e (the request-target alphabet), or end.
inline const char* find_non_vchar(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i k20 = _mm_set1_epi8(0x20);
  const __m128i k7f = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(v, k20), v);   // v <= 0x20
    __m128i high = _mm_cmpeq_epi8(_mm_max_epu8(v, k7f), v);  // v >= 0x7f
    int m = _mm_movemask_epi8(_mm_or_si128(low, high));
    if (m != 0) return p + __builtin_ctz(static_cast<unsigned>(m));
    p += 16;
  }
#endif
  while (p < end) {
    auto c = static_cast<unsigned char>(*p);
    if (c <= 0x20 || c >= 0x7f) break;
    ++p;
  }
  return p;
}

}  // namespace sluice::http::h1::chars
