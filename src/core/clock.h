#pragma once

#include <chrono>
#include <cstdint>

namespace sluice {

// Monotonic time in nanoseconds. Code that makes decisions from time (limiters,
// timeouts) takes a Clock& so tests can drive it by hand.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ns() const = 0;
};

class SteadyClock final : public Clock {
 public:
  int64_t now_ns() const override { return mono_ns(); }
  static int64_t mono_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  static SteadyClock& instance() {
    static SteadyClock c;
    return c;
  }
};

class ManualClock final : public Clock {
 public:
  int64_t now_ns() const override { return t_; }
  void advance_ms(int64_t ms) { t_ += ms * 1'000'000; }
  void set_ns(int64_t t) { t_ = t; }

 private:
  int64_t t_ = 1'000'000'000;
};

// Wall-clock time for logs, in microseconds since the Unix epoch.
inline int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace sluice
