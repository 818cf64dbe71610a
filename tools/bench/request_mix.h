// The shape of each request, drawn from --seed: prompt length, output length
// and whether it streams.
#pragma once

#include <cstdint>

namespace sluice::bench {

// xoshiro256** seeded through splitmix64: small, fast and specified, so a
// seed means the same numbers everywhere (std:: distributions are not).
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  // Uniform in (0, 1]: never 0, so log() is always finite.
  double uniform();
  // Standard normal (Box-Muller; the second value of each pair is kept).
  double normal();

 private:
  uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

// A log-normal length, truncated to [1, max].
//
// Parameterisation: X = exp(mu + sigma * Z), Z ~ N(0, 1), with
// mu = ln(mean) - sigma^2 / 2, so that `mean` is the arithmetic mean of the
// untruncated distribution (its median is mean * exp(-sigma^2 / 2)) and
// `sigma` is the standard deviation of ln X. A draw is rounded to the nearest
// integer; a result outside [1, max] is drawn again (truncation by rejection,
// which keeps the shape inside the bounds), and after 64 rejections in a row
// it is clamped instead. sigma = 0 gives the constant round(mean).
struct LengthSpec {
  double mean = 128;
  double sigma = 0.8;
  int64_t max = 8192;

  int64_t draw(Rng& rng) const;
};

struct RequestShape {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  bool stream = false;
};

// Request number k's shape is a pure function of (seed, k): each request
// seeds its own Rng from both, so the mix does not depend on how requests are
// spread over threads and connections, and a run can be repeated exactly.
class RequestMix {
 public:
  RequestMix(uint64_t seed, LengthSpec input, LengthSpec output, double stream_share);
  RequestShape draw(uint64_t k) const;

 private:
  uint64_t seed_;
  LengthSpec input_;
  LengthSpec output_;
  double stream_share_;
};

}  // namespace sluice::bench
