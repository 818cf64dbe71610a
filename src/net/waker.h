#pragma once

#include <chrono>
#include <cstdint>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::net {

namespace asio = boost::asio;

// One coroutine waits (optionally with a timeout) until another wakes it.
// A wake with nobody waiting is not remembered: the waiter re-checks its
// condition before each wait.
class Waker {
 public:
  explicit Waker(const asio::any_io_executor& ex) : timer_(ex) {}
  // True when woken, false on timeout. ms <= 0 waits without a timeout.
  asio::awaitable<bool> wait(int64_t ms) {
    if (ms > 0) timer_.expires_after(std::chrono::milliseconds(ms));
    else timer_.expires_at(asio::steady_timer::time_point::max());
    waiting_ = true;
    auto [ec] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    waiting_ = false;
    co_return ec == asio::error::operation_aborted;
  }
  void wake() {
    if (waiting_) timer_.cancel();
  }
  bool waiting() const { return waiting_; }

 private:
  asio::steady_timer timer_;
  bool waiting_ = false;
};

}  // namespace sluice::net
