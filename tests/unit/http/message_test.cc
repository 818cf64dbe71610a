#include "http/message.h"

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

TEST(Message, Iequals) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_TRUE(iequals("X-API-KEY", "x-api-key"));
  EXPECT_FALSE(iequals("Content-Length", "Content-Lengt"));
  EXPECT_FALSE(iequals("a", "b"));
  EXPECT_FALSE(iequals("[", "{"));    // 0x5b vs 0x7b: not letters, no folding
  EXPECT_FALSE(iequals("\xc9", "\xe9"));  // non-ASCII is not folded
}

TEST(Message, RequestFindReturnsFirstMatch) {
  RequestHead h;
  h.headers = {{"Host", "a"}, {"X-Dup", "1"}, {"x-dup", "2"}};
  EXPECT_EQ(h.find("HOST"), "a");
  EXPECT_EQ(h.find("x-DUP"), "1");
  EXPECT_EQ(h.find("missing"), "");
  EXPECT_TRUE(h.find("missing").empty());
}

TEST(Message, ResponseFind) {
  ResponseHead h;
  h.headers = {{"Content-Type", "text/event-stream"}};
  EXPECT_EQ(h.find("content-type"), "text/event-stream");
  EXPECT_EQ(h.find("content-length"), "");
}

TEST(Message, Path) {
  struct Case {
    std::string_view target, path;
  };
  for (const Case& c : {Case{"/v1/chat/completions", "/v1/chat/completions"},
                        Case{"/v1/models?limit=10", "/v1/models"},
                        Case{"/a#frag", "/a"},
                        Case{"/", "/"},
                        Case{"/?", "/"},
                        Case{"http://host:8080/v1/x?y", "/v1/x"},
                        Case{"https://host", "/"},
                        Case{"https://host?q=1", "/"},
                        Case{"*", "*"}}) {
    RequestHead h;
    h.target = c.target;
    EXPECT_EQ(h.path(), c.path) << c.target;
  }
}

TEST(Message, HopByHop) {
  for (std::string_view n : {"Connection", "keep-alive", "Proxy-Connection", "TE",
                             "Transfer-Encoding", "Upgrade", "Trailer", "Proxy-Authenticate",
                             "proxy-authorization"}) {
    EXPECT_TRUE(is_hop_by_hop(n)) << n;
  }
  for (std::string_view n : {"Content-Length", "Content-Type", "Authorization", "Host", "Te-x",
                             "Trailers", "", "X-Connection"}) {
    EXPECT_FALSE(is_hop_by_hop(n)) << n;
  }
}

TEST(Message, ReasonPhrase) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(400), "Bad Request");
  EXPECT_EQ(reason_phrase(429), "Too Many Requests");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(502), "Bad Gateway");
  EXPECT_EQ(reason_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(reason_phrase(799), "");
  EXPECT_EQ(reason_phrase(-1), "");
}

}  // namespace
}  // namespace sluice::http

namespace sluice::http {
namespace {

TEST(Message, RebaseMovesEveryViewToTheCopy) {
  std::string a = "POST /v1/x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n";
  RequestHead h;
  h.method = std::string_view(a).substr(0, 4);
  h.target = std::string_view(a).substr(5, 5);
  h.headers.push_back({std::string_view(a).substr(21, 4), std::string_view(a).substr(27, 1)});
  std::string b = a;
  rebase(h, a.data(), b.data());
  a.assign(a.size(), 'z');  // the original bytes are gone
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/v1/x");
  EXPECT_EQ(h.headers[0].name, "Host");
  EXPECT_EQ(h.headers[0].value, "h");
  EXPECT_EQ(h.method.data(), b.data());
}

}  // namespace
}  // namespace sluice::http
