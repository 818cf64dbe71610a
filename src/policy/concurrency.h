// A concurrency limit shared by every worker, with a bounded FIFO wait queue.
//
// A slot is taken without a lock while the limit has room (one CAS); only a
// full limit takes the mutex, to queue or to hand a freed slot straight to
// the oldest waiter (so a new arrival never overtakes the queue). A waiter
// sleeps on a timer of its own worker and is woken there; it leaves the queue
// at once when its client goes away (cancel()) or its queue time runs out.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

namespace sluice::policy {

class ConcurrencyLimit {
 public:
  struct Options {
    uint32_t max = 0;              // concurrent requests; 0 = unlimited
    uint32_t queue = 0;            // requests that may wait for a slot
    int64_t queue_timeout_ms = 0;  // how long one may wait
  };
  enum class Outcome { kAcquired, kQueueFull, kTimedOut, kCancelled };

  // What one waiting request holds; cancel() it from the waiter's own thread
  // (e.g. when its client goes away).
  class Wait {
   public:
    void cancel();

   private:
    friend class ConcurrencyLimit;
    struct State;
    std::shared_ptr<State> state_;
  };

  explicit ConcurrencyLimit(Options o)
      : max_(o.max), queue_(o.queue), queue_timeout_ms_(o.queue_timeout_ms) {}
  ConcurrencyLimit(const ConcurrencyLimit&) = delete;
  ConcurrencyLimit& operator=(const ConcurrencyLimit&) = delete;

  bool try_acquire();
  // try_acquire(), else waits in line on `ex` (the caller's executor).
  boost::asio::awaitable<Outcome> acquire(boost::asio::any_io_executor ex, Wait& wait);
  void release();

  uint32_t active() const { return active_.load(std::memory_order_relaxed); }
  size_t queued() const;
  Options options() const;
  // A config reload: the new limits apply at once to the requests that come
  // next; those holding a slot keep it. A raised limit lets waiters in; over
  // a lowered one, released slots are not passed on until under it again.
  // (A limit turned off is not reconfigured to 0: the next snapshot has none.)
  void reconfigure(Options o);

 private:
  std::atomic<uint32_t> max_;
  std::atomic<uint32_t> queue_;
  std::atomic<int64_t> queue_timeout_ms_;
  std::atomic<uint32_t> active_{0};
  mutable std::mutex mu_;
  std::deque<std::shared_ptr<Wait::State>> waiters_;  // oldest first
};

}  // namespace sluice::policy
