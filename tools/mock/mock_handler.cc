#include "mock/mock_handler.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/clock.h"
#include "http/error_body.h"
#include "llm/request_inspector.h"
#include "mock/mock_model.h"

// GCC 12.2 miscompiles a co_await inside an if condition (the coroutine
// crashes with SIGILL/SIGSEGV depending on the frame layout), so every awaited
// result goes to a local first: `bool ok = co_await f(); if (!ok) ...`.
//
// GCC 12 reports a false -Wmismatched-new-delete once it inlines Asio's
// awaitable frame allocator (aligned_new) next to its sized operator delete.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace sluice::mock {

namespace asio = boost::asio;

void MockStats::add(const MockStats& o) {
  requests += o.requests;
  errors += o.errors;
  streams += o.streams;
  tokens += o.tokens;
  resets += o.resets;
  stalls += o.stalls;
  client_aborts += o.client_aborts;
}

namespace {

// Shared by all worker threads so ids stay unique process-wide; one relaxed
// increment per generation is cheap next to the rest of a request.
std::atomic<uint64_t> g_seq{0};

constexpr int64_t kMaxWaitMs = 10'000'000'000;  // keeps ms -> ns conversions in range

enum class Route : uint8_t { kNone, kChat, kCompletions, kEmbeddings, kModels, kModel, kHealth };

Route route_for(std::string_view path) {
  if (path == "/v1/chat/completions") return Route::kChat;
  if (path == "/v1/completions") return Route::kCompletions;
  if (path == "/v1/embeddings") return Route::kEmbeddings;
  if (path == "/v1/models") return Route::kModels;
  if (path.size() > 11 && path.starts_with("/v1/models/")) return Route::kModel;
  if (path == "/health") return Route::kHealth;
  return Route::kNone;
}

// The response headers: a content type, plus whatever extra the caller sets,
// plus the request's x-request-id echoed back.
class ReplyHeaders {
 public:
  ReplyHeaders(const http::Exchange& ex, std::string_view content_type) {
    add("content-type", content_type);
    std::string_view rid = ex.request().find("x-request-id");
    if (!rid.empty()) add("x-request-id", rid);
  }
  void add(std::string_view name, std::string_view value) { h_[n_++] = {name, value}; }
  std::span<const http::Header> span() const { return {h_.data(), n_}; }

 private:
  std::array<http::Header, 4> h_;
  size_t n_ = 0;
};

// Waits that end early when the client goes away: the Exchange abort hook
// cancels the one timer. Created lazily so unpaced requests never touch a timer.
class Pacer {
 public:
  explicit Pacer(http::Exchange& ex) : ex_(ex) {}
  ~Pacer() {
    if (timer_) ex_.set_abort_hook(nullptr);  // the hook points at timer_
  }
  Pacer(const Pacer&) = delete;
  Pacer& operator=(const Pacer&) = delete;

  // False when the client is gone (before or during the wait).
  asio::awaitable<bool> sleep(int64_t ms) {
    if (ex_.aborted()) co_return false;
    if (ms <= 0) co_return true;
    if (!timer_) {
      timer_.emplace(ex_.executor());
      ex_.set_abort_hook([t = &*timer_] { t->cancel(); });
    }
    timer_->expires_after(std::chrono::milliseconds(std::min(ms, kMaxWaitMs)));
    auto [ec] = co_await timer_->async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;  // cancelled (client gone) or expired: aborted() tells which
    const bool alive = !ex_.aborted();
    co_return alive;
  }

 private:
  http::Exchange& ex_;
  std::optional<asio::steady_timer> timer_;
};

asio::awaitable<void> reply_error(http::Exchange& ex, MockStats& stats, int status,
                                  std::string_view message, std::string_view type,
                                  std::string_view code, std::string_view allow = {}) {
  ++stats.errors;
  std::string body = http::error_body(message, type, code);
  ReplyHeaders h(ex, "application/json");
  if (status == 429) h.add("retry-after", "1");
  if (!allow.empty()) h.add("allow", allow);
  (void)co_await ex.respond(status, h.span(), body);
}

asio::awaitable<void> reply_json(http::Exchange& ex, std::string_view body) {
  ReplyHeaders h(ex, "application/json");
  (void)co_await ex.respond(200, h.span(), body);
}

// Pacing and faults of one request: options overridden by x-mock-* headers.
struct Plan {
  int64_t ttft_ms = 0;
  int64_t itl_ms = 0;
  TokenPlan tokens;
  // Tokens sent before the fault, if one applies to this generation.
  std::optional<int64_t> fault_at;
  bool stall = false;  // the fault is a stall rather than a reset
};

Plan make_plan(const MockOptions& opts, const MockOverrides& o, TokenPlan tokens) {
  Plan p;
  p.ttft_ms = o.ttft_ms.value_or(opts.ttft_ms);
  p.itl_ms = o.itl_ms.value_or(opts.itl_ms);
  p.tokens = tokens;
  // A fault after N tokens applies when N <= tokens: N == tokens means every
  // token arrives but the end of the response (finish, usage, [DONE]) never does.
  if (o.fail_after && *o.fail_after <= tokens.tokens) p.fault_at = o.fail_after;
  if (o.stall_after && *o.stall_after <= tokens.tokens &&
      (!p.fault_at || *o.stall_after < *p.fault_at)) {
    p.fault_at = o.stall_after;
    p.stall = true;
  }
  return p;
}

// Ends a response that hit its injected fault after its last token went out.
asio::awaitable<void> fault(http::Exchange& ex, const MockOptions& opts, const Plan& plan,
                            Pacer& pacer, MockStats& stats) {
  bool reset = true;
  if (plan.stall) {
    ++stats.stalls;
    reset = co_await pacer.sleep(opts.stall_limit_ms);  // false: the client left first
    if (!reset) ++stats.client_aborts;
  }
  if (reset) {
    ++stats.resets;
    ex.reset();
  }
}

asio::awaitable<void> stream_text(http::Exchange& ex, const MockOptions& opts, const Plan& plan,
                                  const ResponseMeta& meta, bool include_usage, Usage usage,
                                  MockStats& stats) {
  ++stats.streams;
  ReplyHeaders h(ex, "text/event-stream");
  h.add("cache-control", "no-cache");
  Status sent = co_await ex.send_head(200, h.span(), std::nullopt);
  if (!sent) co_return;

  Pacer pacer(ex);
  bool alive = co_await pacer.sleep(plan.ttft_ms);
  if (!alive) {
    ++stats.client_aborts;
    co_return;
  }
  SseEncoder sse(meta, include_usage);
  const int64_t n = plan.fault_at.value_or(plan.tokens.tokens);
  const bool complete = !plan.fault_at;
  std::string buf;

  if (plan.itl_ms <= 0) {
    // Unpaced: the whole stream in one write.
    buf.reserve(sse.size_hint(n));
    sse.append_start(buf);
    for (int64_t i = 0; i < n; ++i) sse.append_token(buf, i);
    if (complete) sse.append_end(buf, plan.tokens.finish_reason(), usage);
    sent = co_await ex.write(buf);
    if (!sent) {
      ++stats.client_aborts;
      co_return;
    }
    stats.tokens += static_cast<uint64_t>(n);
  } else {
    // One write per token; the start rides with the first token and the end
    // with the last.
    buf.reserve(sse.size_hint(3));
    sse.append_start(buf);
    for (int64_t i = 0; i < n; ++i) {
      if (i > 0) {
        alive = co_await pacer.sleep(plan.itl_ms);
        if (!alive) {
          ++stats.client_aborts;
          co_return;
        }
      }
      sse.append_token(buf, i);
      if (complete && i == n - 1) sse.append_end(buf, plan.tokens.finish_reason(), usage);
      sent = co_await ex.write(buf);
      if (!sent) {
        ++stats.client_aborts;
        co_return;
      }
      ++stats.tokens;
      buf.clear();
    }
    if (n == 0) {
      if (complete) sse.append_end(buf, plan.tokens.finish_reason(), usage);
      if (!buf.empty()) {
        sent = co_await ex.write(buf);
        if (!sent) {
          ++stats.client_aborts;
          co_return;
        }
      }
    }
  }

  if (!complete) {
    co_await fault(ex, opts, plan, pacer, stats);
    co_return;
  }
  (void)co_await ex.finish();
}

// Waits as long as generating `tokens` would take, then either faults (true
// is returned when the caller should still answer).
asio::awaitable<bool> delay_whole(http::Exchange& ex, const MockOptions& opts, const Plan& plan,
                                  Pacer& pacer, MockStats& stats) {
  int64_t gaps = std::max<int64_t>(plan.fault_at.value_or(plan.tokens.tokens) - 1, 0);
  int64_t wait = plan.itl_ms > 0 && gaps > kMaxWaitMs / plan.itl_ms
                     ? kMaxWaitMs
                     : plan.ttft_ms + plan.itl_ms * gaps;
  bool alive = co_await pacer.sleep(wait);
  if (!alive) {
    ++stats.client_aborts;
    co_return false;
  }
  if (plan.fault_at) {
    co_await fault(ex, opts, plan, pacer, stats);
    co_return false;
  }
  co_return true;
}

asio::awaitable<void> serve_text(http::Exchange& ex, const MockOptions& opts, Route route,
                                 const llm::RequestInfo& info, const MockOverrides& o,
                                 MockStats& stats) {
  if (info.max_tokens && *info.max_tokens < 1) {
    co_await reply_error(ex, stats, 400, "'max_tokens' must be at least 1", "invalid_request_error",
                         "invalid_value");
    co_return;
  }
  Plan plan = make_plan(
      opts, o, plan_tokens(o.tokens, info.max_tokens, opts.default_tokens, opts.max_tokens_cap));
  ResponseMeta meta;
  meta.api = route == Route::kChat ? TextApi::kChat : TextApi::kCompletions;
  meta.seq = g_seq.fetch_add(1, std::memory_order_relaxed) + 1;
  meta.created = wall_us() / 1'000'000;
  meta.model = info.model;
  Usage usage{std::max<int64_t>(info.estimated_prompt_tokens, 1), plan.tokens.tokens};

  if (info.stream) {
    co_await stream_text(ex, opts, plan, meta, info.include_usage, usage, stats);
    co_return;
  }
  Pacer pacer(ex);
  bool answer = co_await delay_whole(ex, opts, plan, pacer, stats);
  if (!answer) co_return;
  std::string body = completion_json(meta, plan.tokens, usage);
  stats.tokens += static_cast<uint64_t>(plan.tokens.tokens);
  co_await reply_json(ex, body);
}

asio::awaitable<void> serve_embeddings(http::Exchange& ex, const MockOptions& opts,
                                       std::string& body, const llm::RequestInfo& info,
                                       const MockOverrides& o, MockStats& stats) {
  auto req = parse_embedding_request(body);
  if (!req) {
    co_await reply_error(ex, stats, 400, req.status().message(), "invalid_request_error",
                         "invalid_value");
    co_return;
  }
  Plan plan = make_plan(opts, o, TokenPlan{});
  Pacer pacer(ex);
  bool answer = co_await delay_whole(ex, opts, plan, pacer, stats);
  if (!answer) co_return;
  int dim = req->dimensions.value_or(std::clamp(opts.embedding_dim, 1, kMaxEmbeddingDim));
  std::string out = embeddings_json(info.model, *req, dim,
                                    std::max<int64_t>(info.estimated_prompt_tokens, 1));
  co_await reply_json(ex, out);
}

asio::awaitable<void> serve(http::Exchange& ex, const MockOptions& opts, MockStats& stats) {
  const http::RequestHead& head = ex.request();
  const std::string_view path = head.path();
  const Route route = route_for(path);
  if (route == Route::kNone) {
    std::string msg = "Unknown request URL: ";
    msg += head.method;
    msg += ' ';
    msg += path;
    co_await reply_error(ex, stats, 404, msg, "invalid_request_error", "not_found");
    co_return;
  }
  const bool is_get = route == Route::kModels || route == Route::kModel || route == Route::kHealth;
  if (head.method != (is_get ? "GET" : "POST")) {
    std::string msg = "Method ";
    msg += head.method;
    msg += " not allowed for ";
    msg += path;
    co_await reply_error(ex, stats, 405, msg, "invalid_request_error", "method_not_allowed",
                         is_get ? "GET" : "POST");
    co_return;
  }
  if (route == Route::kHealth) {
    co_await reply_json(ex, "{\"status\":\"ok\"}");
    co_return;
  }

  // Read the body before any early answer so the connection stays reusable.
  std::string body;
  if (!is_get) {
    Status s = co_await ex.read_body(body, opts.max_body_bytes);
    if (!s) {
      switch (s.code()) {
        case Errc::kBodyTooLarge:
          co_await reply_error(ex, stats, 413, "request body too large", "invalid_request_error",
                               "request_too_large");
          break;
        case Errc::kInvalid:
        case Errc::kUnsupported:
          co_await reply_error(ex, stats, 400, "malformed request body", "invalid_request_error",
                               "invalid_body");
          break;
        case Errc::kTimeout:
          co_await reply_error(ex, stats, 408, "timed out reading the request body",
                               "invalid_request_error", "timeout");
          break;
        default:
          ++stats.client_aborts;  // the client is gone: nobody to answer
          break;
      }
      co_return;
    }
  }

  auto overrides = parse_overrides(head);
  if (!overrides) {
    co_await reply_error(ex, stats, 400, overrides.status().message(), "invalid_request_error",
                         "invalid_header");
    co_return;
  }
  const MockOverrides& o = *overrides;
  if (o.status) {
    std::string msg = "mock: injected status ";
    append_int(msg, *o.status);
    co_await reply_error(ex, stats, *o.status, msg, http::error_type_for_status(*o.status),
                         "mock_injected");
    co_return;
  }

  if (route == Route::kModels) {
    co_await reply_json(ex, models_json(opts.models));
    co_return;
  }
  if (route == Route::kModel) {
    co_await reply_json(ex, model_json(path.substr(11)));
    co_return;
  }

  reserve_json_padding(body);  // lets the inspector parse in place
  auto info = llm::inspect_request(llm::api_kind_for_path(path), body);
  if (!info) {
    co_await reply_error(ex, stats, 400, info.status().message(), "invalid_request_error",
                         "invalid_request");
    co_return;
  }
  if (info->model.empty()) {
    co_await reply_error(ex, stats, 400, "missing required parameter 'model'",
                         "invalid_request_error", "missing_model");
    co_return;
  }
  if (route == Route::kEmbeddings) {
    co_await serve_embeddings(ex, opts, body, *info, o, stats);
  } else {
    co_await serve_text(ex, opts, route, *info, o, stats);
  }
}

}  // namespace

asio::awaitable<void> handle(http::Exchange& ex, const MockOptions& opts, MockStats& stats) {
  ++stats.requests;
  bool failed = false;
  try {
    co_await serve(ex, opts, stats);
  } catch (...) {
    failed = true;  // a bug or out of memory; answered below (no co_await in a catch)
  }
  if (!failed) co_return;
  try {
    if (!ex.head_sent()) {
      co_await reply_error(ex, stats, 500, "mock: internal error", "server_error", "internal_error");
    } else {
      ++stats.errors;
      ++stats.resets;
      ex.reset();
    }
  } catch (...) {
  }
}

asio::awaitable<void> handle(http::Exchange& ex, const MockOptions& opts) {
  MockStats unused;
  co_await handle(ex, opts, unused);
}

}  // namespace sluice::mock
