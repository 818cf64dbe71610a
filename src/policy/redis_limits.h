// Rate limits and budgets shared by every replica through Redis: the same
// semantics as the in-process ones (rate_limit.h), evaluated by two Lua
// scripts (lua/reserve.lua, lua/settle.lua, embedded at build time) so that
// a reservation over all of a request's limits is one round trip and atomic.
// A circuit breaker stops calling a Redis that keeps failing; the caller
// decides what a request gets then (fail open, fail closed, local limits).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "net/redis_client.h"

namespace sluice::policy {

// One limit of one caller, as the reserve script takes it.
struct RedisLimit {
  std::string base;    // counter key prefix, e.g. "sluice:lim:{key:team-a}:tpm"
  bool window = true;  // sliding window (true) or calendar budget
  uint64_t limit = 0;
  uint64_t cost = 0;
  int64_t period = 0;  // budgets: the period key (day or month number)
};

class RedisLimiter {
 public:
  struct Options {
    int64_t timeout_ms = 20;
    int64_t window_ms = 60'000;
    int breaker_failures = 3;      // consecutive failures that open the breaker
    int64_t breaker_open_ms = 1000;  // then one trial call
  };
  enum class Verdict { kAdmit, kRefuse, kUnavailable };
  struct Outcome {
    Verdict verdict = Verdict::kUnavailable;
    size_t limit = 0;       // kRefuse: which of the limits (0-based)
    int64_t wait_ms = 0;    // kRefuse: when it would fit (-1: a budget, at its period's end)
    std::vector<std::string> counters;  // kAdmit: the counters charged, in the order of the limits
  };

  RedisLimiter(net::RedisClient& client, Options o);

  boost::asio::awaitable<Outcome> reserve(const std::vector<RedisLimit>& limits, int64_t now_ms);
  // Adds the deltas (real usage minus what was reserved) to the counters.
  boost::asio::awaitable<void> settle(std::vector<std::pair<std::string, int64_t>> deltas);

  bool breaker_open(int64_t now_ms) const { return failures_ >= opts_.breaker_failures && now_ms < open_until_ms_; }
  // Transitions for the log and metrics: true once when the breaker opens or closes.
  bool take_transition(bool& opened);

 private:
  boost::asio::awaitable<Result<net::RedisReply>> eval(const std::string& script, const std::string& sha,
                                                       std::vector<std::string> args);
  void record(bool ok, int64_t now_ms);

  net::RedisClient& client_;
  Options opts_;
  int failures_ = 0;
  int64_t open_until_ms_ = 0;
  bool transition_ = false, opened_ = false;
};

// The scripts (for tests and for `redis-cli --eval`).
const std::string& reserve_script();
const std::string& settle_script();

}  // namespace sluice::policy
