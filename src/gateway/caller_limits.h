// The rate limits and budgets of API keys and teams (auth.keys[].limits,
// auth.teams[].limits), enforced in-process: each worker holds its own shard
// of every limit (limit / workers), so nothing is shared on the hot path.
// A request reserves its estimated cost before it is forwarded and settles
// the real usage when it ends (policy/rate_limit.h for the semantics).
// Times are wall-clock (ns for the minute windows, s for the calendar
// budgets), so windows fall on whole minutes as they will in Redis.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/settings.h"
#include "http/message.h"
#include "policy/rate_limit.h"

namespace sluice::gateway {

struct RequestContext;

// One caller's limits on one worker.
struct CallerLimits {
  policy::SlidingWindow rpm, tpm;
  policy::Budget tokens_day, tokens_month, usd_day, usd_month;  // usd in micro-dollars
  uint64_t rpm_limit = 0, tpm_limit = 0;                        // the configured (whole) limits, for headers
};

// What a request reserved, to settle later.
struct Reservation {
  CallerLimits* callers[2] = {nullptr, nullptr};  // key, team
  uint64_t tokens = 0;      // estimated tokens charged
  uint64_t micro_usd = 0;   // estimated cost charged
  int64_t wall_us = 0;      // when it was charged (settlement and headers reuse it)
  bool active = false;
  // Redis: the counters charged and what each is in (settled by delta).
  enum class Unit : uint8_t { kRequests, kTokens, kMicroUsd };
  std::vector<std::pair<std::string, Unit>> remote;
};

class WorkerLimits {
 public:
  // `previous` (a config reload): keys and teams that are still there keep
  // their counters (the same objects, so requests reserved under the old
  // snapshot settle into them), with the new limits.
  // `processes`: worker processes sharing the limits (server.processes; each
  // enforces its share, like each worker thread).
  WorkerLimits(const Settings& s, size_t workers, const WorkerLimits* previous = nullptr,
               const Settings* previous_settings = nullptr, size_t processes = 1);

  // Charges the request's estimate to its key and team. On refusal returns
  // the error (429 rate_limit_exceeded / insufficient_quota with Retry-After)
  // and charges nothing.
  struct Refusal {
    int status = 0;
    std::string code, message;
    int retry_after_s = 0;
  };
  std::optional<Refusal> reserve(RequestContext& rc, int64_t now_ns, int64_t wall_s);
  // What a request may cost (prompt estimate + max_tokens or
  // default_max_tokens, priced by `pricing`), and what it did cost.
  struct Cost {
    uint64_t tokens = 0;
    int64_t micro_usd = 0;
  };
  static Cost estimated_cost(const RequestContext& rc);
  static Cost actual_cost(const RequestContext& rc);

  // Settles with the usage the request ended with.
  void settle(RequestContext& rc, int64_t now_ns, int64_t wall_s);
  // Budget spend, for the state file: one line per budget in use,
  // "key|team <name> <budget> <period> <used>". Call it on the worker's
  // thread (or once the workers have stopped).
  void snapshot(const Settings& s, int64_t wall_s, std::vector<std::string>& lines);
  // Adds spend read back from the state file (this worker's share of it).
  void restore(const Settings& s, int64_t wall_s, std::string_view line);

  // x-ratelimit-* for the request's key (empty when it has no rpm/tpm).
  void rate_limit_headers(RequestContext& rc, std::string& storage, std::vector<http::Header>& out);

 private:
  // Undoes a refused reservation: every charge of the callers before
  // `caller`, and the first `done` charges of `caller` (rpm, tpm, budgets).
  void rollback(RequestContext& rc, int caller, int done, int64_t now_ns, int64_t wall_s);

  size_t workers_;    // shards of every limit: threads x processes (x Redis replicas, for the fallback)
  size_t processes_;  // the state file is per process: a line holds this process's spend
  std::vector<std::shared_ptr<CallerLimits>> keys_, teams_;  // by index in settings.auth
};

}  // namespace sluice::gateway
