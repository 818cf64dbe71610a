#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "core/clock.h"
#include "net/deadline.h"
#include "net/listener.h"

namespace sluice::net {
namespace {

TEST(ListenAddress, Parses) {
  auto a = parse_listen_address("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->port(), 8080);
  auto b = parse_listen_address("[::1]:0");
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->address().is_v6());
  auto c = parse_listen_address(":9000");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->address().to_string(), "0.0.0.0");
  for (const char* bad : {"", "8080", "host:80", "127.0.0.1:70000", "127.0.0.1:x", "[::1]8080"}) {
    EXPECT_FALSE(parse_listen_address(bad)) << bad;
  }
}

TEST(Deadline, FiresOnceAfterExtension) {
  boost::asio::io_context ctx;
  int fired = 0;
  int64_t fired_at = 0;
  Deadline d(ctx.get_executor(), [&] {
    ++fired;
    fired_at = SteadyClock::mono_ns();
  });
  int64_t start = SteadyClock::mono_ns();
  d.arm_ms(20);
  d.arm_ms(60);  // extended: only stores the new time
  ctx.run_for(std::chrono::milliseconds(300));
  EXPECT_EQ(fired, 1);
  EXPECT_GE(fired_at - start, 55'000'000);
  EXPECT_TRUE(d.expired());
}

TEST(Deadline, EarlierArmAndDisarm) {
  boost::asio::io_context ctx;
  int fired = 0;
  Deadline d(ctx.get_executor(), [&] { ++fired; });
  d.arm_ms(10'000);
  d.arm_ms(10);  // earlier: re-armed
  ctx.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(fired, 1);

  Deadline e(ctx.get_executor(), [&] { ++fired; });
  e.arm_ms(10);
  e.disarm();
  ctx.restart();
  ctx.run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(fired, 1);
}

TEST(Deadline, DestroyedWhileWaitingIsSafe) {
  boost::asio::io_context ctx;
  int fired = 0;
  {
    Deadline d(ctx.get_executor(), [&] { ++fired; });
    d.arm_ms(5);
  }
  ctx.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(fired, 0);
}

}  // namespace
}  // namespace sluice::net
