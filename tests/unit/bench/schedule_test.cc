#include "bench/schedule.h"

#include <gtest/gtest.h>

#include <set>

namespace sluice::bench {
namespace {

constexpr int64_t kT0 = 5'000'000'000;
constexpr int64_t kMs = 1'000'000;

TEST(Schedule, OpenLoopIntendedTimesAreFixedWhateverTheClock) {
  ScheduleParams p;
  p.start_ns = kT0;
  p.rate = 1000;
  RequestSchedule s(p);
  EXPECT_TRUE(s.open_loop());
  // Claimed early, late, or very late: the intended time depends on k only.
  for (int64_t now : {int64_t{0}, kT0, kT0 + 500 * kMs, kT0 + 10'000 * kMs}) {
    auto slot = s.claim(now);
    ASSERT_TRUE(slot);
    EXPECT_EQ(slot->intended_ns, kT0 + static_cast<int64_t>(slot->index) * kMs);
    EXPECT_TRUE(slot->measured);
  }
  // No drift: computed from k, not accumulated.
  ScheduleParams q = p;
  q.rate = 3;
  RequestSchedule thirds(q);
  EXPECT_EQ(thirds.intended_ns(3'000'000), kT0 + 1'000'000LL * 1'000'000'000LL);
  EXPECT_EQ(thirds.intended_ns(1), kT0 + 333'333'333);
  EXPECT_EQ(thirds.intended_ns(2), kT0 + 666'666'667);
}

TEST(Schedule, ThreadsInterleaveOneGlobalSchedule) {
  std::set<int64_t> times;
  for (uint32_t j = 0; j < 3; ++j) {
    ScheduleParams p;
    p.start_ns = kT0;
    p.rate = 300;
    p.threads = 3;
    p.thread_index = j;
    p.end_ns = kT0 + 1'000 * kMs;  // one second: 300 slots in all
    RequestSchedule s(p);
    uint64_t expect_k = j;
    while (auto slot = s.claim(0)) {
      EXPECT_EQ(slot->index, expect_k);
      expect_k += 3;
      EXPECT_TRUE(times.insert(slot->intended_ns).second);
    }
    EXPECT_EQ(s.claimed(), 100u);
  }
  ASSERT_EQ(times.size(), 300u);
  // Evenly spaced over the whole run.
  int64_t prev = kT0 - 3'333'333;
  for (int64_t t : times) {
    EXPECT_NEAR(static_cast<double>(t - prev), 3'333'333.3, 1.0);
    prev = t;
  }
}

TEST(Schedule, OpenLoopWarmupAndRequestLimit) {
  uint64_t measured = 0, warm = 0;
  for (uint32_t j = 0; j < 2; ++j) {
    ScheduleParams p;
    p.start_ns = kT0;
    p.rate = 100;
    p.warmup_ns = 500 * kMs;  // the first 50 requests
    p.max_measured = 25;
    p.threads = 2;
    p.thread_index = j;
    RequestSchedule s(p);
    EXPECT_EQ(s.first_measured(), 50u);
    while (auto slot = s.claim(0)) {
      EXPECT_EQ(slot->measured, slot->index >= 50) << slot->index;
      EXPECT_EQ(slot->measured, slot->intended_ns >= kT0 + 500 * kMs);
      (slot->measured ? measured : warm)++;
    }
  }
  EXPECT_EQ(warm, 50u);
  EXPECT_EQ(measured, 25u);

  ScheduleParams timed;
  timed.start_ns = kT0;
  timed.rate = 100;
  timed.end_ns = kT0 + 100 * kMs;
  timed.max_measured = 1000;
  RequestSchedule t(timed);
  while (t.claim(0)) {
  }
  EXPECT_EQ(t.claimed(), 10u);
  EXPECT_FALSE(t.limit_reached());  // the end time came first
}

TEST(Schedule, ClosedLoopStartsTheClockAtTheClaim) {
  ScheduleParams p;
  p.start_ns = kT0;
  p.warmup_ns = 100 * kMs;
  p.end_ns = kT0 + 1'000 * kMs;
  RequestSchedule s(p);
  EXPECT_FALSE(s.open_loop());
  auto a = s.claim(kT0 + 5 * kMs);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->intended_ns, kT0 + 5 * kMs);
  EXPECT_FALSE(a->measured);  // warm-up
  auto b = s.claim(kT0 + 200 * kMs);
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->measured);
  EXPECT_EQ(b->index, 1u);
  EXPECT_FALSE(s.claim(kT0 + 1'000 * kMs));  // the end
  EXPECT_FALSE(s.claim(kT0));                // and it stays ended
}

TEST(Schedule, ClosedLoopSplitsTheRequestLimitOverThreads) {
  uint64_t total = 0;
  for (uint32_t j = 0; j < 3; ++j) {
    ScheduleParams p;
    p.start_ns = kT0;
    p.max_measured = 10;
    p.threads = 3;
    p.thread_index = j;
    RequestSchedule s(p);
    uint64_t n = 0;
    while (s.claim(kT0 + static_cast<int64_t>(n) * kMs)) ++n;
    EXPECT_EQ(n, j == 0 ? 4u : 3u);
    EXPECT_TRUE(s.limit_reached());
    total += n;
  }
  EXPECT_EQ(total, 10u);
}

}  // namespace
}  // namespace sluice::bench
