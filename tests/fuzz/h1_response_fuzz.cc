// Fuzzes the HTTP/1 response-head parser: no crash, views stay inside the
// buffer, every prefix is kIncomplete or the same answer, framing facts are
// consistent, and a canonical re-serialisation parses to the same head.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "h1_fuzz_util.h"
#include "http/h1/parser.h"

using sluice::fuzz::check;
using sluice::fuzz::inside;
namespace h1 = sluice::http::h1;

namespace {

void check_head(std::string_view buf, const h1::ParseResult& r, const sluice::http::ResponseHead& h,
                const h1::Limits& lim, bool was_head) {
  switch (r.state) {
    case h1::ParseState::kIncomplete:
      sluice::fuzz::check_incomplete(buf, r, lim);
      return;
    case h1::ParseState::kError:
      check(r.error_status == 502 && !r.error.empty());
      return;
    case h1::ParseState::kComplete:
      break;
  }
  const std::string_view head = sluice::fuzz::complete_head(buf, r, lim);
  check(h.status >= 100 && h.status <= 599);
  check(inside(head, h.reason));
  check(h.reason.find_first_of("\r\n") == std::string_view::npos);
  check(h.version_minor == 0 || h.version_minor == 1);
  check(h.headers.size() <= lim.max_headers);
  for (const auto& f : h.headers) {
    check(!f.name.empty() && inside(head, f.name) && inside(head, f.value));
    check(f.value.find_first_of("\r\n") == std::string_view::npos);
  }
  check(!(h.chunked && h.content_length));
  bool no_body = was_head || h.status < 200 || h.status == 204 || h.status == 304;
  if (no_body) check(h.content_length == 0u && !h.chunked);
  if (!h.chunked && !h.content_length) check(!h.keep_alive);  // close-delimited
}

void check_canonical_round_trip(const sluice::http::ResponseHead& h, const h1::Limits& lim,
                                bool was_head) {
  std::string out = h.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out.append(std::to_string(h.status)).append(" ").append(h.reason).append("\r\n");
  for (const auto& f : h.headers) out.append(f.name).append(": ").append(f.value).append("\r\n");
  out.append("\r\n");
  h1::Limits big = lim;
  big.max_header_bytes = out.size();
  sluice::http::ResponseHead h2;
  h1::ParseResult r = h1::parse_response_head(out, h2, big, was_head);
  check(r.state == h1::ParseState::kComplete && r.consumed == out.size());
  check(h2.status == h.status && h2.reason == h.reason && h2.version_minor == h.version_minor);
  check(sluice::fuzz::same_headers(h.headers, h2.headers));
  check(h2.content_length == h.content_length && h2.chunked == h.chunked &&
        h2.keep_alive == h.keep_alive);
}

void run(std::string_view buf, const h1::Limits& lim, bool was_head) {
  sluice::http::ResponseHead whole;
  h1::ParseResult wr = h1::parse_response_head(buf, whole, lim, was_head);
  check_head(buf, wr, whole, lim, was_head);
  if (wr.state == h1::ParseState::kComplete) check_canonical_round_trip(whole, lim, was_head);

  sluice::fuzz::check_prefixes_agree(buf, wr, whole, [&](std::string_view prefix, sluice::http::ResponseHead& h) {
    return h1::parse_response_head(prefix, h, lim, was_head);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  run(buf, h1::Limits{}, false);
  h1::Limits small;
  small.max_header_bytes = 200;
  small.max_headers = 4;
  run(buf, small, true);
  return 0;
}
