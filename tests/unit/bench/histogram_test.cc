#include "bench/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "bench/request_mix.h"

namespace sluice::bench {
namespace {

// Nearest-rank percentile of sorted values: the definition Histogram follows.
int64_t exact_percentile(const std::vector<int64_t>& sorted, double p) {
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// Log-uniform from 1 us to 100 s: every power of two in the range gets values.
std::vector<int64_t> log_uniform_values(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int64_t> v;
  const double lo = std::log(1e3), hi = std::log(1e11);
  for (size_t i = 0; i < n; ++i) v.push_back(static_cast<int64_t>(std::exp(lo + (hi - lo) * rng.uniform())));
  return v;
}

TEST(Histogram, BucketsAreAtMostOnePercentWide) {
  EXPECT_LT(Histogram::bucket_count(), 5000u);  // fixed, small memory
  Rng rng(7);
  for (int i = 0; i < 200000; ++i) {
    auto v = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(Histogram::kMaxValue + 1));
    if (i < 1000) v = i;  // the exact region too
    size_t idx = Histogram::index_of(v);
    ASSERT_LT(idx, Histogram::bucket_count());
    int64_t lo = Histogram::lower_bound_of(idx);
    int64_t w = Histogram::width_of(idx);
    ASSERT_LE(lo, v) << v;
    ASSERT_LT(v, lo + w) << v;
    if (v >= 2 * Histogram::kSubBuckets) {
      ASSERT_LE(static_cast<double>(w) / static_cast<double>(lo), 1.0 / 128 + 1e-12) << v;
    } else {
      ASSERT_EQ(w, 1);
    }
  }
  // Consecutive buckets tile the range with no gap and no overlap.
  for (size_t i = 0; i + 1 < Histogram::bucket_count(); ++i) {
    ASSERT_EQ(Histogram::lower_bound_of(i) + Histogram::width_of(i), Histogram::lower_bound_of(i + 1)) << i;
  }
}

TEST(Histogram, PercentilesWithinOnePercentFromMicrosecondsTo100Seconds) {
  std::vector<int64_t> values = log_uniform_values(100000, 42);
  Histogram h;
  for (int64_t v : values) h.record(v);
  std::sort(values.begin(), values.end());
  for (double p : {1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99}) {
    auto exact = static_cast<double>(exact_percentile(values, p));
    auto got = static_cast<double>(h.percentile(p));
    EXPECT_NEAR(got, exact, exact * 0.01) << "p" << p;
  }
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.percentile(100), values.back());
  EXPECT_EQ(h.percentile(0), values.front());
  double sum = 0;
  for (int64_t v : values) sum += static_cast<double>(v);
  EXPECT_NEAR(h.mean(), sum / static_cast<double>(values.size()), 1e-6 * h.mean());
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (int64_t v = 0; v < 256; ++v) h.record(v);
  EXPECT_EQ(h.percentile(50), 127);  // rank 128 of 256
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 255);
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  std::vector<int64_t> values = log_uniform_values(30000, 9);
  Histogram all, a, b, c;
  for (size_t i = 0; i < values.size(); ++i) {
    all.record(values[i]);
    (i % 3 == 0 ? a : i % 3 == 1 ? b : c).record(values[i]);
  }
  Histogram merged;
  merged.merge(a);
  merged.merge(b);
  merged.merge(c);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_NEAR(merged.mean(), all.mean(), 1e-9 * all.mean());
  for (double p : {50.0, 90.0, 99.0, 99.9}) EXPECT_EQ(merged.percentile(p), all.percentile(p)) << p;
}

TEST(Histogram, ClampsAndCountsSaturation) {
  Histogram h;
  h.record(-5);
  h.record(Histogram::kMaxValue * 3);
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.saturated(), 1u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), Histogram::kMaxValue);
}

TEST(Histogram, EmptyAndReset) {
  Histogram h;
  EXPECT_EQ(h.percentile(99), 0);
  EXPECT_EQ(h.mean(), 0);
  EXPECT_EQ(h.min(), 0);
  h.record(1000);
  h.reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.max(), 0);
}

}  // namespace
}  // namespace sluice::bench
