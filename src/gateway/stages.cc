#include <random>

#include "gateway/stage.h"
#include "core/clock.h"
#include "gateway/shared_policy.h"
#include "gateway/worker_context.h"
#include "http/error_body.h"
#include "llm/request_inspector.h"
#include "policy/api_keys.h"
#include "core/json_escape.h"

namespace sluice::gateway {

boost::asio::awaitable<StageResult> Stage::resume(RequestContext&) { co_return StageResult::next(); }

namespace {

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (unsigned char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(a >> (i * 4)) & 15];
    id[16 + i] = kHex[(b >> (i * 4)) & 15];
  }
  return id;
}

std::string models_list(const Settings& s) {
  std::string out = "{\"object\":\"list\",\"data\":[";
  bool first = true;
  auto add = [&](const std::string& id) {
    if (!first) out += ',';
    first = false;
    out += "{\"id\":\"";
    json_escape_append(out, id);
    out += "\",\"object\":\"model\",\"created\":0,\"owned_by\":\"sluice\"}";
  };
  for (const auto& m : s.models) {
    if (m.name == "*") continue;
    add(m.name);
    for (const auto& a : m.aliases) add(a);
  }
  out += "]}";
  return out;
}

class AdmitStage final : public Stage {
 public:
  std::string_view name() const override { return "admit"; }
  StageResult process(RequestContext& rc) override {
    if (rc.policy && rc.policy->shedding->load(std::memory_order_relaxed)) {
      const auto& m = rc.settings->admission.memory;
      return StageResult::overloaded(503, "the gateway is over its memory high watermark; retry shortly",
                                     static_cast<int>((m.retry_after.count() + 999) / 1000));
    }
    return StageResult::next();
  }
};

class ValidateStage final : public Stage {
 public:
  std::string_view name() const override { return "validate"; }
  StageResult process(RequestContext& rc) override {
    const auto& req = rc.ex.request();
    const auto violation = rc.settings->admission.header_rules.check(req.headers);
    // The client's id, unless a header rule refused that very header.
    std::string_view id = req.find("x-request-id");
    const bool id_refused = violation && violation->header == "x-request-id";
    rc.request_id = valid_request_id(id) && !id_refused ? std::string(id) : new_request_id();

    std::string_view path = req.path();
    if (path.substr(0, 4) != "/v1/")
      return StageResult::error(404, "unknown_url",
                                "Invalid URL (" + std::string(req.method) + " " + std::string(path) +
                                    "): the API lives under /v1/");
    rc.kind = llm::api_kind_for_path(path);
    if (path == "/v1/models") {
      if (req.method != "GET" && req.method != "HEAD") return StageResult::method_not_allowed(path, "GET, HEAD");
      return StageResult::reply(200, models_list(*rc.settings));
    }
    if (rc.kind != llm::ApiKind::kOther && req.method != "POST") return StageResult::method_not_allowed(path, "POST");
    if (const auto& v = violation) {
      rc.header_violation = v;
      // Names the header, never echoes its value.
      std::string what = v->code == "missing_header"           ? "is required"
                         : v->code == "header_value_too_large" ? "is too large (" + std::to_string(v->value_length) + " bytes)"
                                                               : "does not have the expected format";
      return StageResult::error(v->status, std::string(v->code), "header '" + std::string(v->header) + "' " + what);
    }
    return StageResult::next();
  }
};

// API keys (auth.keys): `Authorization: Bearer <key>` or `x-api-key: <key>`.
// With no keys configured the gateway is open. A key never appears in an
// error, a log line or a metric: the key's id does.
class AuthenticateStage final : public Stage {
 public:
  std::string_view name() const override { return "authenticate"; }
  StageResult process(RequestContext& rc) override {
    const Auth& auth = rc.settings->auth;
    if (!auth.enabled()) return StageResult::next();
    const auto& req = rc.ex.request();
    std::string_view key = req.find("x-api-key");
    if (key.empty()) {
      std::string_view a = req.find("authorization");
      if (a.size() > 7 && http::iequals(a.substr(0, 7), "bearer ")) key = a.substr(7);
      while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
    }
    if (key.empty())
      return StageResult::error(401, "invalid_api_key",
                                "Missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'");
    const auto digest = policy::key_digest(key);
    // The cache is the snapshot's: a key removed by a reload is not found there.
    if (rc.gen) {
      if (auto it = rc.gen->verified_keys.find(digest); it != rc.gen->verified_keys.end()) {
        rc.principal = &auth.keys[it->second];
        return StageResult::next();
      }
    }
    const ptrdiff_t i = auth.index.find(key, digest);
    if (i < 0) return StageResult::error(401, "invalid_api_key", "Incorrect API key provided");
    rc.principal = &auth.keys[static_cast<size_t>(i)];
    if (rc.gen) {
      if (rc.gen->verified_keys.size() >= WorkerGeneration::kKeyCacheMax) rc.gen->verified_keys.clear();
      rc.gen->verified_keys.emplace(digest, static_cast<size_t>(i));
    }
    return StageResult::next();
  }
};

class InspectStage final : public Stage {
 public:
  std::string_view name() const override { return "inspect"; }
  StageResult process(RequestContext& rc) override {
    return rc.body_read ? inspect(rc) : StageResult::suspend();
  }
  boost::asio::awaitable<StageResult> resume(RequestContext& rc) override {
    Status s = co_await rc.ex.read_body(rc.body, rc.settings->server.max_body_bytes);
    rc.body_read = true;
    rc.bytes_in = rc.body.size();
    if (!s) {
      switch (s.code()) {
        case Errc::kBodyTooLarge: co_return StageResult::error(413, "request_too_large", s.message());
        case Errc::kTimeout: co_return StageResult::error(408, "request_timeout", s.message());
        case Errc::kInvalid: co_return StageResult::error(400, "invalid_request", s.message());
        default: co_return StageResult::error(499, "client_closed", s.message());
      }
    }
    co_return inspect(rc);
  }

 private:
  StageResult inspect(RequestContext& rc) {
    if (rc.kind == llm::ApiKind::kOther) {
      // Pass-through endpoints: the model is optional; read it when the body is JSON.
      if (rc.body.empty() || rc.body.front() != '{') return StageResult::next();
      auto info = llm::inspect_request(rc.kind, rc.body);
      if (info) rc.info = std::move(*info);
      return StageResult::next();
    }
    if (rc.body.empty()) return StageResult::error(400, "invalid_request", "request body is empty; expected JSON");
    auto info = llm::inspect_request(rc.kind, rc.body);
    if (!info) return StageResult::error(400, "invalid_request", info.status().message());
    rc.info = std::move(*info);
    return StageResult::next();
  }
};

class RouteStage final : public Stage {
 public:
  std::string_view name() const override { return "route"; }
  StageResult process(RequestContext& rc) override {
    if (rc.info.model.empty()) {
      // Pass-through paths (/v1/files, ...) without a model in the body.
      rc.route = rc.settings->route_without_model();
      if (!rc.route)
        return StageResult::error(404, "no_default_route",
                                  "This request names no model and no default route is configured "
                                  "(add a models entry named \"*\" or set default_upstream)");
      return check_allow_list(rc);
    }
    rc.route = rc.settings->find_model(rc.info.model);
    if (!rc.route) {
      return StageResult::error(404, "model_not_found",
                                "The model '" + rc.info.model + "' does not exist or is not served here");
    }
    if (StageResult r = check_allow_list(rc); r.action != StageAction::kContinue) return r;
    if (rc.principal && !rc.principal->models.empty() && !policy::model_allowed(rc.principal->models, rc.info.model) &&
        (rc.route->name == "*" || !policy::model_allowed(rc.principal->models, rc.route->name)))
      return StageResult::error(403, "model_not_allowed",
                                "The key '" + rc.principal->id + "' may not use the model '" + rc.info.model + "'");
    // Aliases and upstream_model: the upstream is asked for its own name.
    if (!rc.route->upstream_model.empty()) llm::rewrite_model(rc.body, rc.info, rc.route->upstream_model);
    if (rc.info.stream && !rc.info.include_usage &&
        (rc.kind == llm::ApiKind::kChatCompletions || rc.kind == llm::ApiKind::kCompletions)) {
      // Ask for usage anyway so streamed tokens are always counted; the
      // forwarder drops the usage-only chunk the client did not ask for.
      rc.strip_usage_chunk = llm::ensure_stream_usage(rc.body);
    }
    return StageResult::next();
  }

 private:
  // A route's allow-list in reject mode refuses a request that carries a
  // header it does not name (drop mode is applied by the forwarder).
  static StageResult check_allow_list(RequestContext& rc) {
    const auto& allow = rc.route->allow_headers;
    if (!allow || allow->mode != policy::AllowHeaders::Mode::kReject) return StageResult::next();
    for (const http::Header& h : rc.ex.request().headers) {
      if (gateway_owned_header(h.name) || allow->allows(h.name)) continue;
      rc.header_violation = policy::HeaderViolation{400, "header_not_allowed", "allow_headers", h.name, h.value.size()};
      return StageResult::error(400, "header_not_allowed",
                                "header '" + std::string(h.name) + "' is not allowed on this route");
    }
    return StageResult::next();
  }
};

// Waits for a slot under each concurrency limit in turn (global, upstream,
// model). Slots are taken without waiting when there is room; a full limit
// queues the request (in order of arrival) up to its queue timeout.
class LimitStage final : public Stage {
 public:
  std::string_view name() const override { return "limit"; }

  StageResult process(RequestContext& rc) override {
    if (rc.policy && rc.policy->any_limit) {
      const auto gates = rc.policy->gates_for(*rc.settings, rc.route, rc.principal);
      for (auto& slots = rc.slots; slots.next_gate < gates.size(); ++slots.next_gate) {
        policy::ConcurrencyLimit* l = gates[slots.next_gate].limit;
        if (!l) continue;
        if (!l->try_acquire()) return StageResult::suspend();
        slots.held[slots.count++] = l;
      }
    }
    rc.slots.next_gate = SharedPolicy::kGates;  // resume() goes straight to the caller's limits
    if (rc.principal && rc.gen && rc.gen->redis_limits) return StageResult::suspend();  // one Redis round trip
    return charge_caller(rc);
  }

  boost::asio::awaitable<StageResult> resume(RequestContext& rc) override {
    const auto gates =
        rc.policy ? rc.policy->gates_for(*rc.settings, rc.route, rc.principal) : std::array<SharedPolicy::Gate, SharedPolicy::kGates>{};
    for (auto& slots = rc.slots; slots.next_gate < gates.size(); ++slots.next_gate) {
      const auto [l, config] = gates[slots.next_gate];
      if (!l) continue;
      policy::ConcurrencyLimit::Wait wait;
      // A client that goes away leaves the queue at once.
      rc.ex.set_abort_hook([&wait] { wait.cancel(); });
      const auto outcome = co_await l->acquire(rc.ex.executor(), wait);
      rc.ex.set_abort_hook(nullptr);
      if (outcome == policy::ConcurrencyLimit::Outcome::kAcquired) slots.held[slots.count++] = l;
      if (outcome == policy::ConcurrencyLimit::Outcome::kCancelled || rc.ex.aborted())
        co_return StageResult::error(499, "client_closed", "the client went away while queued");
      if (outcome == policy::ConcurrencyLimit::Outcome::kAcquired) continue;
      static constexpr const char* kWhich[] = {"the gateway", "this upstream", "this model", "this API key",
                                               "this team"};
      const char* which = kWhich[slots.next_gate];
      const bool full = outcome == policy::ConcurrencyLimit::Outcome::kQueueFull;
      co_return StageResult::overloaded(
          config->status, std::string(full ? "too many requests waiting for " : "no capacity in time for ") + which +
                              "; retry shortly",
          1);
    }
    if (rc.principal && rc.w && rc.gen && rc.gen->redis_limits) {
      auto refusal = co_await rc.w->reserve_remote(rc);
      co_return refusal ? refused(std::move(*refusal)) : StageResult::next();
    }
    co_return charge_caller(rc);
  }

 private:
  static StageResult refused(WorkerLimits::Refusal refusal) {
    StageResult r = StageResult::overloaded(refusal.status, std::move(refusal.message), refusal.retry_after_s);
    r.code = std::move(refusal.code);
    return r;
  }

  // The key's and team's rate limits and budgets: the request's estimated
  // cost is charged now and settled when it ends (caller_limits.h).
  static StageResult charge_caller(RequestContext& rc) {
    if (!rc.principal || !rc.gen) return StageResult::next();
    const int64_t wall = rc.reservation.wall_us = wall_us();
    auto refusal = rc.gen->caller_limits.reserve(rc, wall * 1000, wall / 1'000'000);
    return refusal ? refused(std::move(*refusal)) : StageResult::next();
  }
};

}  // namespace

bool gateway_owned_header(std::string_view name) {
  if (http::is_hop_by_hop(name)) return true;
  static constexpr std::string_view kOwned[] = {"host", "content-length", "authorization", "x-api-key",
                                                "x-request-id", "expect", "accept-encoding"};
  for (auto d : kOwned)
    if (http::iequals(name, d)) return true;
  return false;
}

std::vector<std::unique_ptr<Stage>> make_default_stages() {
  std::vector<std::unique_ptr<Stage>> v;
  v.push_back(std::make_unique<AdmitStage>());
  v.push_back(std::make_unique<ValidateStage>());
  v.push_back(std::make_unique<AuthenticateStage>());
  v.push_back(std::make_unique<InspectStage>());
  v.push_back(std::make_unique<RouteStage>());
  v.push_back(std::make_unique<LimitStage>());
  return v;
}

}  // namespace sluice::gateway
