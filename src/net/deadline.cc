#include "net/deadline.h"

#include <chrono>

#include "core/clock.h"

namespace sluice::net {

struct Deadline::State {
  explicit State(asio::any_io_executor ex, Callback cb) : timer(std::move(ex)), on_expire(std::move(cb)) {}
  asio::steady_timer timer;
  Callback on_expire;
  int64_t deadline_ns = std::numeric_limits<int64_t>::max();
  int64_t scheduled_ns = std::numeric_limits<int64_t>::max();  // when the pending wait fires
  bool waiting = false;
  bool expired = false;
  bool dead = false;
};

namespace {
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

asio::steady_timer::time_point to_time_point(int64_t ns) {
  return asio::steady_timer::time_point(std::chrono::nanoseconds(ns));
}
}  // namespace

Deadline::Deadline(asio::any_io_executor ex, Callback on_expire)
    : st_(std::make_shared<State>(std::move(ex), std::move(on_expire))) {}

Deadline::~Deadline() {
  st_->dead = true;
  st_->on_expire = nullptr;
  if (st_->waiting) st_->timer.cancel();
}

void Deadline::wait(const std::shared_ptr<State>& st) {
  st->waiting = true;
  st->scheduled_ns = st->deadline_ns;
  st->timer.expires_at(to_time_point(st->deadline_ns));
  st->timer.async_wait([st](const boost::system::error_code&) {
    st->waiting = false;
    st->scheduled_ns = kNever;
    if (st->dead || st->deadline_ns == kNever) return;
    int64_t now = SteadyClock::mono_ns();
    if (now < st->deadline_ns) {  // extended (or re-armed earlier) since this wait began
      wait(st);
      return;
    }
    st->deadline_ns = kNever;
    st->expired = true;
    if (st->on_expire) st->on_expire();
  });
}

void Deadline::arm_ms(int64_t ms) { arm_at(SteadyClock::mono_ns() + ms * 1'000'000); }

void Deadline::arm_at(int64_t deadline_ns) {
  st_->expired = false;
  st_->deadline_ns = deadline_ns;
  if (!st_->waiting) {
    wait(st_);
  } else if (deadline_ns < st_->scheduled_ns) {
    // Earlier than the pending wait: cancel; the handler re-waits for the new time.
    st_->timer.cancel();
  }
}

void Deadline::disarm() { st_->deadline_ns = kNever; }

bool Deadline::armed() const { return st_->deadline_ns != kNever; }

bool Deadline::expired() const { return st_->expired; }

}  // namespace sluice::net
