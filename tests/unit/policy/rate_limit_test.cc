#include "policy/rate_limit.h"

#include <gtest/gtest.h>

namespace sluice::policy {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kMin = 60 * kS;
constexpr int64_t kT0 = 1020 * kS;  // a whole minute (windows align to whole minutes)

TEST(SlidingWindow, AdmitsUpToTheLimitPerMinute) {
  SlidingWindow w(10, kMin);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(w.try_add(kT0 + i * kS, 1)) << i;
  EXPECT_FALSE(w.try_add(kT0 + 11 * kS, 1));
  EXPECT_EQ(w.remaining(kT0 + 11 * kS), 0u);
  // Half-way into the next window, half of the previous window still counts.
  EXPECT_EQ(w.remaining(kT0 + kMin + 30 * kS), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(w.try_add(kT0 + kMin + 30 * kS, 1));
  EXPECT_FALSE(w.try_add(kT0 + kMin + 30 * kS, 1));
  // Two windows later nothing counts.
  EXPECT_EQ(w.remaining(kT0 + 3 * kMin), 10u);
}

TEST(SlidingWindow, NoDoubleBurstAtTheWindowEdge) {
  SlidingWindow w(100, kMin);
  ASSERT_TRUE(w.try_add(kT0 + 59 * kS, 100));  // all at the end of the first window
  // Just after the edge the previous window still weighs ~98%.
  EXPECT_FALSE(w.try_add(kT0 + kMin + kS, 10));
  uint64_t admitted = 0;
  for (int64_t t = kT0 + kMin; t < kT0 + kMin + 59 * kS; t += kS / 10)
    if (w.try_add(t, 1)) ++admitted;
  // In the sliding minute that ends at 1:59 at most ~100 were admitted in all.
  EXPECT_LE(admitted, 100u);
  EXPECT_GE(admitted, 90u);
}

TEST(SlidingWindow, ReservationsSettleBothWays) {
  SlidingWindow w(1000, kMin);
  ASSERT_TRUE(w.try_add(kT0, 600));  // the estimate
  w.adjust(kT0 + kS, -400);          // it used 200: refund
  EXPECT_EQ(w.remaining(kT0 + kS), 800u);
  ASSERT_TRUE(w.try_add(kT0 + kS, 700));
  w.adjust(kT0 + 2 * kS, 250);  // it used more than reserved: charged
  EXPECT_EQ(w.remaining(kT0 + 2 * kS), 0u);
  EXPECT_FALSE(w.try_add(kT0 + 2 * kS, 1));
}

TEST(SlidingWindow, WaitForSaysWhenACostFits) {
  SlidingWindow w(100, kMin);
  ASSERT_TRUE(w.try_add(kT0, 100));
  const int64_t wait = w.wait_for(kT0 + 10 * kS, 10);
  EXPECT_GT(wait, 0);
  EXPECT_FALSE(w.try_add(kT0 + 10 * kS + wait - kS, 10));
  EXPECT_TRUE(w.try_add(kT0 + 10 * kS + wait + kS, 10));
  EXPECT_EQ(w.wait_for(kT0, 1000), kMin);  // never fits
  EXPECT_EQ(SlidingWindow().wait_for(kT0, 5), 0);
}

TEST(Budget, CalendarDaysAndMonths) {
  const int64_t jan31 = 1706659200 + 23 * 3600;  // 2024-01-31 23:00 UTC
  Budget day(1000, Budget::Period::kDay), month(5000, Budget::Period::kMonth);
  ASSERT_TRUE(day.try_add(jan31, 900));
  EXPECT_FALSE(day.try_add(jan31, 200));
  EXPECT_EQ(day.reset_in(jan31), 3600);
  EXPECT_TRUE(day.try_add(jan31 + 3600, 1000));  // a new day
  ASSERT_TRUE(month.try_add(jan31, 4000));
  EXPECT_EQ(month.reset_in(jan31), 3600);        // February starts in an hour
  EXPECT_TRUE(month.try_add(jan31 + 3600, 5000));
  // Settling: a stream cut short is charged what it used.
  Budget b(100, Budget::Period::kDay);
  ASSERT_TRUE(b.try_add(jan31, 80));
  b.adjust(jan31, -50);
  EXPECT_EQ(b.used(jan31), 30u);
  // Restored spend counts only in its own period.
  Budget r(100, Budget::Period::kDay);
  r.restore(jan31, r.period_key(jan31), 70);
  r.restore(jan31, r.period_key(jan31) - 1, 70);
  EXPECT_EQ(r.used(jan31), 70u);
  EXPECT_FALSE(r.try_add(jan31, 31));
}

}  // namespace
}  // namespace sluice::policy
