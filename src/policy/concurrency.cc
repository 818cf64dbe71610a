#include "policy/concurrency.h"

#include <algorithm>
#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::policy {

namespace asio = boost::asio;

struct ConcurrencyLimit::Wait::State {
  explicit State(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;  // touched only on the waiter's executor
  bool granted = false;      // under the limit's mutex
  bool cancelled = false;    // on the waiter's executor
};

void ConcurrencyLimit::Wait::cancel() {
  if (!state_) return;
  state_->cancelled = true;
  state_->timer.cancel();
}

bool ConcurrencyLimit::try_acquire() {
  if (opts_.max == 0) return true;
  uint32_t n = active_.load(std::memory_order_relaxed);
  while (n < opts_.max)
    if (active_.compare_exchange_weak(n, n + 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  return false;
}

size_t ConcurrencyLimit::queued() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

asio::awaitable<ConcurrencyLimit::Outcome> ConcurrencyLimit::acquire(asio::any_io_executor ex, Wait& wait) {
  if (try_acquire()) co_return Outcome::kAcquired;
  auto st = std::make_shared<Wait::State>(ex);
  {
    std::lock_guard lock(mu_);
    // Again under the lock: a release that found no waiter has freed a slot.
    if (try_acquire()) co_return Outcome::kAcquired;
    if (waiters_.size() >= opts_.queue) co_return Outcome::kQueueFull;
    waiters_.push_back(st);
  }
  wait.state_ = st;
  st->timer.expires_after(std::chrono::milliseconds(opts_.queue_timeout_ms));
  (void)co_await st->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  wait.state_.reset();
  std::lock_guard lock(mu_);
  if (st->granted) co_return Outcome::kAcquired;  // the slot is ours (even if we were also cancelled)
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), st));
  co_return st->cancelled ? Outcome::kCancelled : Outcome::kTimedOut;
}

void ConcurrencyLimit::release() {
  if (opts_.max == 0) return;
  std::shared_ptr<Wait::State> next;
  {
    std::lock_guard lock(mu_);
    if (waiters_.empty()) {
      active_.fetch_sub(1, std::memory_order_release);
      return;
    }
    next = std::move(waiters_.front());  // the slot passes to it: active_ is unchanged
    waiters_.pop_front();
    next->granted = true;
  }
  asio::post(next->timer.get_executor(), [next] { next->timer.cancel(); });
}

}  // namespace sluice::policy
