// The forwarder: connect (with failover before anything reached the client),
// send the request, stream the answer back event by event, account usage.
#include <algorithm>
#include <array>

#include "core/clock.h"
#include "gateway/worker_context.h"
#include "http/error_body.h"
#include "llm/sse_scanner.h"
#include "llm/token_estimate.h"
#include "llm/usage.h"

namespace sluice::gateway {

namespace asio = boost::asio;
using upstream::Call;
using upstream::EndpointPool;

namespace {

constexpr size_t kMaxUsageBody = 4u << 20;  // non-streaming bodies kept for usage extraction
constexpr int kMaxAttempts = 3;

bool token_in_list(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (http::iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// Client request headers the gateway never forwards: its own (stage.h), those
// the client named in Connection, and, on a route with a drop-mode
// allow-list, those the list does not name.
bool drop_request_header(std::string_view name, std::string_view connection_tokens,
                         const std::optional<policy::AllowHeaders>& allow) {
  if (gateway_owned_header(name)) return true;
  if (allow && !allow->allows(name)) return true;
  return !connection_tokens.empty() && token_in_list(connection_tokens, name);
}

bool drop_response_header(std::string_view name, std::string_view connection_tokens) {
  if (http::is_hop_by_hop(name) || http::iequals(name, "content-length") || http::iequals(name, "x-request-id"))
    return true;
  return !connection_tokens.empty() && token_in_list(connection_tokens, name);
}

// The client's end-to-end fields, then the gateway's own (credentials, extra
// headers, request id). The views point into the request and the settings.
std::vector<http::Header> request_fields(const RequestContext& rc, const Upstream& up) {
  const auto& req = rc.ex.request();
  std::vector<http::Header> f;
  f.reserve(req.headers.size() + up.headers.size() + 2);
  std::string_view conn_tokens = req.find("connection");
  for (const auto& h : req.headers)
    if (!drop_request_header(h.name, conn_tokens, rc.route->allow_headers)) f.push_back(h);
  if (!up.authorization.empty()) f.push_back({"authorization", up.authorization});
  for (const auto& [k, v] : up.headers) f.push_back({k, v});
  f.push_back({"x-request-id", rc.request_id});
  return f;
}

// The limits of one upstream exchange, applied through the deadline of the
// call in use: its expiry cuts the call (closes its HTTP/1.1 connection or
// resets its HTTP/2 stream), which fails whatever is pending; fired() then
// says which limit it was.
class UpstreamTimer {
 public:
  explicit UpstreamTimer(const Timeouts& t) : total_at_(SteadyClock::mono_ns() + t.total.count() * 1'000'000) {}

  // Follows the call of the current attempt; a new attempt starts clean.
  // (The previous call may already be gone: not touched.)
  void watch(Call* c) {
    if (c == call_) return;
    call_ = c;
    fired_ = nullptr;
  }
  void phase(const char* name, int64_t ms) {
    phase_ = name;
    if (call_) call_->arm_deadline(std::min(total_at_, SteadyClock::mono_ns() + ms * 1'000'000));
  }
  // While the client is being written to, only the total deadline runs for
  // the upstream: a slow client is bounded by the client-stall timeout and
  // must not make a healthy upstream look idle. (A later deadline is a store,
  // not a timer operation.)
  void client_turn() {
    phase_ = "total";
    if (call_) call_->arm_deadline(total_at_);
  }
  void stop() {
    if (call_) call_->disarm_deadline();
  }
  const char* fired() {
    if (!fired_ && call_ && call_->deadline_expired())
      fired_ = SteadyClock::mono_ns() >= total_at_ ? "total" : phase_;
    return fired_;
  }

 private:
  int64_t total_at_;
  const char* phase_ = "connect";
  const char* fired_ = nullptr;
  Call* call_ = nullptr;
};

std::string sse_error_event(std::string_view message, std::string_view code) {
  std::string e = "data: ";
  std::string body = http::error_body(message, "server_error", code);
  if (!body.empty() && body.back() == '\n') body.pop_back();
  e += body;
  e += "\n\n";
  return e;
}

// Phase 1 of forward(): an endpoint that answers with a response head, with
// failover while nothing reached the client. On success `call`, `pool` and
// `sent_ns` describe the answering exchange; otherwise the client got its
// error reply here and the result is false. (The phases are coroutines of
// their own so that a long stream keeps only the second one's frame.)
asio::awaitable<bool> reach_upstream(RequestContext& rc, UpstreamTimer& timer, std::unique_ptr<Call>& call,
                                     EndpointPool*& pool, int64_t& sent_ns) {
  WorkerContext& w = *rc.w;
  WorkerGeneration& g = *rc.gen;
  const size_t u = rc.route->upstream;
  const Upstream& up = rc.settings->upstreams[u];
  const Timeouts& to = rc.route->timeouts;
  http::Exchange& ex = rc.ex;
  Call*& live = rc.live_call;

  const std::vector<http::Header> fields = request_fields(rc, up);
  const auto& creq = ex.request();
  upstream::Request req{.method = creq.method,
                        .headers = fields,
                        .body = rc.body,
                        .send_length = creq.method == "POST" || creq.method == "PUT" || creq.method == "PATCH"};
  std::vector<int> tried;
  int stale_retries = 0;
  const int64_t t_start = SteadyClock::mono_ns();
  sent_ns = t_start;  // when the request went to the endpoint that answered
  std::string last_error = "no endpoint";
  std::string_view failed_endpoint;  // of the last failure, for the log
  bool got_head = false;
  const int attempts = std::min<int>(kMaxAttempts, static_cast<int>(g.pool_views[u].size()) + 1);

  for (int attempt = 0; attempt < attempts && !got_head && !ex.aborted() && !rc.cut; ++attempt) {
    int idx = upstream::pick_endpoint(g.pool_views[u], SteadyClock::mono_ns(), g.rr[u], tried);
    if (idx < 0) break;
    pool = g.pools[u][idx].get();
    const upstream::Target& target = pool->target();
    req.path.assign(target.path_prefix).append(creq.target);
    req.authority = target.host_header;
    rc.endpoint = target.host_header;
    live = nullptr;
    call = pool->open_call();
    live = call.get();
    timer.watch(live);
    const bool reused = call->reused();
    if (!reused) {
      timer.phase("connect", to.connect.count());
      Status cs = co_await call->connect();
      if (!cs) {
        live = nullptr;
        if (ex.aborted() || rc.cut) break;
        last_error = timer.fired() ? std::string("connect timeout") : cs.message();
        failed_endpoint = target.host_header;
        w.metrics.counter(w.fam.upstream_errors, {up.name, timer.fired() ? "connect_timeout" : "connect"}).inc();
        pool->health().failure(SteadyClock::mono_ns());
        tried.push_back(idx);
        if (timer.fired() && std::string_view(timer.fired()) == "total") break;
        continue;
      }
      pool->health().success();
      if (call->opened_connection())
        w.metrics.counter(w.fam.upstream_connects,
                          {up.name, target.protocol == upstream::Protocol::kHttp2 ? "HTTP/2" : "HTTP/1.1"}).inc();
    }
    ++pool->in_flight;
    timer.phase("ttft", to.ttft.count());
    sent_ns = SteadyClock::mono_ns();
    Status s = co_await call->send(req);
    if (s) s = co_await call->read_head(creq.method == "HEAD");
    if (!s) {
      --pool->in_flight;
      live = nullptr;
      if (reused && !timer.fired() && !ex.aborted() && !rc.cut && s.code() == Errc::kClosed && stale_retries++ < 1) {
        // An orderly close with no response byte on a connection that was
        // already open (HTTP/1.1: closed while idle; HTTP/2: a stream the
        // upstream refused or a GOAWAY): it processed nothing, so try once
        // more without counting a failure. A reset is not retried: the
        // upstream may have started generating.
        --attempt;
        continue;
      }
      last_error = s.message();
      failed_endpoint = target.host_header;
      if (timer.fired() || ex.aborted() || rc.cut) break;  // the time to first byte is spent: no failover
      const char* kind = "reset";
      if (s.code() == Errc::kInvalid) kind = "bad_response";
      if (s.code() == Errc::kTimeout) {  // an HTTP/2 connection found dead by PING: the endpoint is in trouble
        kind = "dead_connection";
        pool->health().failure(SteadyClock::mono_ns());
      }
      w.metrics.counter(w.fam.upstream_errors, {up.name, kind}).inc();
      tried.push_back(idx);
      continue;
    }
    got_head = true;
  }
  rc.upstream_wait_ns += SteadyClock::mono_ns() - t_start;

  if (!got_head) {
    timer.stop();
    if (!failed_endpoint.empty()) rc.error_detail = std::string(failed_endpoint) + ": " + last_error;
    if (ex.aborted()) {
      rc.status = 499;
      rc.error_code = "client_closed";
      w.metrics.counter(w.fam.client_aborts).inc();
      co_return false;
    }
    if (rc.cut) {
      co_await reply_locally(rc, StageResult::error(503, rc.cut, "the gateway is shutting down; retry elsewhere"));
      co_return false;
    }
    if (const char* f = timer.fired()) {
      std::string kind = std::string(f) == "connect" ? "connect" : std::string(f) == "total" ? "total" : "ttft";
      w.metrics.counter(w.fam.timeouts, {kind}).inc();
      // A connect timeout was already counted as an upstream error in the loop.
      if (kind != "connect") w.metrics.counter(w.fam.upstream_errors, {up.name, kind + "_timeout"}).inc();
      co_await reply_locally(
          rc, StageResult::error(504, "upstream_timeout", "the upstream did not answer in time (" + kind + " timeout)"));
    } else {
      // The client learns which upstream failed and why, never its
      // addresses: the endpoint is in the access log (error_detail).
      co_await reply_locally(rc,
                             StageResult::error(502, "upstream_unavailable", "upstream " + up.name + " failed: " + last_error));
    }
    co_return false;
  }
  co_return true;
}

// Phase 2 of forward(): the response head and body to the client, event by
// event for streams; usage; a clean end for a response that broke off.
asio::awaitable<void> relay_response(RequestContext& rc, UpstreamTimer& timer, Call& conn, EndpointPool* pool,
                                     int64_t sent_ns) {
  WorkerContext& w = *rc.w;
  WorkerGeneration& g = *rc.gen;
  const Upstream& up = rc.settings->upstreams[rc.route->upstream];
  const Timeouts& to = rc.route->timeouts;
  http::Exchange& ex = rc.ex;

  // ---- The response head.
  const auto& uh = conn.head();
  const bool sse = uh.find("content-type").substr(0, 17) == "text/event-stream";
  // An upstream that answers with an error: passed through as it is, logged
  // as an error and counted, and no tokens are estimated for it.
  const bool upstream_failed = uh.status >= 400;
  {  // (a block: the header list's memory goes once the head is sent)
    std::vector<http::Header> out_headers;
    out_headers.reserve(uh.headers.size() + 1);
    std::string_view conn_tokens = uh.find("connection");
    for (const auto& f : uh.headers)
      if (!drop_response_header(f.name, conn_tokens)) out_headers.push_back(f);
    out_headers.push_back({"x-request-id", rc.request_id});
    std::string limit_storage;  // x-ratelimit-* for the caller's key
    if (rc.principal) g.caller_limits.rate_limit_headers(rc, limit_storage, out_headers);
    std::optional<uint64_t> length;
    if (!sse && !uh.chunked && uh.content_length) length = uh.content_length;
    rc.status = uh.status;
    if (upstream_failed) {
      rc.error_code = "upstream_error";
      w.metrics.counter(w.fam.upstream_errors, {up.name, uh.status >= 500 ? "http_5xx" : "http_4xx"}).inc();
    }
    (void)co_await ex.send_head(uh.status, out_headers, length);
  }
  // Headers go out now for streams, so clients see the response start even
  // before the first token; otherwise they travel with the first body bytes.
  if (sse && !conn.body_buffered()) (void)co_await ex.write({});

  // ---- The body.
  llm::SseScanner scanner;
  std::string out;
  std::string json_body;  // non-streaming: kept for usage extraction
  bool json_too_big = false;
  int64_t content_pieces = 0;
  int64_t last_event_ns = 0;
  bool first_piece = true;
  std::string failure;  // why the body did not complete
  bool client_gone = false;
  bool ended = false;  // the response's end went out with the last piece

  for (;;) {
    timer.phase(first_piece ? "ttft" : "idle", first_piece ? to.ttft.count() : to.idle.count());
    const int64_t t0 = SteadyClock::mono_ns();
    auto piece = co_await conn.read_body();
    const int64_t t1 = SteadyClock::mono_ns();
    rc.upstream_wait_ns += t1 - t0;
    if (!piece) {
      failure = piece.status().message();
      break;
    }
    if (piece->empty()) break;  // end of body
    std::string_view data = *piece;
    std::string_view to_send = data;
    if (sse) {
      // The complete events go out; an incomplete one waits for its end.
      // While no event started in an earlier piece and none is dropped, they
      // are this piece's first bytes, sent from where they are; otherwise
      // they are gathered in `out`.
      out.clear();
      bool in_place = scanner.pending_bytes() == 0;
      size_t complete = 0;
      Status fs = scanner.feed(data, [&](const llm::SseEvent& ev) {
        if (!ev.done && !ev.data.empty()) {
          auto facts = llm::inspect_stream_chunk(ev.data);
          content_pieces += facts.content_pieces;
          if (facts.usage) llm::accumulate_usage(rc.usage, *facts.usage);  // Anthropic reports in parts
          if (rc.strip_usage_chunk && facts.usage_only) {
            w.metrics.counter(w.fam.usage_stripped).inc();
            if (in_place) out.assign(data.substr(0, complete));
            in_place = false;
            return;
          }
        }
        if (in_place) complete += ev.raw.size();
        else out.append(ev.raw);
        ++rc.events;
      });
      if (!fs) {
        failure = "upstream sent an oversized SSE event";
        break;
      }
      to_send = in_place ? data.substr(0, complete) : std::string_view(out);
    } else if (!json_too_big) {
      if (json_body.size() + data.size() <= kMaxUsageBody) json_body.append(data);
      else json_too_big = true;
    }
    if (to_send.empty()) continue;
    if (first_piece) {
      first_piece = false;
      rc.ttft_ns = t1 - ex.start_ns();
      if (!upstream_failed)
        w.metrics.histogram(w.fam.upstream_ttft, {up.name}).observe(static_cast<double>(t1 - sent_ns) / 1e9);
    } else if (sse) {
      w.metrics.histogram(w.fam.inter_event).observe(static_cast<double>(t1 - last_event_ns) / 1e9);
    }
    last_event_ns = t1;
    timer.client_turn();
    // The body's last piece goes out together with the response's end.
    ended = conn.body_complete() && (!sse || scanner.pending_bytes() == 0);
    Status ws;
    if (ended) ws = co_await ex.write_last(to_send);
    else ws = co_await ex.write(to_send);
    if (!ws) {
      client_gone = true;
      failure = ws.code() == Errc::kTimeout ? "client_stall" : "client_closed";
      break;
    }
    if (ended) break;
  }
  timer.stop();
  --pool->in_flight;
  rc.live_call = nullptr;
  if (sse) w.metrics.counter(w.fam.stream_events).inc(rc.events);

  // ---- Usage: from the upstream, else estimated.
  if (!sse && !json_body.empty()) {
    if (auto us = llm::extract_usage(json_body)) rc.usage = *us;
  }
  if (rc.usage.prompt_tokens < 0 && rc.usage.completion_tokens < 0 && !upstream_failed) {
    rc.usage_estimated = true;
    rc.usage.prompt_tokens = rc.info.estimated_prompt_tokens;
    rc.usage.completion_tokens = sse ? content_pieces : 0;
    rc.usage.total_tokens = rc.usage.prompt_tokens + rc.usage.completion_tokens;
  }

  if (failure.empty() && !ex.aborted()) {
    if (ended) {
      conn.complete();
      co_return;
    }
    if (sse && scanner.pending_bytes() > 0) {
      std::string tail(scanner.take_pending());  // an unterminated last event: pass it on as sent
      (void)co_await ex.write(tail);
    }
    Status fs = co_await ex.finish();
    if (!fs) client_gone = true;
    if (fs) conn.complete();
    if (!client_gone) co_return;
  }

  // ---- The response did not complete.
  if (client_gone || ex.aborted()) {
    w.metrics.counter(w.fam.client_aborts).inc();
    if (failure == "client_stall") w.metrics.counter(w.fam.timeouts, {"client_stall"}).inc();
    rc.error_code = failure == "client_stall" ? "client_stall" : "client_closed";
    co_return;
  }
  std::string code = "upstream_reset";
  std::string message = "the upstream connection failed mid-response: " + failure;
  if (rc.cut) {
    code = rc.cut;
    message = "the gateway is shutting down and ended this response (" + code + ")";
  } else if (const char* f = timer.fired()) {
    std::string kind = std::string(f) == "total" ? "total" : first_piece ? "ttft" : "idle";
    w.metrics.counter(w.fam.timeouts, {kind}).inc();
    code = "upstream_timeout";
    message = "the upstream stalled (" + kind + " timeout)";
  }
  if (!rc.cut)
    w.metrics.counter(w.fam.upstream_errors, {up.name, code == "upstream_timeout" ? "timeout" : "reset"}).inc();
  rc.error_code = code;
  if (sse) {
    // End the stream cleanly with a final error event the client can read.
    std::string ev = sse_error_event(message, code);
    // Result to a local first: GCC 12 miscompiles co_await inside a condition.
    Status ws = co_await ex.write(ev);
    if (ws) (void)co_await ex.finish();
  } else {
    ex.reset();  // a truncated plain body must not look complete
  }
}

}  // namespace

asio::awaitable<void> forward(RequestContext& rc) {
  const Upstream& up = rc.settings->upstreams[rc.route->upstream];
  rc.upstream_name = up.name;
  rc.ex.set_write_timeout_ms(rc.route->timeouts.client_stall.count());

  UpstreamTimer timer(rc.route->timeouts);
  std::unique_ptr<Call> call;
  EndpointPool* pool = nullptr;
  int64_t sent_ns = 0;
  // The client vanishing cuts the upstream exchange at once (so does the
  // gateway itself, through rc.live_call: WorkerContext::cut_live_requests).
  Call*& live = rc.live_call;
  rc.ex.set_abort_hook([&live] {
    if (live) live->abort();
  });
  struct HookGuard {
    RequestContext& rc;
    ~HookGuard() {
      rc.ex.set_abort_hook(nullptr);
      rc.live_call = nullptr;
    }
  } hook_guard{rc};

  const bool answered = co_await reach_upstream(rc, timer, call, pool, sent_ns);
  if (!answered) co_return;
  std::string().swap(rc.body);  // sent, and no retry can follow: its memory goes
  co_await relay_response(rc, timer, *call, pool, sent_ns);
}

}  // namespace sluice::gateway
