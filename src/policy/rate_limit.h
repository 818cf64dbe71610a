// Rate limits and budgets for one caller (an API key or a team), in-process.
//
// Semantics (the Redis backend will implement the same):
//  - rpm / tpm: a sliding window of one minute, estimated from two fixed
//    one-minute windows (the previous window's count weighted by how much of
//    it still overlaps the sliding minute). Admits while the estimate plus
//    the request's cost stays within the limit, so no minute ever admits much
//    more than the limit, and no burst at a window edge doubles it.
//  - Token limits are charged *before* forwarding with an estimate (prompt
//    estimate + max_tokens, or the route's default), then settled with the
//    real usage when the response ends: the difference is refunded or
//    charged (a stream cut short is charged what was observed).
//  - Budgets (tokens or USD per UTC day / month) are fixed calendar windows,
//    reserved and settled the same way.
// Each worker keeps its own shard of every limit (limit / workers), written
// only by its thread: no lock and no shared cache line on the hot path.
// Clock-injected: the caller passes monotonic and wall times.
#pragma once

#include <cstdint>
#include <optional>

namespace sluice::policy {

// One-minute sliding window (two fixed windows, weighted).
class SlidingWindow {
 public:
  SlidingWindow() = default;
  SlidingWindow(uint64_t limit, int64_t window_ns) : limit_(limit), window_ns_(window_ns) {}

  bool enabled() const { return window_ns_ > 0; }
  // Adds `cost` if the window stays within the limit; false (nothing added) if not.
  bool try_add(int64_t now_ns, uint64_t cost);
  // Settles a reservation: adds (or, negative, removes) the difference.
  void adjust(int64_t now_ns, int64_t delta);
  uint64_t limit() const { return limit_; }
  int64_t window_ns() const { return window_ns_; }
  // A config reload: the count so far is kept, the new limit applies to what comes next.
  void set_limit(uint64_t limit) { limit_ = limit; }
  uint64_t remaining(int64_t now_ns);
  // Nanoseconds until `cost` would fit (0 when it fits now); for Retry-After
  // and x-ratelimit-reset-*. A cost above the limit never fits: a window.
  int64_t wait_for(int64_t now_ns, uint64_t cost);

 private:
  void start(int64_t now_ns);
  void roll(int64_t now_ns);
  double estimate(int64_t now_ns) const;

  uint64_t limit_ = 0;
  int64_t window_ns_ = 0;
  int64_t window_start_ = 0;  // of the current fixed window
  int64_t current_ = 0;       // may dip below 0 briefly after a refund; clamped when read
  int64_t previous_ = 0;
};

// A budget per fixed calendar window (UTC day or month), in any unit
// (tokens, micro-dollars).
class Budget {
 public:
  enum class Period { kDay, kMonth };
  Budget() = default;
  Budget(uint64_t limit, Period p) : limit_(limit), period_(p), enabled_(true) {}

  bool enabled() const { return enabled_; }
  bool try_add(int64_t wall_s, uint64_t cost);
  void adjust(int64_t wall_s, int64_t delta);
  uint64_t used(int64_t wall_s);
  uint64_t limit() const { return limit_; }
  Period period() const { return period_; }
  void set_limit(uint64_t limit) { limit_ = limit; }  // a config reload: spend so far is kept
  // Seconds until the window resets.
  int64_t reset_in(int64_t wall_s) const;
  // Spend carried over from before a restart (state file), for the window
  // that contains `wall_s`.
  void restore(int64_t wall_s, int64_t period_key, uint64_t used);
  int64_t period_key(int64_t wall_s) const;  // days since the epoch, or year*12+month

 private:
  void roll(int64_t wall_s);

  uint64_t limit_ = 0;
  Period period_ = Period::kDay;
  bool enabled_ = false;
  int64_t key_ = -1;
  int64_t used_ = 0;
};

}  // namespace sluice::policy
