// net/: sockets, listeners, worker threads and timers. Knows nothing of HTTP.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace sluice::net {

namespace asio = boost::asio;

// A deadline that is cheap to move later: extend() only stores the new time;
// the timer is re-armed when it fires early. Only moving a deadline earlier
// touches the timer queue. On expiry it runs the callback given at
// construction (typically: close the socket so pending I/O fails).
//
// The timer state is shared with the pending wait so that destroying the
// Deadline while a wait is pending is safe.
class Deadline {
 public:
  using Callback = std::function<void()>;

  Deadline(asio::any_io_executor ex, Callback on_expire);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // Expire `ms` milliseconds from now.
  void arm_ms(int64_t ms);
  // Expire at a steady-clock time in ns.
  void arm_at(int64_t deadline_ns);
  void disarm();
  bool armed() const;
  bool expired() const;

 private:
  struct State;
  static void wait(const std::shared_ptr<State>& st);
  std::shared_ptr<State> st_;
};

}  // namespace sluice::net
