// Memory-watermark shedding with hysteresis.
//
// The gateway feeds the memory it holds (sampled RSS, corrected by its own
// buffer accounting) every sample period. Above `high` of the limit it stops
// admitting new requests (live ones go on untouched); it admits again only
// once the level is below `low`, and between the two the state holds. While
// the level stays below `low` it asks, at most once per trim interval, for
// what is kept in reserve to be given back (idle connections, malloc_trim).
// While shedding it asks more often (shed_trim_interval): memory that drained
// streams freed must show in the sampled level for admission to resume.
// Pure and clock-injected: the caller passes the time.
#pragma once

#include <cstdint>

namespace sluice::policy {

class MemoryWatermark {
 public:
  struct Options {
    uint64_t limit = 0;            // bytes; 0 disables shedding
    double high = 0.75;            // fraction of limit: stop admitting at or above
    double low = 0.30;             // fraction of limit: admit again below
    int64_t trim_interval_ns = 10'000'000'000;
    int64_t shed_trim_interval_ns = 1'000'000'000;
  };
  enum class State { kAdmit, kShed };
  enum class Event { kNone, kStartShedding, kStopShedding, kTrim };

  explicit MemoryWatermark(Options o);

  // One reading. Returns what the caller must act on.
  Event update(uint64_t level_bytes, int64_t now_ns);

  State state() const { return state_; }
  bool shedding() const { return state_ == State::kShed; }
  uint64_t level() const { return level_; }
  uint64_t limit() const { return opts_.limit; }
  uint64_t high_bytes() const { return high_; }
  uint64_t low_bytes() const { return low_; }
  uint64_t transitions() const { return transitions_; }

 private:
  Options opts_;
  uint64_t high_ = 0, low_ = 0;
  State state_ = State::kAdmit;
  uint64_t level_ = 0;
  uint64_t transitions_ = 0;
  int64_t last_trim_ns_ = 0;
  bool trimmed_once_ = false;
};

}  // namespace sluice::policy
