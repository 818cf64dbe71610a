// http/: the protocol-agnostic request/response model (Exchange) and one codec
// per protocol. Nothing here knows about LLMs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::http {

struct Header {
  std::string_view name;   // as received; compare with iequals()
  std::string_view value;  // leading/trailing whitespace removed
};

bool iequals(std::string_view a, std::string_view b);

// A parsed request head. The views point into storage owned by whoever parsed
// it (the codec keeps the header block alive for the whole exchange).
struct RequestHead {
  std::string_view method;
  std::string_view target;  // origin-form ("/v1/chat/completions?x=1")
  int version_minor = 1;    // HTTP/1.<minor>; 1 for h2/h3
  std::vector<Header> headers;

  // Framing and connection facts derived while parsing.
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;
  bool expect_continue = false;

  // First value of a header (case-insensitive name), or empty.
  std::string_view find(std::string_view name) const;
  std::string_view path() const;  // target without the query
};

struct ResponseHead {
  int status = 0;
  std::string_view reason;
  int version_minor = 1;
  std::vector<Header> headers;

  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;

  std::string_view find(std::string_view name) const;
};

// Re-points every view of a parsed head from the buffer it was parsed in
// (`from`) to a copy of the same bytes (`to`), so the head outlives the buffer.
void rebase(RequestHead& h, const char* from, const char* to);
void rebase(ResponseHead& h, const char* from, const char* to);

// Hop-by-hop headers (RFC 9110 7.6.1) that a proxy must not forward.
bool is_hop_by_hop(std::string_view name);

std::string_view reason_phrase(int status);

}  // namespace sluice::http
