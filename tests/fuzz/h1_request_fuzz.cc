// Fuzzes the HTTP/1 request-head parser: no crash, views stay inside the
// buffer, every prefix is kIncomplete or the same answer, and a parsed head
// written back out in canonical form parses to the same head.
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

void check_head(std::string_view buf, const h1::ParseResult& r, const sluice::http::RequestHead& h,
                const h1::Limits& lim) {
  switch (r.state) {
    case h1::ParseState::kIncomplete:
      sluice::fuzz::check_incomplete(buf, r, lim);
      return;
    case h1::ParseState::kError:
      check(r.error_status == 400 || r.error_status == 431 || r.error_status == 501 ||
            r.error_status == 505);
      check(!r.error.empty());
      return;
    case h1::ParseState::kComplete:
      break;
  }
  const std::string_view head = sluice::fuzz::complete_head(buf, r, lim);
  check(!h.method.empty() && inside(head, h.method));
  check(!h.target.empty() && inside(head, h.target));
  check(h.version_minor == 0 || h.version_minor == 1);
  check(h.headers.size() <= lim.max_headers);
  for (const auto& f : h.headers) {
    check(!f.name.empty() && inside(head, f.name) && inside(head, f.value));
    check(f.name.find_first_of(" \t:\r\n") == std::string_view::npos);
    check(f.value.find_first_of("\r\n") == std::string_view::npos);
    if (!f.value.empty()) {
      check(f.value.front() != ' ' && f.value.front() != '\t');
      check(f.value.back() != ' ' && f.value.back() != '\t');
    }
  }
  check(!(h.chunked && h.content_length));
  check(!h.content_length || *h.content_length <= (uint64_t{1} << 62));
  int hosts = 0;
  for (const auto& f : h.headers) hosts += sluice::http::iequals(f.name, "host") ? 1 : 0;
  check(hosts <= 1 && (h.version_minor == 0 || hosts == 1));
  if (h.version_minor == 0) check(!h.chunked && !h.expect_continue);
}

void check_canonical_round_trip(const sluice::http::RequestHead& h, const h1::Limits& lim) {
  std::string out;
  out.append(h.method).append(" ").append(h.target);
  out.append(h.version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  for (const auto& f : h.headers) out.append(f.name).append(": ").append(f.value).append("\r\n");
  out.append("\r\n");
  h1::Limits big = lim;
  big.max_header_bytes = out.size();
  sluice::http::RequestHead h2;
  h1::ParseResult r = h1::parse_request_head(out, h2, big);
  check(r.state == h1::ParseState::kComplete && r.consumed == out.size());
  check(h2.method == h.method && h2.target == h.target && h2.version_minor == h.version_minor);
  check(sluice::fuzz::same_headers(h.headers, h2.headers));
  check(h2.content_length == h.content_length && h2.chunked == h.chunked);
  check(h2.keep_alive == h.keep_alive && h2.expect_continue == h.expect_continue);
}

void run(std::string_view buf, const h1::Limits& lim) {
  sluice::http::RequestHead whole;
  h1::ParseResult wr = h1::parse_request_head(buf, whole, lim);
  check_head(buf, wr, whole, lim);
  if (wr.state == h1::ParseState::kComplete) check_canonical_round_trip(whole, lim);

  sluice::fuzz::check_prefixes_agree(buf, wr, whole, [&](std::string_view prefix, sluice::http::RequestHead& h) {
    return h1::parse_request_head(prefix, h, lim);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  run(buf, h1::Limits{});
  h1::Limits small;
  small.max_header_bytes = 200;
  small.max_headers = 4;
  run(buf, small);
  return 0;
}
