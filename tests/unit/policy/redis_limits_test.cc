// The Redis-backed limits against a real redis-server: the reserve and
// settle scripts, NOSCRIPT recovery, and the circuit breaker.
#include "policy/redis_limits.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "core/clock.h"
#include "unit/redis_server.h"

namespace sluice::policy {
namespace {

namespace asio = boost::asio;
using testing::free_port;
using testing::RedisServer;
using Verdict = RedisLimiter::Verdict;

struct Env {
  uint16_t port = free_port();
  std::unique_ptr<RedisServer> server = std::make_unique<RedisServer>(port);
  asio::io_context ctx;
  net::RedisClient client{ctx.get_executor(), {.port = port, .reconnect_interval_ms = 20}};
  RedisLimiter lim{client, {.timeout_ms = 200, .window_ms = 60'000, .breaker_failures = 3, .breaker_open_ms = 300}};

  RedisLimiter::Outcome reserve(std::vector<RedisLimit> limits, int64_t now_ms) {
    std::optional<RedisLimiter::Outcome> out;
    asio::co_spawn(ctx, do_reserve(&lim, std::move(limits), now_ms, &out), asio::detached);
    ctx.restart();
    while (!out) ctx.run_one_for(std::chrono::seconds(5));
    return *out;
  }
  void settle(std::vector<std::pair<std::string, int64_t>> d) {
    bool done = false;
    asio::co_spawn(ctx, do_settle(&lim, std::move(d), &done), asio::detached);
    ctx.restart();
    while (!done) ctx.run_one_for(std::chrono::seconds(5));
  }
  static asio::awaitable<void> do_reserve(RedisLimiter* l, std::vector<RedisLimit> limits, int64_t now,
                                          std::optional<RedisLimiter::Outcome>* out) {
    *out = co_await l->reserve(limits, now);
  }
  static asio::awaitable<void> do_settle(RedisLimiter* l, std::vector<std::pair<std::string, int64_t>> d, bool* done) {
    co_await l->settle(std::move(d));
    *done = true;
  }
  bool ready() {
    for (int i = 0; i < 100; ++i) {
      if (reserve({}, 1).verdict == Verdict::kAdmit) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
};

asio::awaitable<void> script_flush(net::RedisClient* c, bool* done) {
  std::vector<std::string> argv{"SCRIPT", "FLUSH"};
  (void)co_await c->command(std::move(argv), 500);
  *done = true;
}

constexpr int64_t kMin = 60'000;
constexpr int64_t kT0 = 28'333'334 * kMin;  // a whole minute, in ms

TEST(RedisLimits, SlidingWindowAdmitsUpToTheLimit) {
  Env e;
  ASSERT_TRUE(e.ready());
  RedisLimit tpm{.base = "sluice:test:{k}:tpm", .window = true, .limit = 1000, .cost = 400};
  EXPECT_EQ(e.reserve({tpm}, kT0 + 1000).verdict, Verdict::kAdmit);
  auto second = e.reserve({tpm}, kT0 + 2000);
  ASSERT_EQ(second.verdict, Verdict::kAdmit);
  ASSERT_EQ(second.counters.size(), 1u);
  EXPECT_EQ(second.counters[0], "sluice:test:{k}:tpm:" + std::to_string(kT0 / kMin));
  auto third = e.reserve({tpm}, kT0 + 3000);
  EXPECT_EQ(third.verdict, Verdict::kRefuse);
  EXPECT_EQ(third.limit, 0u);
  EXPECT_GT(third.wait_ms, 0);
  // Settling refunds what was not used: 2 x 400 reserved, 2 x 100 used.
  e.settle({{second.counters[0], -300}, {second.counters[0], -300}});
  EXPECT_EQ(e.reserve({tpm}, kT0 + 4000).verdict, Verdict::kAdmit);
  // Half-way into the next minute half of the previous one (600) still counts: 300 + 750 > 1000.
  RedisLimit big = tpm;
  big.cost = 750;
  EXPECT_EQ(e.reserve({big}, kT0 + kMin + 30'000).verdict, Verdict::kRefuse);
  big.cost = 700;
  EXPECT_EQ(e.reserve({big}, kT0 + kMin + 30'000).verdict, Verdict::kAdmit);
}

TEST(RedisLimits, AllOrNothingAcrossLimitsAndBudgets) {
  Env e;
  ASSERT_TRUE(e.ready());
  RedisLimit rpm{.base = "sluice:test:{k}:rpm", .window = true, .limit = 10, .cost = 1};
  RedisLimit day{.base = "sluice:test:{k}:tokens_day", .window = false, .limit = 500, .cost = 300, .period = 19700};
  EXPECT_EQ(e.reserve({rpm, day}, kT0).verdict, Verdict::kAdmit);
  auto r = e.reserve({rpm, day}, kT0 + 1);
  ASSERT_EQ(r.verdict, Verdict::kRefuse);
  EXPECT_EQ(r.limit, 1u);       // the budget
  EXPECT_EQ(r.wait_ms, -1);     // until its period ends
  // Nothing was charged by the refused call: 9 more requests fit the rpm limit.
  day.cost = 0;
  for (int i = 0; i < 9; ++i) EXPECT_EQ(e.reserve({rpm, day}, kT0 + 2 + i).verdict, Verdict::kAdmit) << i;
  EXPECT_EQ(e.reserve({rpm, day}, kT0 + 20).verdict, Verdict::kRefuse);
}

TEST(RedisLimits, ScriptsReloadAfterAFlush) {
  Env e;
  ASSERT_TRUE(e.ready());
  RedisLimit rpm{.base = "sluice:test:{f}:rpm", .window = true, .limit = 5, .cost = 1};
  EXPECT_EQ(e.reserve({rpm}, kT0).verdict, Verdict::kAdmit);
  bool flushed = false;
  asio::co_spawn(e.ctx, script_flush(&e.client, &flushed), asio::detached);
  e.ctx.restart();
  while (!flushed) e.ctx.run_one_for(std::chrono::seconds(5));
  EXPECT_EQ(e.reserve({rpm}, kT0 + 1).verdict, Verdict::kAdmit);  // NOSCRIPT -> EVAL
}

TEST(RedisLimits, BreakerOpensWhenRedisIsGoneAndClosesWhenItIsBack) {
  Env e;
  ASSERT_TRUE(e.ready());
  e.server.reset();
  RedisLimit rpm{.base = "sluice:test:{b}:rpm", .window = true, .limit = 5, .cost = 1};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(e.reserve({rpm}, kT0).verdict, Verdict::kUnavailable);
  const int64_t now = wall_us() / 1000;
  EXPECT_TRUE(e.lim.breaker_open(now));
  bool opened = false;
  ASSERT_TRUE(e.lim.take_transition(opened));
  EXPECT_TRUE(opened);
  e.server = std::make_unique<RedisServer>(e.port);
  std::this_thread::sleep_for(std::chrono::milliseconds(350));  // the breaker's open time
  bool admitted = false;
  for (int i = 0; i < 100 && !admitted; ++i) {
    admitted = e.reserve({rpm}, kT0).verdict == Verdict::kAdmit;
    if (!admitted) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(admitted);
  ASSERT_TRUE(e.lim.take_transition(opened));
  EXPECT_FALSE(opened);
}

}  // namespace
}  // namespace sluice::policy
