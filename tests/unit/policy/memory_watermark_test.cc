#include "policy/memory_watermark.h"

#include <gtest/gtest.h>

namespace sluice::policy {
namespace {

using Event = MemoryWatermark::Event;
constexpr int64_t kS = 1'000'000'000;

TEST(MemoryWatermark, HysteresisBetweenHighAndLow) {
  MemoryWatermark w({.limit = 1000, .high = 0.75, .low = 0.30, .trim_interval_ns = 10 * kS});
  EXPECT_EQ(w.high_bytes(), 750u);
  EXPECT_EQ(w.low_bytes(), 300u);
  EXPECT_EQ(w.update(500, 1 * kS), Event::kNone);
  EXPECT_FALSE(w.shedding());
  EXPECT_EQ(w.update(749, 2 * kS), Event::kNone);
  EXPECT_EQ(w.update(750, 3 * kS), Event::kStartShedding);
  EXPECT_TRUE(w.shedding());
  // Between the two the state holds, whichever way the level moves (and
  // freed memory is given back once a second meanwhile).
  int64_t t = 3 * kS;
  int trims = 0;
  for (uint64_t level : {900u, 600u, 300u, 740u, 760u}) {
    t += kS / 2;
    trims += w.update(level, t) == Event::kTrim;
    EXPECT_TRUE(w.shedding()) << level;
  }
  EXPECT_EQ(trims, 2);
  EXPECT_EQ(w.update(299, 6 * kS), Event::kStopShedding);
  EXPECT_FALSE(w.shedding());
  // Back between the two while admitting: still admitting.
  EXPECT_EQ(w.update(700, 7 * kS), Event::kNone);
  EXPECT_FALSE(w.shedding());
  EXPECT_EQ(w.transitions(), 2u);
}

TEST(MemoryWatermark, TrimsWhileLowAtMostOncePerInterval) {
  MemoryWatermark w({.limit = 1000, .trim_interval_ns = 10 * kS});
  EXPECT_EQ(w.update(100, 1 * kS), Event::kTrim);
  EXPECT_EQ(w.update(100, 5 * kS), Event::kNone);
  EXPECT_EQ(w.update(100, 11 * kS), Event::kTrim);
  EXPECT_EQ(w.update(500, 30 * kS), Event::kNone);  // above low: nothing to give back
  // Leaving the shed state trims at once, and counts as the interval's trim.
  EXPECT_EQ(w.update(800, 31 * kS), Event::kStartShedding);
  EXPECT_EQ(w.update(100, 32 * kS), Event::kStopShedding);
  EXPECT_EQ(w.update(100, 33 * kS), Event::kNone);
  EXPECT_EQ(w.update(100, 42 * kS), Event::kTrim);
}

TEST(MemoryWatermark, NoLimitNeverSheds) {
  MemoryWatermark w({.limit = 0});
  EXPECT_EQ(w.update(uint64_t{1} << 40, kS), Event::kNone);
  EXPECT_FALSE(w.shedding());
}

}  // namespace
}  // namespace sluice::policy
