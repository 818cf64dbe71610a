// h1/: the HTTP/1.1 wire format without sockets. parser.h reads request and
// response heads, chunked.h decodes chunked bodies, serialize.h writes heads.
//
// The parser is strict (RFC 9112) because a proxy that is more lenient than
// the server behind it is a request-smuggling vector: bare CR/LF, obs-fold,
// whitespace before the colon, duplicate Content-Length and any transfer
// coding other than "chunked" are all rejected.
//
// It is stateless: give it everything received so far; on kIncomplete call
// again with a longer buffer. Bytes are checked left to right, so an error in
// a prefix is the same error for any longer buffer.
#pragma once

#include <cstddef>
#include <string_view>

#include "http/message.h"

namespace sluice::http::h1 {

struct Limits {
  size_t max_header_bytes = 64 * 1024;  // the whole head, request line included
  size_t max_headers = 128;
};

enum class ParseState { kIncomplete, kComplete, kError };

struct ParseResult {
  ParseState state = ParseState::kIncomplete;
  size_t consumed = 0;      // bytes of the head incl. the final empty line, when kComplete
  int error_status = 0;     // 400, 431, 501 or 505 (requests), 502 (responses) when kError
  std::string_view error;   // short static human message, e.g. "invalid header name"
};

// Views in `out` point into `buf`; `out` is meaningful only when kComplete.
// `out.headers` is clear()ed, not shrunk, so a reused head does not allocate.
// A buffer with no complete head that is already longer than max_header_bytes
// is kError 431, and so is a complete head longer than that.
ParseResult parse_request_head(std::string_view buf, RequestHead& out, const Limits& lim);

// For upstream responses; every error is 502 ("bad upstream response").
// `request_was_head` or status 1xx/204/304 => no body (content_length=0,
// chunked=false). Neither length nor chunked => body until close, and
// keep_alive=false.
ParseResult parse_response_head(std::string_view buf, ResponseHead& out, const Limits& lim,
                                bool request_was_head = false);

}  // namespace sluice::http::h1
