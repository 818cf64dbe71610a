// RedisClient against a real redis-server started on a free loopback port.
#include "net/redis_client.h"

#include "unit/redis_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

namespace sluice::net {
namespace {

using sluice::testing::free_port;
using sluice::testing::RedisServer;

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// Runs one command to completion on a fresh io_context turn.
Result<RedisReply> run(asio::io_context& ctx, RedisClient& c, std::vector<std::string> argv, int64_t timeout_ms) {
  std::optional<Result<RedisReply>> out;
  asio::co_spawn(ctx, [](RedisClient* c, std::vector<std::string> argv, int64_t t,
                         std::optional<Result<RedisReply>>* out) -> asio::awaitable<void> {
    *out = co_await c->command(std::move(argv), t);
  }(&c, std::move(argv), timeout_ms, &out), asio::detached);
  ctx.restart();
  while (!out) ctx.run_one_for(std::chrono::seconds(5));
  return std::move(*out);
}

// Retries PING until the server answers (it starts asynchronously).
bool wait_ready(asio::io_context& ctx, RedisClient& c) {
  for (int i = 0; i < 100; ++i) {
    auto r = run(ctx, c, {"PING"}, 200);
    if (r && r->type == RedisReply::Type::kStatus && r->str == "PONG") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(RedisClient, CommandsRepliesAndErrors) {
  const uint16_t port = free_port();
  RedisServer server(port);
  asio::io_context ctx;
  RedisClient c(ctx.get_executor(), {.port = port, .reconnect_interval_ms = 20});
  ASSERT_TRUE(wait_ready(ctx, c));
  EXPECT_TRUE(c.connected());
  auto set = run(ctx, c, {"SET", "k", std::string("v\0w", 3)}, 500);
  ASSERT_TRUE(set.has_value());
  EXPECT_EQ(set->str, "OK");
  auto get = run(ctx, c, {"GET", "k"}, 500);
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->type, RedisReply::Type::kString);
  EXPECT_EQ(get->str, std::string("v\0w", 3));
  auto eval = run(ctx, c, {"EVAL", "return {1, 'two', redis.call('INCRBY', KEYS[1], ARGV[1])}", "1", "n", "5"}, 500);
  ASSERT_TRUE(eval.has_value());
  ASSERT_EQ(eval->type, RedisReply::Type::kArray);
  ASSERT_EQ(eval->elements.size(), 3u);
  EXPECT_EQ(eval->elements[1].str, "two");
  EXPECT_EQ(eval->elements[2].integer, 5);
  auto bad = run(ctx, c, {"NOSUCHCOMMAND"}, 500);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->type, RedisReply::Type::kError);
  EXPECT_EQ(run(ctx, c, {"GET", "missing"}, 500)->type, RedisReply::Type::kNil);
}

TEST(RedisClient, DeadlineHoldsWhenRedisHangs) {
  const uint16_t port = free_port();
  RedisServer server(port);
  asio::io_context ctx;
  RedisClient c(ctx.get_executor(), {.port = port, .reconnect_interval_ms = 20});
  ASSERT_TRUE(wait_ready(ctx, c));
  server.pause();
  const auto t0 = Clock::now();
  auto r = run(ctx, c, {"PING"}, 30);
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), Errc::kTimeout);
  EXPECT_GE(took, std::chrono::milliseconds(30));
  EXPECT_LT(took, std::chrono::milliseconds(500));
  server.resume();
  // The late reply to the abandoned PING is dropped; the connection goes on.
  auto again = run(ctx, c, {"ECHO", "still here"}, 1000);
  ASSERT_TRUE(again.has_value()) << again.status().message();
  EXPECT_EQ(again->str, "still here");
}

TEST(RedisClient, FailsFastWhileDownAndReconnects) {
  const uint16_t port = free_port();
  auto server = std::make_unique<RedisServer>(port);
  asio::io_context ctx;
  RedisClient c(ctx.get_executor(), {.port = port, .reconnect_interval_ms = 20});
  ASSERT_TRUE(wait_ready(ctx, c));
  server.reset();  // killed
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // The next commands fail (the connection is gone) without waiting for their deadline.
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    auto r = run(ctx, c, {"PING"}, 2000);
    EXPECT_FALSE(r.has_value());
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1000));
  }
  EXPECT_FALSE(c.connected());
  server = std::make_unique<RedisServer>(port);
  ASSERT_TRUE(wait_ready(ctx, c)) << "no reconnect";
  EXPECT_TRUE(c.connected());
}

}  // namespace
}  // namespace sluice::net
