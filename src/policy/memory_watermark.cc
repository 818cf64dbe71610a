#include "policy/memory_watermark.h"

namespace sluice::policy {

MemoryWatermark::MemoryWatermark(Options o) : opts_(o) {
  high_ = static_cast<uint64_t>(static_cast<double>(o.limit) * o.high);
  low_ = static_cast<uint64_t>(static_cast<double>(o.limit) * o.low);
}

MemoryWatermark::Event MemoryWatermark::update(uint64_t level_bytes, int64_t now_ns) {
  level_ = level_bytes;
  if (opts_.limit == 0) return Event::kNone;
  if (state_ == State::kAdmit && level_bytes >= high_) {
    state_ = State::kShed;
    ++transitions_;
    last_trim_ns_ = now_ns;
    return Event::kStartShedding;
  }
  if (state_ == State::kShed) {
    if (level_bytes >= low_) {  // hysteresis: hold until below low
      if (now_ns - last_trim_ns_ < opts_.shed_trim_interval_ns) return Event::kNone;
      last_trim_ns_ = now_ns;
      return Event::kTrim;
    }
    state_ = State::kAdmit;
    ++transitions_;
    last_trim_ns_ = now_ns;  // leaving the shed state is a trim of its own
    trimmed_once_ = true;
    return Event::kStopShedding;
  }
  if (level_bytes < low_ && (!trimmed_once_ || now_ns - last_trim_ns_ >= opts_.trim_interval_ns)) {
    last_trim_ns_ = now_ns;
    trimmed_once_ = true;
    return Event::kTrim;
  }
  return Event::kNone;
}

}  // namespace sluice::policy
