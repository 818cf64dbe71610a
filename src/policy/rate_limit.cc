#include "policy/rate_limit.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace sluice::policy {

void SlidingWindow::roll(int64_t now_ns) {
  if (now_ns - window_start_ < window_ns_) return;
  const int64_t windows = (now_ns - window_start_) / window_ns_;
  previous_ = windows == 1 ? std::max<int64_t>(current_, 0) : 0;
  current_ = 0;
  window_start_ += windows * window_ns_;
}

double SlidingWindow::estimate(int64_t now_ns) const {
  const double into = static_cast<double>(now_ns - window_start_) / static_cast<double>(window_ns_);
  return static_cast<double>(previous_) * (1.0 - into) + static_cast<double>(std::max<int64_t>(current_, 0));
}

void SlidingWindow::start(int64_t now_ns) {
  if (window_start_ == 0) window_start_ = now_ns - now_ns % window_ns_;  // windows on whole minutes
}

bool SlidingWindow::try_add(int64_t now_ns, uint64_t cost) {
  if (!enabled()) return true;
  start(now_ns);
  roll(now_ns);
  if (estimate(now_ns) + static_cast<double>(cost) > static_cast<double>(limit_)) return false;
  current_ += static_cast<int64_t>(cost);
  return true;
}

void SlidingWindow::adjust(int64_t now_ns, int64_t delta) {
  if (!enabled()) return;
  start(now_ns);
  roll(now_ns);
  current_ += delta;
}

uint64_t SlidingWindow::remaining(int64_t now_ns) {
  if (!enabled()) return 0;
  if (window_start_ == 0) return limit_;
  roll(now_ns);
  const double left = static_cast<double>(limit_) - estimate(now_ns);
  return left <= 0 ? 0 : static_cast<uint64_t>(left);
}

int64_t SlidingWindow::wait_for(int64_t now_ns, uint64_t cost) {
  if (!enabled() || window_start_ == 0) return 0;
  roll(now_ns);
  if (estimate(now_ns) + static_cast<double>(cost) <= static_cast<double>(limit_)) return 0;
  if (cost > limit_) return window_ns_;
  const double w = static_cast<double>(window_ns_), cur = static_cast<double>(std::max<int64_t>(current_, 0));
  const double prev = static_cast<double>(previous_), room = static_cast<double>(limit_ - cost);
  // When (from the current window's start) the estimate falls to `room`: in
  // this window as the previous one fades, or in the next as this one does.
  const double at = cur <= room ? w * (1.0 - (room - cur) / prev) : w + w * (1.0 - room / cur);
  return std::max<int64_t>(1, window_start_ + static_cast<int64_t>(std::ceil(at)) - now_ns);
}

int64_t Budget::period_key(int64_t wall_s) const {
  using namespace std::chrono;
  const sys_days day = floor<days>(sys_seconds(seconds(wall_s)));
  if (period_ == Period::kDay) return day.time_since_epoch().count();
  const year_month_day ymd(day);
  return static_cast<int64_t>(static_cast<int>(ymd.year())) * 12 + static_cast<unsigned>(ymd.month()) - 1;
}

void Budget::roll(int64_t wall_s) {
  const int64_t k = period_key(wall_s);
  if (k != key_) {
    key_ = k;
    used_ = 0;
  }
}

bool Budget::try_add(int64_t wall_s, uint64_t cost) {
  if (!enabled_) return true;
  roll(wall_s);
  if (static_cast<uint64_t>(std::max<int64_t>(used_, 0)) + cost > limit_) return false;
  used_ += static_cast<int64_t>(cost);
  return true;
}

void Budget::adjust(int64_t wall_s, int64_t delta) {
  if (!enabled_) return;
  roll(wall_s);
  used_ += delta;
}

uint64_t Budget::used(int64_t wall_s) {
  roll(wall_s);
  return static_cast<uint64_t>(std::max<int64_t>(used_, 0));
}

void Budget::restore(int64_t wall_s, int64_t period_key, uint64_t used) {
  roll(wall_s);
  if (period_key == key_) used_ += static_cast<int64_t>(used);
}

int64_t Budget::reset_in(int64_t wall_s) const {
  using namespace std::chrono;
  const sys_days day = floor<days>(sys_seconds(seconds(wall_s)));
  sys_days next;
  if (period_ == Period::kDay) {
    next = day + days(1);
  } else {
    const year_month_day ymd(day);
    next = sys_days(year_month_day(ymd.year() / ymd.month() / 1) + months(1));
  }
  return duration_cast<seconds>(next - sys_seconds(seconds(wall_s))).count();
}

}  // namespace sluice::policy
