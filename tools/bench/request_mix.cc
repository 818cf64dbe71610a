#include "bench/request_mix.h"

#include <algorithm>
#include <cmath>

namespace sluice::bench {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

constexpr double kTwoPi = 6.283185307179586476925286766559;

}  // namespace

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>((next() >> 11) + 1) * 0x1.0p-53; }

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double r = std::sqrt(-2.0 * std::log(uniform()));
  double a = kTwoPi * uniform();
  spare_ = r * std::sin(a);
  has_spare_ = true;
  return r * std::cos(a);
}

int64_t LengthSpec::draw(Rng& rng) const {
  const int64_t hi = std::max<int64_t>(max, 1);
  if (sigma <= 0) return std::clamp<int64_t>(std::llround(mean), 1, hi);
  const double mu = std::log(mean) - sigma * sigma / 2;
  double x = 0;
  for (int attempt = 0; attempt < 64; ++attempt) {
    x = std::round(std::exp(mu + sigma * rng.normal()));
    if (x >= 1 && x <= static_cast<double>(hi)) return static_cast<int64_t>(x);
  }
  return x < 1 ? 1 : hi;
}

RequestMix::RequestMix(uint64_t seed, LengthSpec input, LengthSpec output, double stream_share)
    : seed_(seed), input_(input), output_(output), stream_share_(stream_share) {}

RequestShape RequestMix::draw(uint64_t k) const {
  uint64_t s = seed_;
  uint64_t mixed = splitmix64(s) ^ (k * 0xd1342543de82ef95ULL);
  Rng rng(mixed);
  RequestShape r;
  r.input_tokens = input_.draw(rng);
  r.output_tokens = output_.draw(rng);
  // The stream choice uses its own draw after the lengths, so a share of 0 or
  // 1 leaves the lengths exactly as at any other share.
  r.stream = rng.uniform() <= stream_share_ && stream_share_ > 0;
  return r;
}

}  // namespace sluice::bench
