#include "http/h1/parser.h"

#include <cstdint>

#include "http/h1/chars.h"

namespace sluice::http::h1 {

namespace {

using chars::find_ctl;
using chars::find_non_vchar;
using chars::has;
using chars::is_digit;
using chars::is_ows;
using chars::kSchemeChar;
using chars::kTchar;

// Case-insensitive compare against a lowercase literal. Inlined here because
// it runs for every header whose name length matches one we care about.
inline bool eq_lower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
    if (c != lower[i]) return false;
  }
  return true;
}

inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// ---- the scanner -----------------------------------------------------------

enum class Step : uint8_t { kOk, kMore, kBad };

constexpr uint64_t kMaxContentLength = uint64_t{1} << 62;

// What the header fields say about framing and the connection; turned into
// RequestHead/ResponseHead fields once the head is complete.
struct Framing {
  std::optional<uint64_t> content_length;
  bool transfer_encoding = false;
  bool chunked = false;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool expect_continue = false;
  int hosts = 0;
};

struct Scanner {
  Scanner(const char* begin, const char* window_end) : p(begin), end(window_end) {}

  const char* p;
  const char* end;  // end of the window: min(buf.size(), max_header_bytes)
  int status = 0;
  std::string_view msg;

  Step bad(int s, std::string_view m) {
    status = s;
    msg = m;
    return Step::kBad;
  }

  // At p: CR LF. Advances past it.
  Step crlf() {
    if (p == end) return Step::kMore;
    if (*p == '\n') return bad(400, "bare LF");
    if (*p != '\r') return bad(400, "expected CRLF");
    if (p + 1 == end) return Step::kMore;
    if (p[1] != '\n') return bad(400, "bare CR");
    p += 2;
    return Step::kOk;
  }

  // "HTTP/" DIGIT "." DIGIT, checked byte by byte so a wrong prefix fails early.
  Step version(int& major, int& minor) {
    static constexpr std::string_view kPrefix = "HTTP/";
    for (size_t i = 0; i < 8; ++i) {
      if (p + i == end) return Step::kMore;
      char c = p[i];
      bool ok = i < 5 ? c == kPrefix[i] : (i == 6 ? c == '.' : is_digit(c));
      if (!ok) return bad(400, "invalid HTTP version");
    }
    major = p[5] - '0';
    minor = p[7] - '0';
    p += 8;
    return Step::kOk;
  }

  // Field value or reason phrase up to and including CRLF; [v, ve) is the
  // value before trimming trailing OWS.
  Step line_rest(const char*& v, const char*& ve) {
    v = p;
    for (;;) {
      p = find_ctl(p, end);
      if (p == end) return Step::kMore;
      if (*p != '\t') break;
      ++p;
    }
    ve = p;
    if (*p == '\r') return crlf();
    if (*p == '\n') return bad(400, "bare LF");
    return bad(400, "invalid character in header value");
  }

  Step header_fields(std::vector<Header>& headers, Framing& f, const Limits& lim, int minor);
  Step on_field(const Header& h, Framing& f, int minor);
};

inline void scan_connection(std::string_view v, Framing& f) {
  for (;;) {
    size_t comma = v.find(',');
    std::string_view token = trim_ows(v.substr(0, comma));
    if (eq_lower(token, "close")) f.conn_close = true;
    else if (eq_lower(token, "keep-alive")) f.conn_keep_alive = true;
    if (comma == std::string_view::npos) return;
    v.remove_prefix(comma + 1);
  }
}

Step Scanner::on_field(const Header& h, Framing& f, int minor) {
  std::string_view n = h.name;
  switch (n.size()) {
    case 4:
      if (eq_lower(n, "host") && ++f.hosts > 1) return bad(400, "duplicate Host");
      break;
    case 6:
      if (eq_lower(n, "expect") && eq_lower(h.value, "100-continue")) f.expect_continue = true;
      break;
    case 10:
      if (eq_lower(n, "connection")) scan_connection(h.value, f);
      break;
    case 14: {
      if (!eq_lower(n, "content-length")) break;
      // Even an identical repeat is refused: some servers take the first,
      // some the last, some the list.
      if (f.content_length) return bad(400, "duplicate Content-Length");
      if (h.value.empty()) return bad(400, "invalid Content-Length");
      uint64_t len = 0;
      for (char c : h.value) {
        if (!is_digit(c)) return bad(400, "invalid Content-Length");
        len = len * 10 + static_cast<uint64_t>(c - '0');
        if (len > kMaxContentLength) return bad(400, "Content-Length too large");
      }
      f.content_length = len;
      break;
    }
    case 17:
      if (!eq_lower(n, "transfer-encoding")) break;
      if (minor == 0) return bad(400, "Transfer-Encoding in HTTP/1.0");
      // A second field makes the coding list "chunked, chunked": not ours.
      if (f.transfer_encoding || !eq_lower(h.value, "chunked")) {
        return bad(501, "unsupported transfer coding");
      }
      f.transfer_encoding = true;
      f.chunked = true;
      break;
    default:
      break;
  }
  return Step::kOk;
}

Step Scanner::header_fields(std::vector<Header>& headers, Framing& f, const Limits& lim,
                            int minor) {
  for (;;) {
    if (p == end) return Step::kMore;
    char c = *p;
    if (c == '\r' || c == '\n') return crlf();  // the empty line ends the head
    if (is_ows(c)) return bad(400, "obsolete line folding");
    if (headers.size() >= lim.max_headers) return bad(431, "too many header fields");

    const char* n = p;
    while (p < end && has(*p, kTchar)) ++p;
    if (p == end) return Step::kMore;
    if (*p != ':') {
      if (is_ows(*p) && p != n) return bad(400, "whitespace before colon");
      return bad(400, "invalid header name");
    }
    if (p == n) return bad(400, "empty header name");
    std::string_view name(n, static_cast<size_t>(p - n));
    ++p;
    while (p < end && is_ows(*p)) ++p;

    const char* v;
    const char* ve;
    if (Step s = line_rest(v, ve); s != Step::kOk) return s;
    while (ve > v && is_ows(ve[-1])) --ve;
    headers.push_back(Header{name, std::string_view(v, static_cast<size_t>(ve - v))});
    if (Step s = on_field(headers.back(), f, minor); s != Step::kOk) return s;
  }
}

// ---- request ----------------------------------------------------------------

bool valid_target_form(std::string_view method, std::string_view t) {
  if (t.front() == '/') return true;  // origin-form
  if (t == "*") return method == "OPTIONS";
  // absolute-form: scheme ":" ...; scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  char c0 = t.front();
  if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z'))) return false;
  for (size_t i = 1; i < t.size(); ++i) {
    if (t[i] == ':') return i + 1 < t.size();
    if (!has(t[i], kSchemeChar)) return false;
  }
  return false;
}

Step parse_request(Scanner& s, RequestHead& out, const Limits& lim) {
  // RFC 9112 2.2: a server SHOULD ignore empty lines before the request-line.
  for (;;) {
    if (s.p == s.end) return Step::kMore;
    if (*s.p != '\r' && *s.p != '\n') break;
    if (Step st = s.crlf(); st != Step::kOk) return st;
  }

  const char* m = s.p;
  while (s.p < s.end && has(*s.p, kTchar)) ++s.p;
  if (s.p == s.end) return Step::kMore;
  if (s.p == m || *s.p != ' ') return s.bad(400, "invalid method");
  out.method = std::string_view(m, static_cast<size_t>(s.p - m));
  ++s.p;

  const char* t = s.p;
  s.p = find_non_vchar(s.p, s.end);
  if (s.p == s.end) return Step::kMore;
  if (s.p == t || *s.p != ' ') return s.bad(400, "invalid request target");
  out.target = std::string_view(t, static_cast<size_t>(s.p - t));
  if (!valid_target_form(out.method, out.target)) return s.bad(400, "invalid request target");
  ++s.p;

  int major = 0;
  int minor = 0;
  if (Step st = s.version(major, minor); st != Step::kOk) return st;
  if (Step st = s.crlf(); st != Step::kOk) return st;
  if (major != 1 || minor > 1) return s.bad(505, "unsupported HTTP version");
  out.version_minor = minor;

  Framing f;
  if (Step st = s.header_fields(out.headers, f, lim, minor); st != Step::kOk) return st;

  if (f.transfer_encoding && f.content_length) {
    return s.bad(400, "both Transfer-Encoding and Content-Length");
  }
  if (minor == 1 && f.hosts == 0) return s.bad(400, "missing Host");
  out.content_length = f.content_length;
  out.chunked = f.chunked;
  out.keep_alive = minor == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
  out.expect_continue = minor == 1 && f.expect_continue;
  return Step::kOk;
}

// ---- response ---------------------------------------------------------------

Step parse_response(Scanner& s, ResponseHead& out, const Limits& lim, bool request_was_head) {
  int major = 0;
  int minor = 0;
  if (Step st = s.version(major, minor); st != Step::kOk) return st;
  if (s.p == s.end) return Step::kMore;
  if (*s.p != ' ') return s.bad(400, "invalid status line");
  ++s.p;

  int status = 0;
  for (int i = 0; i < 3; ++i, ++s.p) {
    if (s.p == s.end) return Step::kMore;
    if (!is_digit(*s.p)) return s.bad(400, "invalid status code");
    status = status * 10 + (*s.p - '0');
  }
  if (status < 100 || status > 599) return s.bad(400, "invalid status code");
  if (s.p == s.end) return Step::kMore;
  if (*s.p == ' ') {
    ++s.p;
    const char* r;
    const char* re;
    if (Step st = s.line_rest(r, re); st != Step::kOk) return st;
    out.reason = std::string_view(r, static_cast<size_t>(re - r));
  } else if (Step st = s.crlf(); st != Step::kOk) {  // empty reason without its SP
    return st;
  }
  if (major != 1 || minor > 1) return s.bad(505, "unsupported HTTP version");
  out.status = status;
  out.version_minor = minor;

  Framing f;
  if (Step st = s.header_fields(out.headers, f, lim, minor); st != Step::kOk) return st;

  if (f.transfer_encoding && f.content_length) {
    return s.bad(400, "both Transfer-Encoding and Content-Length");
  }
  out.keep_alive = minor == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
  bool no_body = request_was_head || status < 200 || status == 204 || status == 304;
  if (no_body) {
    out.content_length = 0;
  } else if (f.chunked) {
    out.chunked = true;
  } else if (f.content_length) {
    out.content_length = f.content_length;
  } else {
    out.keep_alive = false;  // the body ends when the upstream closes
  }
  return Step::kOk;
}

ParseResult finish(Step st, const Scanner& s, std::string_view buf, size_t window,
                   bool response) {
  ParseResult r;
  switch (st) {
    case Step::kOk:
      r.state = ParseState::kComplete;
      r.consumed = static_cast<size_t>(s.p - buf.data());
      return r;
    case Step::kMore:
      if (buf.size() <= window) return r;  // kIncomplete
      r.state = ParseState::kError;
      r.error_status = response ? 502 : 431;
      r.error = "header section too large";
      return r;
    case Step::kBad:
      r.state = ParseState::kError;
      r.error_status = response ? 502 : s.status;
      r.error = s.msg;
      return r;
  }
  return r;
}

}  // namespace

ParseResult parse_request_head(std::string_view buf, RequestHead& out, const Limits& lim) {
  out.method = {};
  out.target = {};
  out.version_minor = 1;
  out.headers.clear();
  out.content_length.reset();
  out.chunked = false;
  out.keep_alive = true;
  out.expect_continue = false;

  size_t window = buf.size() < lim.max_header_bytes ? buf.size() : lim.max_header_bytes;
  Scanner s(buf.data(), buf.data() + window);
  Step st = parse_request(s, out, lim);
  return finish(st, s, buf, window, false);
}

ParseResult parse_response_head(std::string_view buf, ResponseHead& out, const Limits& lim,
                                bool request_was_head) {
  out.status = 0;
  out.reason = {};
  out.version_minor = 1;
  out.headers.clear();
  out.content_length.reset();
  out.chunked = false;
  out.keep_alive = true;

  size_t window = buf.size() < lim.max_header_bytes ? buf.size() : lim.max_header_bytes;
  Scanner s(buf.data(), buf.data() + window);
  Step st = parse_response(s, out, lim, request_was_head);
  return finish(st, s, buf, window, true);
}

}  // namespace sluice::http::h1
