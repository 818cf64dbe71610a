// The body limits (BodyClock) and the connection set's idle eviction.
#include "http/server_common.h"

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

constexpr int64_t kMs = 1'000'000;

ServerOptions body_opts() {
  ServerOptions o;
  o.body_timeout_ms = 10'000;      // gap
  o.body_deadline_ms = 30'000;     // whole body
  o.min_body_rate = 1000;          // bytes/s
  o.min_body_rate_grace_ms = 5'000;
  return o;
}

TEST(BodyClock, GraceThenMinimumRate) {
  ServerOptions o = body_opts();
  BodyClock c(o, 0);
  // Nothing arrived: the first wait ends when the grace does.
  EXPECT_EQ(c.next_wait_ms(0, 0), 5'000);
  EXPECT_EQ(c.broken(0, 4'999 * kMs), nullptr);
  EXPECT_STREQ(c.broken(0, 5'000 * kMs), "min_body_rate");
  // 6 000 bytes by t=5 s keeps the average above 1 000/s until t=6 s.
  c.progress(5'000 * kMs);
  EXPECT_EQ(c.next_wait_ms(6'000, 5'000 * kMs), 1'000);
  EXPECT_EQ(c.broken(6'000, 5'999 * kMs), nullptr);
  EXPECT_STREQ(c.broken(6'000, 6'001 * kMs), "min_body_rate");
}

TEST(BodyClock, DeadlineAndGap) {
  ServerOptions o = body_opts();
  o.min_body_rate = 0;  // off
  BodyClock c(o, 0);
  EXPECT_EQ(c.next_wait_ms(0, 0), 10'000);  // the gap
  EXPECT_STREQ(c.broken(0, 10'000 * kMs), "body_gap");
  c.progress(25'000 * kMs);
  EXPECT_EQ(c.next_wait_ms(100, 25'000 * kMs), 5'000);  // the deadline comes first
  EXPECT_STREQ(c.broken(100, 30'000 * kMs), "body_timeout");
  EXPECT_NE(BodyClock::describe("min_body_rate").find("too slowly"), std::string_view::npos);
}

struct FakeConn : ConnectionSet::Member {
  explicit FakeConn(bool i) : is_idle(i) {}
  void drain() override { ++drained; }
  bool idle() const override { return is_idle; }
  bool is_idle;
  int drained = 0;
};

TEST(ConnectionSet, ClosesTheOldestIdleConnectionFirst) {
  ConnectionSet set;
  FakeConn a(true), b(false), c(true), d(false);  // a is the oldest
  for (FakeConn* m : {&a, &b, &c, &d}) set.add(m);
  EXPECT_TRUE(set.close_oldest_idle());
  EXPECT_EQ(a.drained, 1);
  EXPECT_TRUE(set.close_oldest_idle());  // a is already on its way out
  EXPECT_EQ(c.drained, 1);
  EXPECT_FALSE(set.close_oldest_idle());  // b and d are busy
  EXPECT_EQ(b.drained + d.drained, 0);
  set.remove(&a);
  set.remove(&d);  // the tail moves correctly as members leave
  FakeConn e(true);
  set.add(&e);
  b.is_idle = true;
  EXPECT_TRUE(set.close_oldest_idle());
  EXPECT_EQ(b.drained, 1);
  set.remove(&b);
  set.remove(&c);
  set.remove(&e);
  EXPECT_EQ(set.size(), 0u);
}

}  // namespace
}  // namespace sluice::http
