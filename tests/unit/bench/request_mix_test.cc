#include "bench/request_mix.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace sluice::bench {
namespace {

TEST(Rng, UniformIsInHalfOpenUnitInterval) {
  Rng rng(1);
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    double u = rng.uniform();
    ASSERT_GT(u, 0.0);
    ASSERT_LE(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 100000, 0.5, 0.01);
}

TEST(RequestMix, SameSeedSameRequestsWhateverTheOrder) {
  RequestMix a(7, {128, 0.8, 8192}, {256, 0.6, 2048}, 0.5);
  RequestMix b(7, {128, 0.8, 8192}, {256, 0.6, 2048}, 0.5);
  RequestMix c(8, {128, 0.8, 8192}, {256, 0.6, 2048}, 0.5);
  int differ = 0;
  for (uint64_t k = 0; k < 1000; ++k) {
    RequestShape x = a.draw(k);
    (void)b.draw(999 - k);  // b is also asked in the opposite order: no state carries over
    RequestShape y = b.draw(k);
    EXPECT_EQ(x.input_tokens, y.input_tokens);
    EXPECT_EQ(x.output_tokens, y.output_tokens);
    EXPECT_EQ(x.stream, y.stream);
    RequestShape z = c.draw(k);
    differ += z.input_tokens != x.input_tokens || z.output_tokens != x.output_tokens;
  }
  EXPECT_GT(differ, 900);
  // Pinned: a seed must mean the same requests in every build and on every machine.
  const RequestShape pinned[] = {{320, 191, true}, {22, 246, false}, {60, 281, true}, {95, 277, true}};
  for (uint64_t k = 0; k < 4; ++k) {
    RequestShape s = a.draw(k);
    EXPECT_EQ(s.input_tokens, pinned[k].input_tokens) << k;
    EXPECT_EQ(s.output_tokens, pinned[k].output_tokens) << k;
    EXPECT_EQ(s.stream, pinned[k].stream) << k;
  }
}

TEST(RequestMix, LengthsAreTruncatedToOneThroughMax) {
  LengthSpec tight{100, 1.5, 150};
  Rng rng(3);
  int at_max = 0;
  for (int i = 0; i < 50000; ++i) {
    int64_t v = tight.draw(rng);
    ASSERT_GE(v, 1);
    ASSERT_LE(v, 150);
    at_max += v == 150;
  }
  // Rejection, not clamping: the bound is not a spike.
  EXPECT_LT(at_max, 50000 / 100);
  // Small means still never give 0.
  LengthSpec small{1.2, 1.0, 10};
  for (int i = 0; i < 10000; ++i) ASSERT_GE(small.draw(rng), 1);
  // sigma 0 is a constant.
  LengthSpec fixed{64, 0, 100};
  EXPECT_EQ(fixed.draw(rng), 64);
}

TEST(RequestMix, MeanMedianAndSigmaMatchTheParameterisation) {
  for (LengthSpec spec : {LengthSpec{128, 0.8, 8192}, LengthSpec{256, 0.6, 2048}}) {
    Rng rng(11);
    const int n = 200000;
    std::vector<int64_t> v;
    double sum = 0, sum_ln = 0, sum_ln2 = 0;
    for (int i = 0; i < n; ++i) {
      v.push_back(spec.draw(rng));
      sum += static_cast<double>(v.back());
      double l = std::log(static_cast<double>(v.back()));
      sum_ln += l;
      sum_ln2 += l * l;
    }
    std::nth_element(v.begin(), v.begin() + n / 2, v.end());
    double mean = sum / n;
    double median = static_cast<double>(v[n / 2]);
    double sd_ln = std::sqrt(sum_ln2 / n - (sum_ln / n) * (sum_ln / n));
    EXPECT_NEAR(mean, spec.mean, spec.mean * 0.02) << spec.mean;
    EXPECT_NEAR(median, spec.mean * std::exp(-spec.sigma * spec.sigma / 2), spec.mean * 0.03) << spec.mean;
    EXPECT_NEAR(sd_ln, spec.sigma, spec.sigma * 0.03) << spec.mean;
  }
}

TEST(RequestMix, StreamShare) {
  for (double share : {0.0, 0.3, 1.0}) {
    RequestMix mix(5, {128, 0.8, 8192}, {256, 0.6, 2048}, share);
    int streams = 0;
    for (uint64_t k = 0; k < 20000; ++k) streams += mix.draw(k).stream;
    EXPECT_NEAR(streams / 20000.0, share, 0.015) << share;
  }
  // The share does not move the lengths.
  RequestMix none(5, {128, 0.8, 8192}, {256, 0.6, 2048}, 0.0);
  RequestMix all(5, {128, 0.8, 8192}, {256, 0.6, 2048}, 1.0);
  for (uint64_t k = 0; k < 100; ++k) {
    EXPECT_EQ(none.draw(k).input_tokens, all.draw(k).input_tokens);
    EXPECT_EQ(none.draw(k).output_tokens, all.draw(k).output_tokens);
  }
}

}  // namespace
}  // namespace sluice::bench
