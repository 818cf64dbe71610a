#include "policy/concurrency.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::policy {
namespace {

namespace asio = boost::asio;
using Outcome = ConcurrencyLimit::Outcome;

struct Waiter {
  ConcurrencyLimit::Wait wait;
  std::optional<Outcome> outcome;
  std::chrono::steady_clock::time_point done_at;
};

asio::awaitable<void> wait_for(ConcurrencyLimit* l, Waiter* w, std::vector<int>* order, int id) {
  w->outcome = co_await l->acquire(co_await asio::this_coro::executor, w->wait);
  w->done_at = std::chrono::steady_clock::now();
  if (*w->outcome == Outcome::kAcquired) order->push_back(id);
}

asio::awaitable<void> release_after(ConcurrencyLimit* l, asio::io_context* ctx, int ms) {
  asio::steady_timer t(*ctx, std::chrono::milliseconds(ms));
  co_await t.async_wait(asio::use_awaitable);
  l->release();
}

TEST(ConcurrencyLimit, SlotsWithoutWaitingThenQueueThenRejection) {
  // N slots, Q places in the queue, K more: exactly K fast rejections, the
  // queued ones served in order of arrival as slots free.
  constexpr int N = 3, Q = 4, K = 2;
  ConcurrencyLimit l({.max = N, .queue = Q, .queue_timeout_ms = 5000});
  for (int i = 0; i < N; ++i) ASSERT_TRUE(l.try_acquire());
  EXPECT_FALSE(l.try_acquire());

  asio::io_context ctx;
  std::vector<Waiter> w(Q + K);
  std::vector<int> order;
  for (int i = 0; i < Q + K; ++i) asio::co_spawn(ctx, wait_for(&l, &w[i], &order, i), asio::detached);
  ctx.run_for(std::chrono::milliseconds(20));
  int rejected = 0;
  for (auto& x : w) rejected += x.outcome == Outcome::kQueueFull;
  EXPECT_EQ(rejected, K);
  EXPECT_EQ(l.queued(), static_cast<size_t>(Q));
  EXPECT_EQ(l.active(), static_cast<uint32_t>(N));

  for (int i = 0; i < Q; ++i) asio::co_spawn(ctx, release_after(&l, &ctx, 5 * (i + 1)), asio::detached);
  ctx.restart();
  ctx.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));  // arrival order
  EXPECT_EQ(l.queued(), 0u);
  EXPECT_EQ(l.active(), static_cast<uint32_t>(N));  // slots were handed over, never freed
  for (int i = 0; i < N; ++i) l.release();
  EXPECT_EQ(l.active(), 0u);
}

TEST(ConcurrencyLimit, ReconfiguredByAReload) {
  // A raised limit lets the oldest waiters in at once; a lowered one is not
  // passed on by releases until the count is under it.
  ConcurrencyLimit l({.max = 2, .queue = 4, .queue_timeout_ms = 5000});
  ASSERT_TRUE(l.try_acquire());
  ASSERT_TRUE(l.try_acquire());
  asio::io_context ctx;
  std::vector<Waiter> w(3);
  std::vector<int> order;
  for (int i = 0; i < 3; ++i) asio::co_spawn(ctx, wait_for(&l, &w[i], &order, i), asio::detached);
  ctx.run_for(std::chrono::milliseconds(20));
  ASSERT_EQ(l.queued(), 3u);
  l.reconfigure({.max = 4, .queue = 4, .queue_timeout_ms = 5000});
  ctx.restart();
  ctx.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(order, (std::vector<int>{0, 1}));  // two more slots, to the two oldest
  EXPECT_EQ(l.active(), 4u);
  EXPECT_EQ(l.queued(), 1u);

  l.reconfigure({.max = 2, .queue = 4, .queue_timeout_ms = 5000});
  EXPECT_EQ(l.options().max, 2u);
  l.release();  // 4 -> 3: over the new limit, so the waiter is not let in
  ctx.restart();
  ctx.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(order.size(), 2u);
  EXPECT_EQ(l.active(), 3u);
  l.release();  // 3 -> 2: still not under it
  l.release();  // at 2 with a waiter: the slot passes to it
  ctx.restart();
  ctx.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(l.active(), 2u);
  EXPECT_FALSE(l.try_acquire());
  l.release();
  l.release();
  EXPECT_EQ(l.active(), 0u);
}

TEST(ConcurrencyLimit, QueueTimeoutAndCancel) {
  ConcurrencyLimit l({.max = 1, .queue = 2, .queue_timeout_ms = 30});
  ASSERT_TRUE(l.try_acquire());
  asio::io_context ctx;
  std::vector<Waiter> w(2);
  std::vector<int> order;
  const auto t0 = std::chrono::steady_clock::now();
  asio::co_spawn(ctx, wait_for(&l, &w[0], &order, 0), asio::detached);
  asio::co_spawn(ctx, wait_for(&l, &w[1], &order, 1), asio::detached);
  ctx.run_for(std::chrono::milliseconds(5));
  w[1].wait.cancel();  // its client went away: it leaves at once
  ctx.run_for(std::chrono::milliseconds(5));
  EXPECT_EQ(w[1].outcome, Outcome::kCancelled);
  EXPECT_EQ(l.queued(), 1u);
  ctx.restart();
  ctx.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(w[0].outcome, Outcome::kTimedOut);
  EXPECT_GE(w[0].done_at - t0, std::chrono::milliseconds(30));
  EXPECT_EQ(l.queued(), 0u);
  l.release();
  EXPECT_EQ(l.active(), 0u);
  EXPECT_TRUE(order.empty());
}

TEST(ConcurrencyLimit, UnlimitedNeverCounts) {
  ConcurrencyLimit l({});
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(l.try_acquire());
  l.release();
  EXPECT_EQ(l.active(), 0u);
}

TEST(ConcurrencyLimit, HandsOverAcrossThreads) {
  // Two "workers" contend for 2 slots; every acquisition is matched by a
  // release and the count never exceeds the limit.
  ConcurrencyLimit l({.max = 2, .queue = 1000, .queue_timeout_ms = 10'000});
  std::atomic<int> inside{0}, peak{0}, served{0};
  auto worker = [&] {
    asio::io_context ctx;
    auto one = [&]() -> asio::awaitable<void> {
      ConcurrencyLimit::Wait wait;
      if (co_await l.acquire(co_await asio::this_coro::executor, wait) != Outcome::kAcquired) co_return;
      int now = ++inside;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
      asio::steady_timer t(ctx, std::chrono::microseconds(200));
      co_await t.async_wait(asio::use_awaitable);
      --inside;
      ++served;
      l.release();
    };
    for (int i = 0; i < 100; ++i) asio::co_spawn(ctx, one(), asio::detached);
    ctx.run();
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  EXPECT_EQ(served.load(), 200);
  EXPECT_LE(peak.load(), 2);
  EXPECT_EQ(l.active(), 0u);
}

}  // namespace
}  // namespace sluice::policy
