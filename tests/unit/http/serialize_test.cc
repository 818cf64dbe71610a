#include "http/h1/serialize.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "http/h1/chunked.h"
#include "http/h1/parser.h"

namespace sluice::http::h1 {
namespace {

TEST(Serialize, StatusLine) {
  std::string out;
  append_status_line(out, 200);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\n");
  out.clear();
  append_status_line(out, 404);
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\n");
  out.clear();
  append_status_line(out, 599);
  EXPECT_EQ(out, "HTTP/1.1 599 \r\n");
  out = "x";
  append_status_line(out, 42);  // never a malformed status line
  EXPECT_EQ(out, "xHTTP/1.1 500 Internal Server Error\r\n");
}

TEST(Serialize, Header) {
  std::string out = "HTTP/1.1 200 OK\r\n";
  append_header(out, "Content-Type", "application/json");
  append_header(out, "X-Empty", "");
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Empty: \r\n");
}

TEST(Serialize, ChunkSize) {
  struct Case {
    size_t n;
    const char* text;
  };
  for (const Case& c : {Case{0, "0\r\n"}, Case{1, "1\r\n"}, Case{15, "f\r\n"}, Case{16, "10\r\n"},
                        Case{255, "ff\r\n"}, Case{4096, "1000\r\n"},
                        Case{SIZE_MAX, "ffffffffffffffff\r\n"}}) {
    std::string out = "<";
    append_chunk_size(out, c.n);
    EXPECT_EQ(out, std::string("<") + c.text) << c.n;
  }
}

TEST(Serialize, ResponseRoundTripsThroughParserAndDecoder) {
  std::string wire;
  append_status_line(wire, 201);
  append_header(wire, "Content-Type", "text/event-stream");
  append_header(wire, "Transfer-Encoding", "chunked");
  wire += "\r\n";
  const std::string parts[] = {"data: {\"a\":1}\n\n", std::string(300, 'z'), "x"};
  for (const std::string& p : parts) {
    append_chunk_size(wire, p.size());
    wire += p;
    wire += "\r\n";
  }
  wire += kLastChunk;

  ResponseHead head;
  ParseResult r = parse_response_head(wire, head, Limits{});
  ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
  EXPECT_EQ(head.status, 201);
  EXPECT_EQ(head.reason, "Created");
  EXPECT_TRUE(head.chunked);

  ChunkedDecoder dec;
  std::string_view body = std::string_view(wire).substr(r.consumed);
  std::string payload;
  for (;;) {
    auto s = dec.decode(body);
    ASSERT_FALSE(s.error) << s.error_msg;
    payload.append(s.data);
    body.remove_prefix(s.consumed);
    if (s.done) break;
    ASSERT_FALSE(s.consumed == 0 && s.data.empty());
  }
  EXPECT_TRUE(body.empty());
  EXPECT_EQ(payload, parts[0] + parts[1] + parts[2]);
}

}  // namespace
}  // namespace sluice::http::h1
