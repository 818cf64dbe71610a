// upstream::Connection's read path over a real loopback socket: pieces of a
// chunked body, and whether the body's end is known with its last piece.
#include "upstream/connection.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace sluice::upstream {
namespace {

namespace asio = boost::asio;

struct Piece {
  std::string data;
  bool complete;  // body_complete() right after it
};

// Serves `parts` (written one by one, each after the client read the previous
// piece) and reads the response with a Connection: the pieces and what
// body_complete() said after each.
std::vector<Piece> read_response(const std::vector<std::string>& parts, bool* reusable) {
  asio::io_context ctx;
  tcp::acceptor acc(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket server(ctx);
  std::vector<Piece> got;
  bool done = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        Connection c(ctx.get_executor(), nullptr, "");
        Status s = co_await c.connect(acc.local_endpoint());
        EXPECT_TRUE(s.is_ok()) << s.message();
        server = co_await acc.async_accept(asio::use_awaitable);
        size_t next = 0;
        co_await asio::async_write(server, asio::buffer(parts[next++]), asio::use_awaitable);
        s = co_await c.read_head(false);
        EXPECT_TRUE(s.is_ok()) << s.message();
        for (;;) {
          auto piece = co_await c.read_body();
          EXPECT_TRUE(piece.has_value());
          if (!piece || piece->empty()) break;
          got.push_back({std::string(*piece), c.body_complete()});
          if (!c.body_complete() && next < parts.size())
            co_await asio::async_write(server, asio::buffer(parts[next++]), asio::use_awaitable);
        }
        *reusable = c.reusable();
        done = true;
      },
      asio::detached);
  ctx.run_for(std::chrono::seconds(10));
  EXPECT_TRUE(done);
  return got;
}

constexpr std::string_view kHead = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

TEST(UpstreamConnection, LastChunkArrivingWithTheLastPieceEndsTheBodyThen) {
  bool reusable = false;
  auto got = read_response({std::string(kHead) + "5\r\nhello\r\n0\r\n\r\n"}, &reusable);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, "hello");
  EXPECT_TRUE(got[0].complete);
  EXPECT_TRUE(reusable);
}

TEST(UpstreamConnection, LastChunkArrivingLaterIsReadThen) {
  bool reusable = false;
  auto got = read_response({std::string(kHead) + "5\r\nhello\r\n", "0\r\n\r\n"}, &reusable);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, "hello");
  EXPECT_FALSE(got[0].complete);
  EXPECT_TRUE(reusable);
}

TEST(UpstreamConnection, ChunksReceivedTogetherBecomeOnePiece) {
  bool reusable = false;
  auto got = read_response({std::string(kHead) + "5\r\nhello\r\n6;ext=1\r\n world\r\n1\r\n!\r\n0\r\n"
                                                 "x-trailer: 1\r\n\r\n"},
                           &reusable);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, "hello world!");
  EXPECT_TRUE(got[0].complete);  // the last chunk and its trailer were there
  EXPECT_TRUE(reusable);
}

TEST(UpstreamConnection, APartialChunkAfterTheFirstWaitsForItsBytes) {
  bool reusable = false;
  auto got = read_response({std::string(kHead) + "5\r\nhello\r\n6\r\n wo", "rld\r\n0\r\n\r\n"}, &reusable);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].data, "hello wo");  // the payload bytes received so far go on at once
  EXPECT_FALSE(got[0].complete);
  EXPECT_EQ(got[1].data, "rld");
  EXPECT_TRUE(got[1].complete);
  EXPECT_TRUE(reusable);
}

TEST(UpstreamConnection, ContentLengthBodyEndsWithItsLastByte) {
  bool reusable = false;
  auto got = read_response({"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel", "lo"}, &reusable);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].data, "hel");
  EXPECT_FALSE(got[0].complete);
  EXPECT_EQ(got[1].data, "lo");
  EXPECT_TRUE(got[1].complete);
  EXPECT_TRUE(reusable);
}

}  // namespace
}  // namespace sluice::upstream
