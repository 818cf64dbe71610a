// Which request a connection sends next, and when it was meant to be sent.
//
// Closed loop: a free connection sends at once; the request's clock starts
// when it is sent. Open loop: request k (counted over all threads from the
// start time t0) is meant to go out at t0 + k / rate, whether or not a
// connection is free then. Each free connection claims the next unclaimed
// slot of its thread and waits for its time; if every connection is busy the
// slot waits for the first one to come free, and since its clock started at
// the intended time, that wait is part of its latency (no coordinated
// omission).
//
// With T threads, thread j owns the slots k = j, j+T, j+2T, ...: together they
// keep the global schedule, each on its own event loop with no shared state.
// Pure and clock-free: the caller passes "now", so tests drive it by hand.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>

namespace sluice::bench {

struct ScheduleParams {
  int64_t start_ns = 0;                                     // t0
  int64_t warmup_ns = 0;                                    // requests before t0 + warmup are not measured
  int64_t end_ns = std::numeric_limits<int64_t>::max();    // no request is sent at or after this
  uint64_t max_measured = 0;                                // measured requests over all threads; 0 = no limit
  double rate = 0;                                          // requests/s over all threads; 0 = closed loop
  uint32_t threads = 1;
  uint32_t thread_index = 0;
};

struct Slot {
  uint64_t index = 0;       // k: global request number, also the request-mix index
  int64_t intended_ns = 0;  // open loop: t0 + k / rate; closed loop: the claim time
  bool measured = false;    // false during warm-up
};

class RequestSchedule {
 public:
  explicit RequestSchedule(const ScheduleParams& p);

  // The next slot for a connection that is free at `now_ns`, or nullopt when
  // this thread has nothing more to send.
  std::optional<Slot> claim(int64_t now_ns);

  bool open_loop() const { return p_.rate > 0; }
  // Open loop: intended send time of request k.
  int64_t intended_ns(uint64_t k) const;
  // Open loop: the first measured request number.
  uint64_t first_measured() const { return first_measured_; }
  uint64_t claimed() const { return claimed_; }
  // The measured-request limit, rather than the end time, ended this schedule.
  bool limit_reached() const { return limit_reached_; }

 private:
  ScheduleParams p_;
  uint64_t claimed_ = 0;           // slots this thread handed out
  uint64_t measured_claimed_ = 0;  // closed loop: measured ones among them
  uint64_t measured_quota_ = 0;    // closed loop: this thread's share of max_measured
  uint64_t first_measured_ = 0;    // open loop
  bool done_ = false;
  bool limit_reached_ = false;
};

}  // namespace sluice::bench
