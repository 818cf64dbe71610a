#include "bench/histogram.h"

#include <algorithm>
#include <cmath>

namespace sluice::bench {

Histogram::Histogram() : counts_(bucket_count(), 0) {}

int64_t Histogram::lower_bound_of(size_t index) {
  auto i = static_cast<int64_t>(index);
  if (i < 2 * kSubBuckets) return i;
  int64_t j = i - 2 * kSubBuckets;
  int shift = static_cast<int>(j / kSubBuckets) + 1;
  return (kSubBuckets + j % kSubBuckets) << shift;
}

int64_t Histogram::width_of(size_t index) {
  auto i = static_cast<int64_t>(index);
  if (i < 2 * kSubBuckets) return 1;
  return int64_t{1} << ((i - 2 * kSubBuckets) / kSubBuckets + 1);
}

void Histogram::merge(const Histogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  saturated_ += other.saturated_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = saturated_ = 0;
  sum_ = 0;
  min_ = INT64_MAX;
  max_ = 0;
}

int64_t Histogram::percentile(double p) const {
  if (count_ == 0) return 0;
  if (p <= 0) return min();
  if (p >= 100) return max_;
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      int64_t mid = lower_bound_of(i) + width_of(i) / 2;
      return std::clamp(mid, min(), max_);
    }
  }
  return max_;
}

}  // namespace sluice::bench
