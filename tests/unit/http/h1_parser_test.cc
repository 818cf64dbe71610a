// HTTP/1 head parser: valid and malformed requests and responses, every split
// point, pipelining, limits.
#include "http/h1/parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::http::h1 {
namespace {

using namespace std::string_literals;

ParseResult parse_req(std::string_view buf, RequestHead& out, const Limits& lim = {}) {
  return parse_request_head(buf, out, lim);
}

// Feeds every proper prefix of `buf` and checks the documented contract: a
// prefix is kIncomplete, or (for bad input) already the final error; once an
// error shows up it stays. Returns the result for the whole buffer.
template <class Head, class Parse>
ParseResult check_prefixes(std::string_view buf, Parse parse) {
  Head whole;
  ParseResult final_r = parse(buf, whole);
  bool seen_error = false;
  for (size_t n = 0; n < buf.size(); ++n) {
    Head h;
    ParseResult r = parse(buf.substr(0, n), h);
    if (final_r.state == ParseState::kComplete && n < final_r.consumed) {
      EXPECT_EQ(r.state, ParseState::kIncomplete) << "prefix " << n;
    } else if (final_r.state == ParseState::kError) {
      if (seen_error) {
        EXPECT_EQ(r.state, ParseState::kError) << "prefix " << n;
      }
      if (r.state == ParseState::kError) {
        seen_error = true;
        EXPECT_EQ(r.error_status, final_r.error_status) << "prefix " << n;
        EXPECT_EQ(r.error, final_r.error) << "prefix " << n;
      } else {
        EXPECT_EQ(r.state, ParseState::kIncomplete) << "prefix " << n;
      }
    }
  }
  return final_r;
}

ParseResult check_request_prefixes(std::string_view buf, const Limits& lim = {}) {
  return check_prefixes<RequestHead>(
      buf, [&](std::string_view b, RequestHead& h) { return parse_request_head(b, h, lim); });
}

ParseResult check_response_prefixes(std::string_view buf, bool head = false) {
  return check_prefixes<ResponseHead>(buf, [&](std::string_view b, ResponseHead& h) {
    return parse_response_head(b, h, Limits{}, head);
  });
}

bool inside(std::string_view outer, std::string_view v) {
  return v.empty() || (v.data() >= outer.data() && v.data() + v.size() <= outer.data() + outer.size());
}

// ---- valid requests ---------------------------------------------------------

TEST(H1Request, TypicalRequest) {
  const std::string buf =
      "POST /v1/chat/completions?stream=true HTTP/1.1\r\n"
      "Host: api.example.com\r\n"
      "User-Agent: curl/8.0\r\n"
      "Accept: */*\r\n"
      "Content-Type: application/json\r\n"
      "Authorization: Bearer sk-123\r\n"
      "Content-Length: 42\r\n"
      "\r\n"
      "{\"model\":\"x\"}";
  RequestHead h;
  ParseResult r = parse_req(buf, h);
  ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
  EXPECT_EQ(r.consumed, buf.find("\r\n\r\n") + 4);
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/v1/chat/completions?stream=true");
  EXPECT_EQ(h.path(), "/v1/chat/completions");
  EXPECT_EQ(h.version_minor, 1);
  ASSERT_EQ(h.headers.size(), 6u);
  EXPECT_EQ(h.headers[0].name, "Host");
  EXPECT_EQ(h.headers[0].value, "api.example.com");
  EXPECT_EQ(h.headers[4].name, "Authorization");
  EXPECT_EQ(h.headers[4].value, "Bearer sk-123");
  EXPECT_EQ(h.find("content-type"), "application/json");
  ASSERT_TRUE(h.content_length.has_value());
  EXPECT_EQ(*h.content_length, 42u);
  EXPECT_FALSE(h.chunked);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.expect_continue);
  for (const Header& f : h.headers) {
    EXPECT_TRUE(inside(buf, f.name));
    EXPECT_TRUE(inside(buf, f.value));
  }
}

TEST(H1Request, NoBodyWhenNeitherLengthNorChunked) {
  RequestHead h;
  ParseResult r = parse_req("GET / HTTP/1.1\r\nHost: a\r\n\r\n", h);
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_FALSE(h.content_length.has_value());
  EXPECT_FALSE(h.chunked);
}

TEST(H1Request, Chunked) {
  RequestHead h;
  ParseResult r =
      parse_req("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  ChUnKeD \t\r\n\r\n", h);
  ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
  EXPECT_TRUE(h.chunked);
  EXPECT_FALSE(h.content_length.has_value());
}

TEST(H1Request, ContentLengthValues) {
  struct Case {
    std::string value;
    uint64_t expect;
  };
  for (const Case& c : std::vector<Case>{{"0", 0},
                                         {"007", 7},
                                         {"4611686018427387904", uint64_t{1} << 62},
                                         {"00000000000000000000000001", 1}}) {
    RequestHead h;
    std::string buf = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + c.value + "\r\n\r\n";
    ParseResult r = parse_req(buf, h);
    ASSERT_EQ(r.state, ParseState::kComplete) << c.value << ": " << r.error;
    ASSERT_TRUE(h.content_length.has_value());
    EXPECT_EQ(*h.content_length, c.expect) << c.value;
  }
}

TEST(H1Request, ValueWhitespaceTrimmedAndInnerKept) {
  RequestHead h;
  ParseResult r = parse_req(
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: \t a \t b \t\r\nX-Empty:\r\nX-Blank:   \r\n"
      "X-Obs: caf\xc3\xa9\xff\r\n\r\n",
      h);
  ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
  EXPECT_EQ(h.find("x-a"), "a \t b");
  EXPECT_EQ(h.find("X-EMPTY"), "");
  EXPECT_EQ(h.find("x-blank"), "");
  EXPECT_EQ(h.find("x-obs"), "caf\xc3\xa9\xff");
  EXPECT_EQ(h.headers.size(), 5u);
}

TEST(H1Request, LeadingEmptyLinesSkipped) {
  const std::string buf = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  RequestHead h;
  ParseResult r = check_request_prefixes(buf);
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.consumed, buf.size());
  ASSERT_EQ(parse_req(buf, h).state, ParseState::kComplete);
  EXPECT_EQ(h.method, "GET");
}

TEST(H1Request, TargetForms) {
  RequestHead h;
  ASSERT_EQ(parse_req("GET http://api.example.com/v1/models?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", h)
                .state,
            ParseState::kComplete);
  EXPECT_EQ(h.target, "http://api.example.com/v1/models?x=1");
  EXPECT_EQ(h.path(), "/v1/models");
  ASSERT_EQ(parse_req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", h).state, ParseState::kComplete);
  EXPECT_EQ(h.target, "*");
}

struct KeepAliveCase {
  std::string head;
  bool keep_alive;
};

TEST(H1Request, KeepAlive) {
  const std::vector<KeepAliveCase> cases = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, Close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: foo ,keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
  };
  for (const KeepAliveCase& c : cases) {
    RequestHead h;
    ASSERT_EQ(parse_req(c.head, h).state, ParseState::kComplete) << c.head;
    EXPECT_EQ(h.keep_alive, c.keep_alive) << c.head;
  }
}

TEST(H1Request, ExpectContinue) {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", true},
      {"POST / HTTP/1.1\r\nHost: a\r\nEXPECT:  100-Continue \r\nContent-Length: 1\r\n\r\n", true},
      {"POST / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\n\r\n", false},
      {"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\n\r\n", false},
  };
  for (const auto& [head, expect] : cases) {
    RequestHead h;
    ASSERT_EQ(parse_req(head, h).state, ParseState::kComplete) << head;
    EXPECT_EQ(h.expect_continue, expect) << head;
  }
}

TEST(H1Request, Http10WithoutHost) {
  RequestHead h;
  ASSERT_EQ(parse_req("GET /a HTTP/1.0\r\n\r\n", h).state, ParseState::kComplete);
  EXPECT_EQ(h.version_minor, 0);
}

TEST(H1Request, HeadVectorIsReusedAndResetBetweenParses) {
  RequestHead h;
  ASSERT_EQ(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                      "Connection: close\r\nExpect: 100-continue\r\n\r\n",
                      h)
                .state,
            ParseState::kComplete);
  const Header* storage = h.headers.data();
  ASSERT_EQ(parse_req("GET / HTTP/1.1\r\nHost: b\r\n\r\n", h).state, ParseState::kComplete);
  EXPECT_EQ(h.headers.data(), storage);  // no reallocation
  EXPECT_EQ(h.headers.size(), 1u);
  EXPECT_FALSE(h.content_length.has_value());
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.expect_continue);
}

// ---- malformed requests ------------------------------------------------------

struct BadCase {
  const char* what;
  std::string input;
  int status;
};

const std::vector<BadCase>& bad_requests() {
  static const std::vector<BadCase> cases = {
      // line endings
      {"bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
      {"bare LF after header", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
      {"bare LF as empty line", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
      {"bare LF leading", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bare CR in request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
      {"bare CR in value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400},
      {"bare CR as empty line", "GET / HTTP/1.1\r\nHost: a\r\n\rX", 400},
      {"bare CR leading", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      // request line
      {"empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bad method char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"method then tab", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"CTL in target", "GET /a\x01z HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"NUL in target", "GET /a\0z HTTP/1.1\r\nHost: a\r\n\r\n"s, 400},
      {"DEL in target", "GET /a\x7fz HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"non-ASCII in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"tab in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"asterisk for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"no version", "GET /\r\nHost: a\r\n\r\n", 400},
      {"lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
      {"version without dot", "GET / HTTP/11\r\nHost: a\r\n\r\n", 400},
      {"version three digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},
      {"space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
      {"HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505},
      {"HTTP/9.1", "GET / HTTP/9.1\r\n\r\n", 505},
      // header fields
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400},
      {"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400},
      {"bad name char", "GET / HTTP/1.1\r\nHost: a\r\nX@Y: z\r\n\r\n", 400},
      {"name with slash", "GET / HTTP/1.1\r\nHost: a\r\nX/Y: z\r\n\r\n", 400},
      {"no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n", 400},
      {"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400},
      {"whitespace before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
      {"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s, 400},
      {"ESC in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b b\r\n\r\n", 400},
      {"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400},
      {"CTL in long value",
       "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(40, 'v') + "\x01" + std::string(40, 'v') +
           "\r\n\r\n",
       400},
      // Content-Length
      {"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400},
      {"CL letters", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", 400},
      {"CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
      {"CL plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400},
      {"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400},
      {"CL inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400},
      {"CL list same", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400},
      {"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,6\r\n\r\n", 400},
      {"CL twice same",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", 400},
      {"CL twice different",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"CL over 2^62",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387905\r\n\r\n", 400},
      {"CL over 2^64",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
      // Transfer-Encoding
      {"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501},
      {"TE chunked twice in list",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 501},
      {"TE gzip, chunked",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"TE two fields",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
       "chunked\r\n\r\n",
       501},
      {"TE chunked with param",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 501},
      {"TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 501},
      {"TE then CL",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
       400},
      {"CL then TE",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      // Host
      {"missing Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400},
      {"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400},
  };
  return cases;
}

TEST(H1Request, MalformedRejectedWithStatus) {
  for (const BadCase& c : bad_requests()) {
    RequestHead h;
    ParseResult r = parse_req(c.input, h);
    ASSERT_EQ(r.state, ParseState::kError) << c.what;
    EXPECT_EQ(r.error_status, c.status) << c.what << ": " << r.error;
    EXPECT_FALSE(r.error.empty()) << c.what;
  }
}

TEST(H1Request, MalformedSameErrorAtEverySplit) {
  for (const BadCase& c : bad_requests()) {
    SCOPED_TRACE(c.what);
    ParseResult r = check_request_prefixes(c.input);
    EXPECT_EQ(r.error_status, c.status);
  }
}

// ---- limits -------------------------------------------------------------------

std::string request_with_fields(int n) {
  std::string s = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 1; i < n; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
  return s + "\r\n";
}

TEST(H1Request, MaxHeaders) {
  Limits lim;
  lim.max_headers = 4;
  RequestHead h;
  EXPECT_EQ(parse_req(request_with_fields(4), h, lim).state, ParseState::kComplete);
  ParseResult r = parse_req(request_with_fields(5), h, lim);
  ASSERT_EQ(r.state, ParseState::kError);
  EXPECT_EQ(r.error_status, 431);

  // The default limit is 128.
  EXPECT_EQ(parse_req(request_with_fields(128), h).state, ParseState::kComplete);
  r = parse_req(request_with_fields(129), h);
  ASSERT_EQ(r.state, ParseState::kError);
  EXPECT_EQ(r.error_status, 431);
  check_request_prefixes(request_with_fields(129));
}

TEST(H1Request, MaxHeaderBytesComplete) {
  const std::string buf = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(100, 'v') + "\r\n\r\n";
  Limits lim;
  lim.max_header_bytes = buf.size();
  RequestHead h;
  EXPECT_EQ(parse_req(buf, h, lim).state, ParseState::kComplete);  // exactly at the limit
  lim.max_header_bytes = buf.size() - 1;
  ParseResult r = parse_req(buf, h, lim);
  ASSERT_EQ(r.state, ParseState::kError);
  EXPECT_EQ(r.error_status, 431);
  check_request_prefixes(buf, lim);
}

TEST(H1Request, MaxHeaderBytesIncomplete) {
  Limits lim;
  lim.max_header_bytes = 64;
  std::string buf = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(34, 'v');
  RequestHead h;
  ASSERT_LE(buf.size(), 64u);
  while (buf.size() < 64) buf += 'v';
  EXPECT_EQ(parse_req(buf, h, lim).state, ParseState::kIncomplete);
  buf += 'v';  // 65 bytes, no end of head yet
  ParseResult r = parse_req(buf, h, lim);
  ASSERT_EQ(r.state, ParseState::kError);
  EXPECT_EQ(r.error_status, 431);

  // The default limit is 64 KiB.
  std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(64 * 1024, 'v');
  r = parse_req(big, h);
  ASSERT_EQ(r.state, ParseState::kError);
  EXPECT_EQ(r.error_status, 431);
}

TEST(H1Request, ErrorInsideLimitBeatsSize) {
  Limits lim;
  lim.max_header_bytes = 32;
  RequestHead h;
  std::string buf = "GET / HTTP/1.1\r\nHo\x01st: " + std::string(100, 'a');
  ParseResult r = parse_req(buf, h, lim);
  ASSERT_EQ(r.state, ParseState::kError);
  EXPECT_EQ(r.error_status, 400);
}

// ---- splits and pipelining ---------------------------------------------------

TEST(H1Request, EveryPrefixIncompleteThenSameResult) {
  const std::vector<std::string> valid = {
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "\r\nGET /x?y=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nX-Tab:\ta\tb\t\r\n"
      "User-Agent: " + std::string(40, 'u') + "\r\n\r\n",
      "PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
  };
  for (const std::string& buf : valid) {
    SCOPED_TRACE(buf);
    RequestHead whole;
    ParseResult wr = parse_req(buf, whole);
    ASSERT_EQ(wr.state, ParseState::kComplete) << wr.error;
    ASSERT_EQ(wr.consumed, buf.size());
    check_request_prefixes(buf);
    // Growing buffers (as a connection would read) give identical results.
    for (size_t n = 0; n <= buf.size(); ++n) {
      RequestHead h;
      ParseResult r = parse_req(std::string_view(buf).substr(0, n), h);
      if (n < buf.size()) {
        EXPECT_EQ(r.state, ParseState::kIncomplete);
        continue;
      }
      ASSERT_EQ(r.state, ParseState::kComplete);
      EXPECT_EQ(r.consumed, wr.consumed);
      EXPECT_EQ(h.method, whole.method);
      EXPECT_EQ(h.target, whole.target);
      EXPECT_EQ(h.version_minor, whole.version_minor);
      ASSERT_EQ(h.headers.size(), whole.headers.size());
      for (size_t i = 0; i < h.headers.size(); ++i) {
        EXPECT_EQ(h.headers[i].name, whole.headers[i].name);
        EXPECT_EQ(h.headers[i].value, whole.headers[i].value);
      }
      EXPECT_EQ(h.content_length, whole.content_length);
      EXPECT_EQ(h.chunked, whole.chunked);
      EXPECT_EQ(h.keep_alive, whole.keep_alive);
      EXPECT_EQ(h.expect_continue, whole.expect_continue);
    }
  }
}

TEST(H1Request, Pipelined) {
  const std::string buf =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      "GET /d HT";
  std::string_view rest = buf;
  RequestHead h;

  ParseResult r = parse_req(rest, h);
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(h.target, "/a");
  rest.remove_prefix(r.consumed);
  EXPECT_EQ(rest.substr(0, 8), "POST /b ");

  r = parse_req(rest, h);
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(h.target, "/b");
  ASSERT_EQ(h.content_length, 5u);
  rest.remove_prefix(r.consumed);
  EXPECT_EQ(rest.substr(0, 5), "hello");
  rest.remove_prefix(5);

  r = parse_req(rest, h);
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(h.target, "/c");
  EXPECT_FALSE(h.keep_alive);
  rest.remove_prefix(r.consumed);

  r = parse_req(rest, h);
  EXPECT_EQ(r.state, ParseState::kIncomplete);
  EXPECT_EQ(rest, "GET /d HT");
}

// ---- responses ----------------------------------------------------------------

TEST(H1Response, ContentLength) {
  const std::string buf = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
  ResponseHead h;
  ParseResult r = check_response_prefixes(buf);
  ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
  ASSERT_EQ(parse_response_head(buf, h, Limits{}).state, ParseState::kComplete);
  EXPECT_EQ(r.consumed, buf.size() - 2);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.reason, "OK");
  EXPECT_EQ(h.version_minor, 1);
  EXPECT_EQ(h.content_length, 2u);
  EXPECT_FALSE(h.chunked);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_EQ(h.find("content-type"), "application/json");
}

TEST(H1Response, Chunked) {
  ResponseHead h;
  ParseResult r = parse_response_head(
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n", h,
      Limits{});
  ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
  EXPECT_TRUE(h.chunked);
  EXPECT_FALSE(h.content_length.has_value());
  EXPECT_TRUE(h.keep_alive);
}

TEST(H1Response, CloseDelimited) {
  ResponseHead h;
  ASSERT_EQ(parse_response_head("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody", h,
                                Limits{})
                .state,
            ParseState::kComplete);
  EXPECT_FALSE(h.content_length.has_value());
  EXPECT_FALSE(h.chunked);
  EXPECT_FALSE(h.keep_alive);
}

TEST(H1Response, NoBodyStatusesAndHead) {
  struct Case {
    std::string head;
    bool request_was_head;
  };
  const std::vector<Case> cases = {
      {"HTTP/1.1 204 No Content\r\n\r\n", false},
      {"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n", false},
      {"HTTP/1.1 100 Continue\r\n\r\n", false},
      {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\n\r\n", true},
  };
  for (const Case& c : cases) {
    ResponseHead h;
    ParseResult r = parse_response_head(c.head, h, Limits{}, c.request_was_head);
    ASSERT_EQ(r.state, ParseState::kComplete) << c.head;
    EXPECT_EQ(h.content_length, 0u) << c.head;
    EXPECT_FALSE(h.chunked) << c.head;
    EXPECT_TRUE(h.keep_alive) << c.head;
  }
}

TEST(H1Response, ReasonPhrases) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"HTTP/1.1 200\r\n\r\n", ""},
      {"HTTP/1.1 200 \r\n\r\n", ""},
      {"HTTP/1.1 404 Not Found\r\n\r\n", "Not Found"},
      {"HTTP/1.1 500 it\tbroke \xe2\x9c\x97\r\n\r\n", "it\tbroke \xe2\x9c\x97"},
  };
  for (const auto& [buf, reason] : cases) {
    ResponseHead h;
    ParseResult r = check_response_prefixes(buf, false);
    ASSERT_EQ(r.state, ParseState::kComplete) << buf;
    ASSERT_EQ(parse_response_head(buf, h, Limits{}).state, ParseState::kComplete);
    EXPECT_EQ(h.reason, reason);
  }
}

TEST(H1Response, KeepAlive) {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", true},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false},  // close-delimited
  };
  for (const auto& [buf, keep] : cases) {
    ResponseHead h;
    ASSERT_EQ(parse_response_head(buf, h, Limits{}).state, ParseState::kComplete) << buf;
    EXPECT_EQ(h.keep_alive, keep) << buf;
  }
}

TEST(H1Response, Pipelined) {
  const std::string buf =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  ResponseHead h;
  ParseResult r = parse_response_head(buf, h, Limits{});
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(h.status, 100);
  std::string_view rest = std::string_view(buf).substr(r.consumed);
  r = parse_response_head(rest, h, Limits{});
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(rest.substr(r.consumed), "ok");
}

TEST(H1Response, MalformedIs502) {
  const std::vector<BadCase> cases = {
      {"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 502},
      {"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       502},
      {"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 502},
      {"TE on 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 502},
      {"duplicate CL", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 502},
      {"bad CL", "HTTP/1.1 200 OK\r\nContent-Length: 3x\r\n\r\n", 502},
      {"CL and TE on 204", "HTTP/1.1 204 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
       502},
      {"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", 502},
      {"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", 502},
      {"status 099", "HTTP/1.1 099 X\r\n\r\n", 502},
      {"status 600", "HTTP/1.1 600 X\r\n\r\n", 502},
      {"HTTP/2", "HTTP/2 200 OK\r\n\r\n", 502},
      {"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", 502},
      {"not HTTP", "ICY 200 OK\r\n\r\n", 502},
      {"leading empty line", "\r\nHTTP/1.1 200 OK\r\n\r\n", 502},
      {"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", 502},
      {"bare LF empty line", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n", 502},
      {"bare CR in reason", "HTTP/1.1 200 O\rK\r\n\r\n", 502},
      {"CTL in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", 502},
      {"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", 502},
      {"NUL in value", "HTTP/1.1 200 OK\r\nX: \0\r\n\r\n"s, 502},
      {"too large",
       "HTTP/1.1 200 OK\r\nX: " + std::string(64 * 1024, 'x') + "\r\n\r\n", 502},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.what);
    ResponseHead h;
    ParseResult r = parse_response_head(c.input, h, Limits{});
    ASSERT_EQ(r.state, ParseState::kError);
    EXPECT_EQ(r.error_status, 502) << r.error;
    EXPECT_FALSE(r.error.empty());
    if (c.input.size() < 1024) check_response_prefixes(c.input);
  }
}

}  // namespace
}  // namespace sluice::http::h1
