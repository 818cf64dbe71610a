// Latency histograms for sluice-bench (see runner.h for the folder map).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sluice::bench {

// A log-linear (HDR-style) histogram of durations in nanoseconds.
//
// Values below 2*kSubBuckets (256 ns) have one bucket each. Above that, every
// power of two [2^k, 2^(k+1)) is split into kSubBuckets equal buckets, so a
// bucket is at most 1/128 of its lower bound wide and a value reported as its
// bucket's midpoint is within 0.4% of the true one. Values are clamped to
// [0, kMaxValue] (100 s); clamped values are counted in saturated().
//
// Fixed memory (about 31 KB) allocated once; record() never allocates. One
// histogram per thread; merge() them for the report (exact: bucket counts
// add up), so percentiles are never averages of averages.
class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr int64_t kSubBuckets = int64_t{1} << kSubBits;  // 128
  static constexpr int64_t kMaxValue = 100'000'000'000;          // 100 s in ns

  Histogram();

  void record(int64_t v) {
    if (v < 0) v = 0;
    if (v > kMaxValue) {
      v = kMaxValue;
      ++saturated_;
    }
    ++counts_[index_of(v)];
    ++count_;
    sum_ += static_cast<double>(v);
    if (v < min_) min_ = v;
    if (v > max_) max_ = v;
  }

  void merge(const Histogram& other);
  void reset();

  uint64_t count() const { return count_; }
  uint64_t saturated() const { return saturated_; }
  int64_t min() const { return count_ ? min_ : 0; }
  int64_t max() const { return max_; }  // exact
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }  // exact

  // The p-th percentile (0..100): the smallest recorded value v such that at
  // least ceil(p/100 * count) values are <= v, reported as the midpoint of
  // v's bucket and kept within [min, max]. 0 when empty.
  int64_t percentile(double p) const;

  // Bucket geometry, public for tests.
  static size_t index_of(int64_t v) {
    if (v < 2 * kSubBuckets) return static_cast<size_t>(v);
    int msb = 63 - __builtin_clzll(static_cast<uint64_t>(v));
    int shift = msb - kSubBits;  // >= 1
    return static_cast<size_t>(2 * kSubBuckets + (shift - 1) * kSubBuckets +
                               ((v >> shift) - kSubBuckets));
  }
  static int64_t lower_bound_of(size_t index);
  static int64_t width_of(size_t index);
  static size_t bucket_count() { return index_of(kMaxValue) + 1; }

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t saturated_ = 0;
  double sum_ = 0;
  int64_t min_ = INT64_MAX;
  int64_t max_ = 0;
};

}  // namespace sluice::bench
