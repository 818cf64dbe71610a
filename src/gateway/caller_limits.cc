#include "gateway/caller_limits.h"

#include <algorithm>
#include <chrono>
#include <array>
#include <sstream>
#include <cmath>
#include <unordered_map>

#include "core/clock.h"
#include "gateway/context.h"

namespace sluice::gateway {

namespace {

uint64_t share(uint64_t limit, size_t workers) { return (limit + workers - 1) / workers; }

CallerLimits make(const Limits& l, size_t w, int64_t window_ns) {
  using policy::Budget;
  CallerLimits c;
  if (l.rpm) c.rpm = policy::SlidingWindow(share(*l.rpm, w), window_ns), c.rpm_limit = *l.rpm;
  if (l.tpm) c.tpm = policy::SlidingWindow(share(*l.tpm, w), window_ns), c.tpm_limit = *l.tpm;
  if (l.tokens_per_day) c.tokens_day = Budget(share(*l.tokens_per_day, w), Budget::Period::kDay);
  if (l.tokens_per_month) c.tokens_month = Budget(share(*l.tokens_per_month, w), Budget::Period::kMonth);
  auto micro = [&](double usd) { return share(static_cast<uint64_t>(std::llround(usd * 1e6)), w); };
  if (l.usd_per_day) c.usd_day = Budget(micro(*l.usd_per_day), Budget::Period::kDay);
  if (l.usd_per_month) c.usd_month = Budget(micro(*l.usd_per_month), Budget::Period::kMonth);
  return c;
}

// A reload: the same caller with new limits. Counts and spend are kept
// where the limit only changed; a window or budget turned on starts empty.
void reconfigure(CallerLimits& c, const CallerLimits& next) {
  auto window = [](policy::SlidingWindow& cur, const policy::SlidingWindow& n) {
    if (cur.enabled() && n.enabled() && cur.window_ns() == n.window_ns()) cur.set_limit(n.limit());
    else cur = n;
  };
  auto budget = [](policy::Budget& cur, const policy::Budget& n) {
    if (cur.enabled() && n.enabled() && cur.period() == n.period()) cur.set_limit(n.limit());
    else cur = n;
  };
  window(c.rpm, next.rpm);
  window(c.tpm, next.tpm);
  budget(c.tokens_day, next.tokens_day);
  budget(c.tokens_month, next.tokens_month);
  budget(c.usd_day, next.usd_day);
  budget(c.usd_month, next.usd_month);
  c.rpm_limit = next.rpm_limit;
  c.tpm_limit = next.tpm_limit;
}

// "17ms", "4s", "6m0s", as OpenAI writes its x-ratelimit-reset-* values.
std::string duration_text(int64_t ns) {
  if (ns < 1'000'000'000) return std::to_string((ns + 999'999) / 1'000'000) + "ms";
  const int64_t s = (ns + 999'999'999) / 1'000'000'000;
  if (s < 60) return std::to_string(s) + "s";
  return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
}

}  // namespace

namespace {

// micro-dollars: tokens x price per million tokens.
int64_t micro_usd(const RequestContext& rc, uint64_t in, uint64_t out) {
  const std::string_view model = rc.route && rc.route->name != "*" ? std::string_view(rc.route->name)
                                                                    : std::string_view(rc.info.model);
  const Price* p = rc.settings->price(model);
  if (!p) return 0;
  return std::llround(static_cast<double>(in) * p->input_per_mtok + static_cast<double>(out) * p->output_per_mtok);
}

}  // namespace

WorkerLimits::Cost WorkerLimits::estimated_cost(const RequestContext& rc) {
  const uint64_t prompt = static_cast<uint64_t>(std::max<int64_t>(0, rc.info.estimated_prompt_tokens));
  const uint64_t output =
      rc.info.max_tokens ? static_cast<uint64_t>(*rc.info.max_tokens) : rc.settings->default_max_tokens;
  return {prompt + output, micro_usd(rc, prompt, output)};
}

WorkerLimits::Cost WorkerLimits::actual_cost(const RequestContext& rc) {
  const uint64_t in = static_cast<uint64_t>(std::max<int64_t>(0, rc.usage.prompt_tokens));
  const uint64_t out = static_cast<uint64_t>(std::max<int64_t>(0, rc.usage.completion_tokens));
  return {in + out, micro_usd(rc, in, out)};
}

WorkerLimits::WorkerLimits(const Settings& s, size_t workers, const WorkerLimits* previous,
                           const Settings* previous_settings, size_t processes)
    // With Redis these are the fallback: each replica's share of the limit.
    : workers_(std::max<size_t>(1, workers) * std::max<size_t>(1, processes) *
               (s.redis.enabled ? s.redis.expected_replicas : 1)),
      processes_(std::max<size_t>(1, processes)) {
  const int64_t window_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(s.limits_window).count();
  std::unordered_map<std::string_view, std::shared_ptr<CallerLimits>> old_keys, old_teams;
  if (previous && previous_settings) {
    for (size_t k = 0; k < previous->keys_.size(); ++k) old_keys[previous_settings->auth.keys[k].id] = previous->keys_[k];
    for (size_t t = 0; t < previous->teams_.size(); ++t)
      old_teams[previous_settings->auth.teams[t].name] = previous->teams_[t];
  }
  auto add = [&](auto& out, auto& old, std::string_view name, const Limits& l) {
    CallerLimits fresh = make(l, workers_, window_ns);
    if (auto it = old.find(name); it != old.end()) {
      reconfigure(*it->second, fresh);
      out.push_back(it->second);
    } else {
      out.push_back(std::make_shared<CallerLimits>(std::move(fresh)));
    }
  };
  for (const ApiKey& k : s.auth.keys) add(keys_, old_keys, k.id, k.limits);
  for (const Team& t : s.auth.teams) add(teams_, old_teams, t.name, t.limits);
}

std::optional<WorkerLimits::Refusal> WorkerLimits::reserve(RequestContext& rc, int64_t now_ns, int64_t wall_s) {
  const ApiKey* key = rc.principal;
  if (!key) return std::nullopt;
  const Settings& s = *rc.settings;
  Reservation& r = rc.reservation;
  r.callers[0] = keys_[static_cast<size_t>(key - s.auth.keys.data())].get();
  r.callers[1] = key->team_index < teams_.size() ? teams_[key->team_index].get() : nullptr;
  const Cost est = estimated_cost(rc);
  r.tokens = est.tokens;
  r.micro_usd = static_cast<uint64_t>(est.micro_usd);

  // Each check charges on success; a refusal undoes what was charged (rollback).
  for (int i = 0; i < 2; ++i) {
    CallerLimits* c = r.callers[i];
    if (!c) continue;
    const char* who = i == 0 ? "key" : "team";
    const std::string& name = i == 0 ? key->id : key->team;
    auto refuse = [&](const char* code, const std::string& what, int64_t wait_ns) {
      return Refusal{429, code, "Rate limit reached for " + std::string(who) + " '" + name + "': " + what,
                     static_cast<int>(std::max<int64_t>(1, (wait_ns + 999'999'999) / 1'000'000'000))};
    };
    if (!c->rpm.try_add(now_ns, 1)) {
      rollback(rc, i, 0, now_ns, wall_s);
      return refuse("rate_limit_exceeded", "requests per minute (" + std::to_string(c->rpm_limit) + ")",
                    c->rpm.wait_for(now_ns, 1));
    }
    if (!c->tpm.try_add(now_ns, r.tokens)) {
      rollback(rc, i, 1, now_ns, wall_s);
      return refuse("rate_limit_exceeded",
                    "tokens per minute (" + std::to_string(c->tpm_limit) + "; this request may use " +
                        std::to_string(r.tokens) + ")",
                    c->tpm.wait_for(now_ns, r.tokens));
    }
    policy::Budget* budgets[] = {&c->tokens_day, &c->tokens_month, &c->usd_day, &c->usd_month};
    const uint64_t costs[] = {r.tokens, r.tokens, r.micro_usd, r.micro_usd};
    const char* names[] = {"tokens per day", "tokens per month", "USD per day", "USD per month"};
    for (int b = 0; b < 4; ++b) {
      if (budgets[b]->try_add(wall_s, costs[b])) continue;
      rollback(rc, i, 2 + b, now_ns, wall_s);
      return refuse("insufficient_quota", std::string("budget of ") + names[b] + " used up",
                    budgets[b]->reset_in(wall_s) * 1'000'000'000);
    }
  }
  r.active = true;
  return std::nullopt;
}

void WorkerLimits::rollback(RequestContext& rc, int caller, int done, int64_t now_ns, int64_t wall_s) {
  Reservation& r = rc.reservation;
  for (int i = 0; i <= caller; ++i) {
    CallerLimits* c = r.callers[i];
    if (!c) continue;
    const int steps = i < caller ? 6 : done;  // what was charged to this caller
    const auto t = static_cast<int64_t>(r.tokens), u = static_cast<int64_t>(r.micro_usd);
    if (steps > 0) c->rpm.adjust(now_ns, -1);
    if (steps > 1) c->tpm.adjust(now_ns, -t);
    if (steps > 2) c->tokens_day.adjust(wall_s, -t);
    if (steps > 3) c->tokens_month.adjust(wall_s, -t);
    if (steps > 4) c->usd_day.adjust(wall_s, -u);
    if (steps > 5) c->usd_month.adjust(wall_s, -u);
  }
  r.callers[0] = r.callers[1] = nullptr;
}

void WorkerLimits::settle(RequestContext& rc, int64_t now_ns, int64_t wall_s) {
  Reservation& r = rc.reservation;
  if (!r.active) return;
  r.active = false;
  const Cost used = actual_cost(rc);
  const int64_t dt = static_cast<int64_t>(used.tokens) - static_cast<int64_t>(r.tokens);
  const int64_t du = used.micro_usd - static_cast<int64_t>(r.micro_usd);
  for (CallerLimits* c : r.callers) {
    if (!c) continue;
    c->tpm.adjust(now_ns, dt);
    c->tokens_day.adjust(wall_s, dt);
    c->tokens_month.adjust(wall_s, dt);
    c->usd_day.adjust(wall_s, du);
    c->usd_month.adjust(wall_s, du);
  }
}

namespace {

constexpr const char* kBudgetNames[] = {"tokens_day", "tokens_month", "usd_day", "usd_month"};

std::array<policy::Budget*, 4> budgets_of(CallerLimits& c) {
  return {&c.tokens_day, &c.tokens_month, &c.usd_day, &c.usd_month};
}

}  // namespace

void WorkerLimits::snapshot(const Settings& s, int64_t wall_s, std::vector<std::string>& lines) {
  auto add = [&](const char* kind, const std::string& name, CallerLimits& c) {
    const auto budgets = budgets_of(c);
    for (size_t b = 0; b < budgets.size(); ++b) {
      if (!budgets[b]->enabled()) continue;
      const uint64_t used = budgets[b]->used(wall_s);
      if (used == 0) continue;
      lines.push_back(std::string(kind) + " " + name + " " + kBudgetNames[b] + " " +
                      std::to_string(budgets[b]->period_key(wall_s)) + " " + std::to_string(used));
    }
  };
  for (size_t k = 0; k < keys_.size(); ++k) add("key", s.auth.keys[k].id, *keys_[k]);
  for (size_t t = 0; t < teams_.size(); ++t) add("team", s.auth.teams[t].name, *teams_[t]);
}

void WorkerLimits::restore(const Settings& s, int64_t wall_s, std::string_view line) {
  // "kind name budget period used"; anything else is skipped.
  std::string kind, name, budget;
  int64_t period = 0;
  uint64_t used = 0;
  std::istringstream in{std::string(line)};
  if (!(in >> kind >> name >> budget >> period >> used)) return;
  CallerLimits* c = nullptr;
  if (kind == "key") {
    for (size_t k = 0; k < s.auth.keys.size(); ++k)
      if (s.auth.keys[k].id == name) c = keys_[k].get();
  } else if (kind == "team") {
    for (size_t t = 0; t < s.auth.teams.size(); ++t)
      if (s.auth.teams[t].name == name) c = teams_[t].get();
  }
  if (!c) return;  // a key or team no longer configured
  const auto budgets = budgets_of(*c);
  for (size_t b = 0; b < budgets.size(); ++b)
    if (budget == kBudgetNames[b] && budgets[b]->enabled())
      budgets[b]->restore(wall_s, period, (used * processes_ + workers_ - 1) / workers_);  // this thread's share
}

void WorkerLimits::rate_limit_headers(RequestContext& rc, std::string& storage, std::vector<http::Header>& out) {
  // As of the reservation (no second clock read), or now for a request that made none.
  const int64_t now_ns = (rc.reservation.wall_us ? rc.reservation.wall_us : wall_us()) * 1000;
  CallerLimits* c = rc.reservation.callers[0];
  // With Redis the local shards hold nothing unless they stood in for it.
  if (!c && rc.principal && !rc.settings->redis.enabled)
    c = keys_[static_cast<size_t>(rc.principal - rc.settings->auth.keys.data())].get();
  if (!c) return;
  // Views into `storage`: reserve first so it never moves.
  storage.clear();
  storage.reserve(256);
  auto add = [&](std::string_view name, const std::string& value) {
    const size_t at = storage.size();
    storage += value;
    out.push_back({name, std::string_view(storage).substr(at, value.size())});
  };
  // The whole limit, what is left of it (this worker's share times the
  // workers), and when it is whole again.
  auto window = [&](policy::SlidingWindow& w, uint64_t limit, std::string_view limit_name,
                    std::string_view remaining_name, std::string_view reset_name) {
    if (!w.enabled()) return;
    add(limit_name, std::to_string(limit));
    add(remaining_name, std::to_string(std::min<uint64_t>(limit, w.remaining(now_ns) * workers_)));
    add(reset_name, duration_text(w.wait_for(now_ns, w.limit())));
  };
  window(c->rpm, c->rpm_limit, "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
         "x-ratelimit-reset-requests");
  window(c->tpm, c->tpm_limit, "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens");
}

}  // namespace sluice::gateway
