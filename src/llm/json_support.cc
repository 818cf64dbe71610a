#include "llm/json_support.h"

#include <cstring>

namespace sluice::llm::detail {

namespace {

// Grows on demand up to kReuseLimit and then stays, like the parser.
struct ThreadBuffer {
  std::unique_ptr<char[]> data;
  size_t capacity = 0;
};

thread_local ThreadBuffer t_buffer;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

simdjson::ondemand::parser& thread_parser() {
  thread_local simdjson::ondemand::parser parser;
  return parser;
}

PaddedInput::PaddedInput(std::string_view text) { copy(text); }

PaddedInput::PaddedInput(const std::string& text) {
  if (text.capacity() - text.size() >= simdjson::SIMDJSON_PADDING) {
    data_ = text.data();
    size_ = text.size();
  } else {
    copy(text);
  }
}

void PaddedInput::copy(std::string_view text) {
  const size_t need = text.size() + simdjson::SIMDJSON_PADDING;
  char* dst;
  if (text.size() <= kReuseLimit) {
    if (t_buffer.capacity < need) {
      // Round up so a stream of slowly growing chunks does not reallocate each time.
      size_t cap = t_buffer.capacity ? t_buffer.capacity : 4096;
      while (cap < need) cap *= 2;
      t_buffer.data = std::make_unique<char[]>(cap);
      t_buffer.capacity = cap;
    }
    dst = t_buffer.data.get();
  } else {
    own_ = std::make_unique<char[]>(need);
    dst = own_.get();
  }
  if (!text.empty()) std::memcpy(dst, text.data(), text.size());
  // Deterministic padding: simdjson peeks at the first padding byte.
  std::memset(dst + text.size(), 0, simdjson::SIMDJSON_PADDING);
  data_ = dst;
  size_ = text.size();
}

int64_t unescaped_length(std::string_view raw) {
  while (!raw.empty() && is_json_space(raw.back())) raw.remove_suffix(1);
  if (raw.size() < 2 || raw.front() != '"' || raw.back() != '"') return 0;
  raw = raw.substr(1, raw.size() - 2);
  int64_t len = static_cast<int64_t>(raw.size());
  const char* p = raw.data();
  const char* const end = p + raw.size();
  while (p < end) {
    const void* hit = std::memchr(p, '\\', static_cast<size_t>(end - p));
    if (!hit) break;
    p = static_cast<const char*>(hit);
    if (end - p < 2) break;
    if (p[1] != 'u') {  // \n, \", \\ ...: two bytes become one
      len -= 1;
      p += 2;
      continue;
    }
    if (end - p < 6) break;
    int cp = 0;
    for (int i = 2; i < 6; ++i) {
      const int h = hex_value(p[i]);
      if (h < 0) {
        cp = -1;
        break;
      }
      cp = cp * 16 + h;
    }
    if (cp < 0) {
      p += 2;
      continue;
    }
    // Six bytes become the code point's UTF-8 length; each half of a surrogate
    // pair counts two of the pair's four bytes.
    const int out = cp < 0x80 ? 1 : cp < 0x800 ? 2 : (cp >= 0xD800 && cp <= 0xDFFF) ? 2 : 3;
    len -= 6 - out;
    p += 6;
  }
  return len;
}

namespace {

std::string_view trimmed_token(simdjson::ondemand::value& v) {
  std::string_view raw = v.raw_json_token();
  while (!raw.empty() && is_json_space(raw.back())) raw.remove_suffix(1);
  return raw;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  auto digits = [&] {
    const size_t start = i;
    while (i < n && is_digit(s[i])) ++i;
    return i > start;
  };
  if (i < n && s[i] == '-') ++i;
  if (i < n && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == n;
}

}  // namespace

bool validate_value(simdjson::ondemand::value& v, int depth) {
  namespace od = simdjson::ondemand;
  od::json_type t;
  if (v.type().get(t) != simdjson::SUCCESS) return false;
  switch (t) {
    case od::json_type::object: {
      od::object object;
      if (depth >= kMaxDepth || v.get_object().get(object) != simdjson::SUCCESS) return false;
      for (auto f : object) {
        if (f.error() != simdjson::SUCCESS || !validate_value(f.value_unsafe().value(), depth + 1)) return false;
      }
      return true;
    }
    case od::json_type::array: {
      od::array array;
      if (depth >= kMaxDepth || v.get_array().get(array) != simdjson::SUCCESS) return false;
      for (auto element : array) {
        od::value* ev = next_element(element);
        if (!ev || !validate_value(*ev, depth + 1)) return false;
      }
      return true;
    }
    case od::json_type::string: {
      // Consumed, not left for the parent to skip: On-Demand skips a string
      // followed by ':' as if it were a key, which would accept ["a":1].
      od::raw_json_string ignored;
      return v.get_raw_json_string().get(ignored) == simdjson::SUCCESS;
    }
    case od::json_type::number:
      // Checked by spelling, not parsed (parsing rejects 1e400); a skipped
      // number is a single token, which the parent steps over.
      return is_json_number(trimmed_token(v));
    case od::json_type::boolean: {
      bool ignored;
      return v.get_bool().get(ignored) == simdjson::SUCCESS;
    }
    case od::json_type::null: {
      bool is_null = false;
      return v.is_null().get(is_null) == simdjson::SUCCESS && is_null;
    }
  }
  return false;
}

bool get_count(simdjson::ondemand::value& v, int64_t& out) {
  simdjson::ondemand::json_type t;
  if (v.type().get(t) != simdjson::SUCCESS || t != simdjson::ondemand::json_type::number) return false;
  int64_t n;
  if (v.get_int64().get(n) != simdjson::SUCCESS || n < 0) return false;
  out = n;
  return true;
}

}  // namespace sluice::llm::detail
