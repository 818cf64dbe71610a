// Internal to llm/: how this folder feeds simdjson On-Demand. Not a public API.
//
// simdjson reads up to SIMDJSON_PADDING bytes past the end of its input, so a
// document must sit in a buffer with that much readable slack. Parsers and
// copy buffers are kept per thread and reused, because allocating them costs
// more than parsing a typical request or stream chunk; documents above
// kReuseLimit get private ones that are freed afterwards, so one huge body
// does not pin memory in every worker forever.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace sluice::llm::detail {

inline constexpr size_t kReuseLimit = size_t{1} << 20;

// The per-thread parser for documents up to kReuseLimit bytes.
simdjson::ondemand::parser& thread_parser();

// Makes `text` readable by simdjson. Uses the caller's buffer in place when it
// has the slack (a std::string's spare capacity), otherwise copies into a
// per-thread buffer (or a private one above kReuseLimit). Not reentrant: one
// live PaddedInput per thread.
class PaddedInput {
 public:
  explicit PaddedInput(std::string_view text);
  explicit PaddedInput(const std::string& text);  // in place when capacity allows
  PaddedInput(const PaddedInput&) = delete;
  PaddedInput& operator=(const PaddedInput&) = delete;

  simdjson::padded_string_view view() const {
    return simdjson::padded_string_view(data_, size_, size_ + simdjson::SIMDJSON_PADDING);
  }
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void copy(std::string_view text);

  const char* data_ = nullptr;
  size_t size_ = 0;
  std::unique_ptr<char[]> own_;
};

// Runs f(parser) with the per-thread parser or, for big documents, a private one.
template <class F>
decltype(auto) with_parser(size_t doc_size, F&& f) {
  if (doc_size <= kReuseLimit) return f(thread_parser());
  simdjson::ondemand::parser own;
  return f(own);
}

// Bytes a JSON string takes once unescaped, from its raw token (the opening
// quote up to the next structural character, as raw_json_token() gives it),
// without unescaping it. Lenient: malformed escapes count as written.
int64_t unescaped_length(std::string_view raw_token);

inline bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Nesting deeper than this is rejected instead of walked (the stack is the
// limit; Python's json gives up near 1000).
inline constexpr int kMaxDepth = 512;

// Reads a value completely, so that anything malformed in it is an error:
// On-Demand checks only the structure of what it skips (it matches neither
// bracket kinds nor scalar spellings). Strings were already checked when the
// document was indexed (quotes, UTF-8, control characters); numbers are
// checked against the JSON grammar but not their range, as other parsers
// accept 1e400 too. `depth` is the value's nesting level.
bool validate_value(simdjson::ondemand::value& v, int depth);

// The value's type. type() judges by the first byte only, so a null is
// parsed here (and consumed) to be sure it is not "nul" or "nullx": callers
// act on null without reading it further. False if the document is broken.
inline bool value_type(simdjson::ondemand::value& v, simdjson::ondemand::json_type& t) {
  if (v.type().get(t) != simdjson::SUCCESS) return false;
  if (t != simdjson::ondemand::json_type::null) return true;
  bool is_null = false;
  return v.is_null().get(is_null) == simdjson::SUCCESS && is_null;
}

// A strict non-negative integer: a JSON number that fits int64 and has no
// fraction or exponent. Anything else (null included) is not one.
bool get_count(simdjson::ondemand::value& v, int64_t& out);

// Splits one step of object iteration into the key (unescaped, so "mod\u0065l"
// matches "model" as in every other JSON parser) and the value, which stays
// inside `f`: copying an On-Demand value out of it costs more than reading a
// typical key (GCC's copy stalls on store forwarding). Null on any error,
// including a broken document met while iterating.
inline simdjson::ondemand::value* next_field(simdjson::simdjson_result<simdjson::ondemand::field>& f,
                                             std::string_view& key) {
  if (f.error() != simdjson::SUCCESS) return nullptr;
  simdjson::ondemand::field& field = f.value_unsafe();
  // Indexing the document proved every string closed, so this scan ends
  // inside it. A key without a backslash is its own unescaped form.
  const char* const begin = field.key().raw();
  const char* p = begin;
  while (*p != '"' && *p != '\\') ++p;
  if (*p == '"') {
    key = std::string_view(begin, static_cast<size_t>(p - begin));
  } else if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
    return nullptr;
  }
  return &field.value();
}

// One step of array iteration: the element, inside `e` (see next_field), or
// null on error.
inline simdjson::ondemand::value* next_element(simdjson::simdjson_result<simdjson::ondemand::value>& e) {
  return e.error() == simdjson::SUCCESS ? &e.value_unsafe() : nullptr;
}

}  // namespace sluice::llm::detail
