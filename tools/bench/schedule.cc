#include "bench/schedule.h"

#include <cmath>

namespace sluice::bench {

RequestSchedule::RequestSchedule(const ScheduleParams& p) : p_(p) {
  if (p_.threads == 0) p_.threads = 1;
  if (open_loop()) {
    first_measured_ = static_cast<uint64_t>(std::ceil(static_cast<double>(p_.warmup_ns) * p_.rate / 1e9));
  } else if (p_.max_measured) {
    measured_quota_ = p_.max_measured / p_.threads + (p_.thread_index < p_.max_measured % p_.threads ? 1 : 0);
    done_ = limit_reached_ = measured_quota_ == 0;
  }
}

int64_t RequestSchedule::intended_ns(uint64_t k) const {
  // Computed from k each time, never accumulated, so no drift over long runs.
  return p_.start_ns + std::llround(static_cast<double>(k) * 1e9 / p_.rate);
}

std::optional<Slot> RequestSchedule::claim(int64_t now_ns) {
  if (done_) return std::nullopt;
  Slot s;
  if (open_loop()) {
    s.index = claimed_ * p_.threads + p_.thread_index;
    if (p_.max_measured && s.index >= first_measured_ + p_.max_measured) {
      done_ = limit_reached_ = true;
      return std::nullopt;
    }
    s.intended_ns = intended_ns(s.index);
    if (s.intended_ns >= p_.end_ns) {
      done_ = true;
      return std::nullopt;
    }
    s.measured = s.index >= first_measured_;
  } else {
    if (now_ns >= p_.end_ns) {
      done_ = true;
      return std::nullopt;
    }
    s.index = claimed_ * p_.threads + p_.thread_index;
    s.intended_ns = now_ns;
    s.measured = now_ns >= p_.start_ns + p_.warmup_ns;
    if (s.measured) {
      ++measured_claimed_;
      if (p_.max_measured && measured_claimed_ >= measured_quota_) done_ = limit_reached_ = true;
    }
  }
  ++claimed_;
  return s;
}

}  // namespace sluice::bench
