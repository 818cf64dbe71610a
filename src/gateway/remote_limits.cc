// Key and team limits in Redis (limits.backend: redis): one reservation per
// request (reserve.lua, all limits at once), settled after the response
// without holding anyone up (settle.lua). When Redis fails or its breaker is
// open the request gets what limits.redis.on_failure says.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>

#include "core/clock.h"
#include "gateway/worker_context.h"

namespace sluice::gateway {

namespace asio = boost::asio;
using Unit = Reservation::Unit;

namespace {

// Settlements are batched: the deltas of every request that ends within a
// few milliseconds go to Redis in one call (summed per counter), so a request
// costs one round trip on its path (the reservation) and a share of one after.
constexpr auto kSettleBatch = std::chrono::milliseconds(5);

asio::awaitable<void> flush_settles(WorkerContext* w) {
  asio::steady_timer t(w->ctx, kSettleBatch);
  (void)co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  std::vector<std::pair<std::string, int64_t>> deltas(w->pending_settles.begin(), w->pending_settles.end());
  w->pending_settles.clear();
  w->settle_flush_scheduled = false;
  // The current snapshot's limiter (held, in case a reload replaces it meanwhile).
  const std::shared_ptr<WorkerGeneration> g = w->gen;
  if (!g->redis_limits) co_return;  // a reload turned Redis off: the counters expire there
  co_await g->redis_limits->settle(std::move(deltas));
  w->note_redis_transition(*g);
}

}  // namespace

void WorkerGeneration::start_redis(boost::asio::io_context& ctx, const WorkerGeneration* previous) {
  const auto& r = settings.redis;
  if (!r.enabled || settings.auth.keys.empty()) return;
  if (previous && previous->redis && previous->settings.redis.host == r.host && previous->settings.redis.port == r.port)
    redis = previous->redis;
  else
    redis = std::make_shared<net::RedisClient>(ctx.get_executor(), net::RedisClient::Options{.host = r.host, .port = r.port});
  redis_limits = std::make_unique<policy::RedisLimiter>(
      *redis, policy::RedisLimiter::Options{.timeout_ms = r.timeout.count(), .window_ms = settings.limits_window.count()});
}

void WorkerContext::note_redis_transition(WorkerGeneration& g) {
  bool opened = false;
  if (!g.redis_limits->take_transition(opened)) return;
  metrics.counter(fam.limits_breaker, {opened ? "open" : "closed"}).inc();
  std::fprintf(stderr, "sluice: redis limits %s (%s:%u)\n",
               opened ? "unavailable: circuit breaker open, applying on_failure" : "available again",
               g.settings.redis.host.c_str(), g.settings.redis.port);
}

asio::awaitable<std::optional<WorkerLimits::Refusal>> WorkerContext::reserve_remote(RequestContext& rc) {
  const Settings& s = *rc.settings;
  const ApiKey* key = rc.principal;
  const WorkerLimits::Cost est = WorkerLimits::estimated_cost(rc);
  const int64_t wall_ms = wall_us() / 1000, wall_s = wall_ms / 1000;
  const int64_t day = policy::Budget(1, policy::Budget::Period::kDay).period_key(wall_s);
  const int64_t month = policy::Budget(1, policy::Budget::Period::kMonth).period_key(wall_s);

  std::vector<policy::RedisLimit> limits;
  std::vector<Unit> units;
  std::vector<std::string> what;  // for the refusal message
  auto add_caller = [&](const char* kind, const std::string& name, const Limits& l) {
    const std::string base = std::string("sluice:lim:{") + kind + ":" + name + "}:";
    const std::string who = std::string(kind) + " '" + name + "'";
    auto add = [&](const char* suffix, bool window, uint64_t limit, uint64_t cost, int64_t period, Unit u,
                   const char* desc) {
      limits.push_back({base + suffix, window, limit, cost, period});
      units.push_back(u);
      what.push_back(who + ": " + desc);
    };
    const uint64_t usd = static_cast<uint64_t>(std::max<int64_t>(0, est.micro_usd));
    if (l.rpm) add("rpm", true, *l.rpm, 1, 0, Unit::kRequests, "requests per minute");
    if (l.tpm) add("tpm", true, *l.tpm, est.tokens, 0, Unit::kTokens, "tokens per minute");
    if (l.tokens_per_day) add("tokens_day", false, *l.tokens_per_day, est.tokens, day, Unit::kTokens, "tokens per day");
    if (l.tokens_per_month)
      add("tokens_month", false, *l.tokens_per_month, est.tokens, month, Unit::kTokens, "tokens per month");
    auto micro = [](double d) { return static_cast<uint64_t>(std::llround(d * 1e6)); };
    if (l.usd_per_day) add("usd_day", false, micro(*l.usd_per_day), usd, day, Unit::kMicroUsd, "USD per day");
    if (l.usd_per_month) add("usd_month", false, micro(*l.usd_per_month), usd, month, Unit::kMicroUsd, "USD per month");
  };
  add_caller("key", key->id, key->limits);
  if (key->team_index < s.auth.teams.size()) {
    const Team& t = s.auth.teams[key->team_index];
    add_caller("team", t.name, t.limits);
  }
  if (limits.empty()) co_return std::nullopt;

  WorkerGeneration& g = *rc.gen;
  const auto out = co_await g.redis_limits->reserve(limits, wall_ms);
  note_redis_transition(g);
  using V = policy::RedisLimiter::Verdict;
  if (out.verdict == V::kAdmit) {
    Reservation& r = rc.reservation;
    r.tokens = est.tokens;
    r.micro_usd = static_cast<uint64_t>(std::max<int64_t>(0, est.micro_usd));
    r.remote.clear();
    for (size_t i = 0; i < out.counters.size() && i < units.size(); ++i) r.remote.emplace_back(out.counters[i], units[i]);
    co_return std::nullopt;
  }
  if (out.verdict == V::kRefuse) {
    const size_t i = std::min(out.limit, limits.size() - 1);
    const bool budget = !limits[i].window;
    const int64_t retry_s =
        out.wait_ms > 0 ? (out.wait_ms + 999) / 1000
                        : policy::Budget(1, limits[i].period == month ? policy::Budget::Period::kMonth
                                                                      : policy::Budget::Period::kDay)
                              .reset_in(wall_s);
    co_return WorkerLimits::Refusal{429, budget ? "insufficient_quota" : "rate_limit_exceeded",
                                    "Rate limit reached for " + what[i] + (budget ? " (budget used up)" : ""),
                                    static_cast<int>(std::max<int64_t>(1, retry_s))};
  }
  // Redis did not answer in time, or its breaker is open.
  using F = Settings::RedisBackend::OnFailure;
  const F mode = s.redis.on_failure;
  metrics.counter(fam.limits_unavailable, {mode == F::kFailOpen     ? "fail_open"
                                           : mode == F::kFailClosed ? "fail_closed"
                                                                    : "local_fallback"})
      .inc();
  if (mode == F::kFailOpen) co_return std::nullopt;
  if (mode == F::kFailClosed)
    co_return WorkerLimits::Refusal{503, "limits_unavailable", "rate limits cannot be checked right now; retry shortly",
                                    1};
  co_return g.caller_limits.reserve(rc, wall_ms * 1'000'000, wall_s);
}

void WorkerContext::settle_remote(RequestContext& rc) {
  Reservation& r = rc.reservation;
  if (r.remote.empty()) return;
  const WorkerLimits::Cost used = WorkerLimits::actual_cost(rc);
  const int64_t dt = static_cast<int64_t>(used.tokens) - static_cast<int64_t>(r.tokens);
  const int64_t du = used.micro_usd - static_cast<int64_t>(r.micro_usd);
  for (auto& [counter, unit] : r.remote) {
    const int64_t d = unit == Unit::kTokens ? dt : unit == Unit::kMicroUsd ? du : 0;
    if (d != 0) pending_settles[std::move(counter)] += d;
  }
  r.remote.clear();
  if (!pending_settles.empty() && !settle_flush_scheduled) {
    settle_flush_scheduled = true;
    asio::co_spawn(ctx, flush_settles(this), asio::detached);
  }
}

}  // namespace sluice::gateway
