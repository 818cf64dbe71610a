#include "policy/concurrency.h"

#include <algorithm>
#include <chrono>
#include <vector>

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
  const uint32_t max = max_.load(std::memory_order_relaxed);
  if (max == 0) return true;
  uint32_t n = active_.load(std::memory_order_relaxed);
  while (n < max)
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
    if (waiters_.size() >= queue_.load(std::memory_order_relaxed)) co_return Outcome::kQueueFull;
    waiters_.push_back(st);
  }
  wait.state_ = st;
  st->timer.expires_after(std::chrono::milliseconds(queue_timeout_ms_.load(std::memory_order_relaxed)));
  (void)co_await st->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  wait.state_.reset();
  std::lock_guard lock(mu_);
  if (st->granted) co_return Outcome::kAcquired;  // the slot is ours (even if we were also cancelled)
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), st));
  co_return st->cancelled ? Outcome::kCancelled : Outcome::kTimedOut;
}

ConcurrencyLimit::Options ConcurrencyLimit::options() const {
  return {max_.load(std::memory_order_relaxed), queue_.load(std::memory_order_relaxed),
          queue_timeout_ms_.load(std::memory_order_relaxed)};
}

void ConcurrencyLimit::reconfigure(Options o) {
  if (o.max == 0) return;  // see the header: a limit is never turned off in place
  std::vector<std::shared_ptr<Wait::State>> admitted;
  {
    std::lock_guard lock(mu_);
    max_.store(o.max, std::memory_order_relaxed);
    queue_.store(o.queue, std::memory_order_relaxed);
    queue_timeout_ms_.store(o.queue_timeout_ms, std::memory_order_relaxed);
    // Room made by a raised limit goes to the oldest waiters first.
    while (!waiters_.empty() && try_acquire()) {
      admitted.push_back(std::move(waiters_.front()));
      waiters_.pop_front();
      admitted.back()->granted = true;
    }
  }
  for (auto& w : admitted) asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
}

void ConcurrencyLimit::release() {
  if (max_.load(std::memory_order_relaxed) == 0) return;
  std::shared_ptr<Wait::State> next;
  {
    std::lock_guard lock(mu_);
    if (waiters_.empty() || active_.load(std::memory_order_relaxed) > max_.load(std::memory_order_relaxed)) {
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
