#include "gateway/worker_context.h"

#include <array>
#include <charconv>
#include <cstdio>
#include <unordered_map>

#include "core/clock.h"
#include "http/error_body.h"

namespace sluice::gateway {

namespace asio = boost::asio;

namespace {
// An HTTP status as a metric label, without allocating.
struct StatusLabel {
  explicit StatusLabel(int status) : len(std::to_chars(buf, buf + sizeof buf, status).ptr - buf) {}
  std::string_view view() const { return {buf, static_cast<size_t>(len)}; }
  char buf[12];
  long len;
};
}  // namespace

asio::awaitable<void> handle_exchange(WorkerContext* w, http::Exchange& ex) { co_await w->handle(ex); }

WorkerGeneration::WorkerGeneration(asio::io_context& ctx, std::shared_ptr<const Generation> g, size_t workers,
                                   const WorkerGeneration* previous)
    : shared(std::move(g)), settings(*shared->settings),
      caller_limits(settings, workers, previous ? &previous->caller_limits : nullptr,
                    previous ? &previous->settings : nullptr, shared->processes) {
  // This worker's pools for endpoints that did not change, by identity.
  std::unordered_map<std::string_view, std::shared_ptr<upstream::EndpointPool>> kept;
  if (previous)
    for (size_t u = 0; u < previous->pools.size(); ++u)
      for (size_t e = 0; e < previous->pools[u].size(); ++e)
        kept.emplace(previous->shared->endpoints[u][e].pool_key, previous->pools[u][e]);
  const auto& ups = settings.upstreams;
  pools.resize(ups.size());
  pool_views.resize(ups.size());
  rr.assign(ups.size(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(this) >> 6));
  for (size_t u = 0; u < ups.size(); ++u) {
    for (size_t e = 0; e < shared->endpoints[u].size(); ++e) {
      const GenerationEndpoint& ge = shared->endpoints[u][e];
      std::shared_ptr<upstream::EndpointPool> pool;
      if (auto it = kept.find(ge.pool_key); it != kept.end()) pool = it->second;
      else pool = std::make_shared<upstream::EndpointPool>(ctx.get_executor(), ge.target, shared->tls[u],
                                                           ups[u].max_idle_per_endpoint, ge.health.get());
      pool_views[u].push_back(pool.get());
      pools[u].push_back(std::move(pool));
    }
  }
  start_redis(ctx, previous);
}

WorkerContext::WorkerContext(asio::io_context& c, std::shared_ptr<const Generation> generation, obs::Shard& m,
                             const GatewayMetrics& f, obs::AccessLogBuffer* l, obs::AccessLogBuffer* a, size_t workers)
    : ctx(c), metrics(m), fam(f), log(l), audit(a), stages(make_default_stages()), workers_(workers) {
  handler = [this](http::Exchange& ex) { return handle_exchange(this, ex); };
  adopt(std::move(generation));
}

void WorkerContext::adopt(std::shared_ptr<const Generation> generation) {
  const WorkerGeneration* previous = gen.get();
  gen = std::make_shared<WorkerGeneration>(ctx, std::move(generation), workers_, previous);
  register_metrics(gen->settings);
  apply_server_options(gen->settings);
}

// Series that should read 0 rather than be absent before the first event.
void WorkerContext::register_metrics(const Settings& s) {
  for (const auto& u : s.upstreams)
    for (std::string_view kind : kUpstreamErrorKinds) metrics.counter(fam.upstream_errors, {u.name, kind});
  for (std::string_view rule : s.admission.header_rules.labels()) metrics.counter(fam.header_rejections, {rule});
}

// Limits and timeouts of client connections: each connection reads them as
// it goes, so a reload reaches the open ones too.
void WorkerContext::apply_server_options(const Settings& s) {
  const auto& srv = s.server;
  server_opts.limits.max_header_bytes = srv.max_header_bytes;
  server_opts.limits.max_headers = srv.max_headers;
  server_opts.header_timeout_ms = srv.header_timeout.count();
  server_opts.idle_timeout_ms = srv.idle_timeout.count();
  server_opts.body_timeout_ms = srv.header_timeout.count();
  server_opts.body_deadline_ms = srv.body_timeout.count();
  server_opts.min_body_rate = srv.min_body_rate;
  server_opts.min_body_rate_grace_ms = srv.min_body_rate_grace.count();
  server_opts.write_stall_ms = s.default_timeouts.client_stall.count();
  server_opts.http2 = srv.http2;
  server_opts.h2 = srv.h2;
}

void WorkerContext::on_connection_open(std::string_view protocol) {
  metrics.gauge(fam.connections).add(1);
  metrics.counter(fam.connections_total, {protocol}).inc();
}
void WorkerContext::on_limit(std::string_view protocol, std::string_view limit) {
  metrics.counter(fam.protocol_limits, {protocol, limit}).inc();
}
void WorkerContext::on_tls_handshake_error() { metrics.counter(fam.tls_handshake_errors).inc(); }
void WorkerContext::on_connection_close() { metrics.gauge(fam.connections).add(-1); }
void WorkerContext::on_accept_error(const boost::system::error_code& ec) {
  const char* name = ec == boost::system::errc::too_many_files_open            ? "EMFILE"
                     : ec == boost::system::errc::too_many_files_open_in_system ? "ENFILE"
                     : ec == boost::system::errc::not_enough_memory             ? "ENOMEM"
                                                                                : "other";
  metrics.counter(fam.accept_errors, {name}).inc();
  // At most one line a second per worker: a descriptor shortage repeats fast.
  const int64_t now = SteadyClock::mono_ns();
  if (now - last_accept_log_ns_ >= 1'000'000'000) {
    last_accept_log_ns_ = now;
    std::fprintf(stderr, "sluice: accept failed: %s (%s); backing off\n", ec.message().c_str(), name);
  }
}

void WorkerContext::on_connection_shed(std::string_view reason) { metrics.counter(fam.connections_shed, {reason}).inc(); }

void WorkerContext::on_protocol_error(int status, std::string_view reason) {
  const StatusLabel st(status);
  metrics.counter(fam.rejected, {status == 408 ? "header_timeout" : status == 431 ? "header_too_large" : "bad_request"})
      .inc();
  metrics.counter(fam.requests, {"none", st.view()}).inc();
}

void WorkerContext::link(RequestContext& rc) {
  rc.live_next = live_head_;
  if (live_head_) live_head_->live_prev = &rc;
  live_head_ = &rc;
  live_count.store(live_count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void WorkerContext::unlink(RequestContext& rc) {
  if (rc.live_prev) rc.live_prev->live_next = rc.live_next;
  else live_head_ = rc.live_next;
  if (rc.live_next) rc.live_next->live_prev = rc.live_prev;
  rc.live_prev = rc.live_next = nullptr;
  live_count.store(live_count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

void WorkerContext::measure_buffers() {
  uint64_t n = connections.buffered_bytes();
  for (const RequestContext* rc = live_head_; rc; rc = rc->live_next) n += rc->body.capacity();
  buffered.store(n, std::memory_order_relaxed);
}

void WorkerContext::cut_live_requests(const char* reason, bool force) {
  for (RequestContext* rc = live_head_; rc; rc = rc->live_next) {
    if (force && rc->cut) {
      rc->ex.reset();  // still there: its client does not read the final event
      continue;
    }
    if (rc->cut) continue;
    rc->cut = reason;
    // An upstream read fails at once and the forwarder ends the response; a
    // request with no upstream call is waiting on its client.
    if (rc->live_call) rc->live_call->abort();
    else rc->ex.reset();
  }
}

// The stages in order, until one answers (true) or all let the request
// through (false). A coroutine of its own: its frame (stage results) is gone
// before the request is forwarded.
asio::awaitable<bool> WorkerContext::run_stages(RequestContext& rc) {
  for (auto& stage : stages) {
    StageResult r = stage->process(rc);
    if (r.action == StageAction::kSuspend) r = co_await stage->resume(rc);
    if (r.action == StageAction::kRespond) {
      if (rc.header_violation) audit_header_violation(rc);
      co_await reply_locally(rc, std::move(r));
      co_return true;
    }
  }
  co_return false;
}

asio::awaitable<void> WorkerContext::handle(http::Exchange& ex) {
  // The request shares ownership of the snapshot it starts with: a reload
  // meanwhile changes nothing for it.
  RequestContext rc(ex, this, std::shared_ptr<const Settings>(gen, &gen->settings), gen.get(), gen->shared->policy.get());
  link(rc);
  metrics.gauge(fam.streams).add(1);
  const bool answered = co_await run_stages(rc);
  if (!answered) co_await forward(rc);
  metrics.gauge(fam.streams).add(-1);
  unlink(rc);
  settle(rc);
}

asio::awaitable<void> reply_locally(RequestContext& rc, StageResult r) {
  rc.status = r.status;
  rc.error_code = r.code;
  if (!r.code.empty()) rc.w->metrics.counter(rc.w->fam.rejected, {r.code}).inc();
  if (r.status == 499 || rc.ex.aborted()) {  // nobody to answer
    rc.status = 499;
    co_return;
  }
  std::string body = r.body.empty() ? http::error_body(r.message, http::error_type_for_status(r.status), r.code)
                                    : std::move(r.body);
  std::vector<http::Header> headers{{"content-type", "application/json"}};
  if (!rc.request_id.empty()) headers.push_back({"x-request-id", rc.request_id});
  if (!r.allow.empty()) headers.push_back({"allow", r.allow});
  char retry[12];
  if (r.retry_after_s > 0) {
    auto end = std::to_chars(retry, retry + sizeof retry, r.retry_after_s).ptr;
    headers.push_back({"retry-after", std::string_view(retry, static_cast<size_t>(end - retry))});
  }
  std::string limit_storage;
  if (rc.principal) rc.gen->caller_limits.rate_limit_headers(rc, limit_storage, headers);
  rc.bytes_out = body.size();
  (void)co_await rc.ex.respond(r.status, headers, body);
}

// One security audit line per refused request: who, which rule, which
// header and how long its value was, never the value.
void WorkerContext::audit_header_violation(RequestContext& rc) {
  const policy::HeaderViolation& v = *rc.header_violation;
  metrics.counter(fam.header_rejections, {v.rule}).inc();
  if (!audit || !audit->enabled()) return;
  audit->begin()
      .str("event", "header_rejected")
      .str("client", rc.ex.peer_address())
      .str("request_id", rc.request_id)
      .str("rule", v.rule)
      .str("header", v.header)
      .num("value_length", v.value_length)
      .num("status", v.status)
      .end();
  audit->maybe_flush(SteadyClock::mono_ns());
}

void WorkerContext::settle(RequestContext& rc) {
  const int64_t now = SteadyClock::mono_ns();
  const int64_t total_ns = now - rc.ex.start_ns();
  if (rc.cut) rc.error_code = rc.cut;
  if (rc.reservation.active) {
    const int64_t wall = rc.reservation.wall_us;  // the window it was charged in
    rc.gen->caller_limits.settle(rc, wall * 1000, wall / 1'000'000);
  }
  settle_remote(rc);
  // Labels come from the configuration, never from raw client input: a route's
  // name ("*" for everything the catch-all takes), "none" without a model.
  std::string_view model = rc.route && !rc.info.model.empty() ? std::string_view(rc.route->name) : "none";
  const bool ok = rc.status >= 200 && rc.status < 300 && rc.error_code.empty();
  const StatusLabel status(rc.status);
  metrics.counter(fam.requests, {model, status.view()}).inc();
  metrics.histogram(fam.duration, {model}).observe(static_cast<double>(total_ns) / 1e9);
  if (rc.route) {
    if (rc.ttft_ns >= 0 && ok) metrics.histogram(fam.ttft, {model}).observe(static_cast<double>(rc.ttft_ns) / 1e9);
    metrics.histogram(fam.overhead)
        .observe(static_cast<double>(std::max<int64_t>(0, total_ns - rc.upstream_wait_ns)) / 1e9);
    if (rc.usage.prompt_tokens > 0) metrics.counter(fam.tokens, {model, "input"}).inc(rc.usage.prompt_tokens);
    if (rc.usage.completion_tokens > 0)
      metrics.counter(fam.tokens, {model, "output"}).inc(rc.usage.completion_tokens);
    if (rc.usage.valid() || rc.usage_estimated)
      metrics.counter(fam.usage_source, {rc.usage_estimated ? "estimated" : "upstream"}).inc();
  }
  if (const ApiKey* k = rc.principal) {
    metrics.counter(fam.key_requests, {k->id, k->team, status.view()}).inc();
    if (rc.usage.prompt_tokens > 0) metrics.counter(fam.key_tokens, {k->id, k->team, "input"}).inc(rc.usage.prompt_tokens);
    if (rc.usage.completion_tokens > 0)
      metrics.counter(fam.key_tokens, {k->id, k->team, "output"}).inc(rc.usage.completion_tokens);
  }
  if (!log || !log->enabled()) return;
  const auto& req = rc.ex.request();
  auto line = log->begin();
  line.str("request_id", rc.request_id)
      .str("client", rc.ex.peer_address())
      .str("method", req.method)
      .str("path", req.path())
      .str("protocol", rc.ex.protocol())
      .num("status", rc.status);
  if (const ApiKey* k = rc.principal) {
    line.str("key", k->id);
    if (!k->team.empty()) line.str("team", k->team);
  }
  // The canonical name: the route's (the client's own through the catch-all);
  // what the client asked for and what the upstream was asked for when they differ.
  const bool wildcard = rc.route && rc.route->name == "*";
  std::string_view canonical = rc.route && !wildcard && !rc.info.model.empty() ? std::string_view(rc.route->name)
                                                                               : std::string_view(rc.info.model);
  line.str("model", canonical);
  if (canonical != rc.info.model) line.str("requested_model", rc.info.model);
  if (rc.route && !rc.route->upstream_model.empty() && rc.route->upstream_model != canonical)
    line.str("upstream_model", rc.route->upstream_model);
  line.boolean("stream", rc.info.stream);
  if (rc.usage.prompt_tokens >= 0) line.num("tokens_in", rc.usage.prompt_tokens);
  else line.null("tokens_in");
  if (rc.usage.completion_tokens >= 0) line.num("tokens_out", rc.usage.completion_tokens);
  else line.null("tokens_out");
  if (rc.usage.valid() || rc.usage_estimated) line.str("usage_source", rc.usage_estimated ? "estimated" : "upstream");
  if (rc.ttft_ns >= 0) line.num_f("ttft_ms", static_cast<double>(rc.ttft_ns) / 1e6);
  line.num_f("duration_ms", static_cast<double>(total_ns) / 1e6)
      .num_f("overhead_ms", static_cast<double>(std::max<int64_t>(0, total_ns - rc.upstream_wait_ns)) / 1e6);
  if (!rc.upstream_name.empty()) line.str("upstream", rc.upstream_name).str("endpoint", rc.endpoint);
  if (rc.info.stream) line.num("events", rc.events);
  line.num("bytes_in", rc.bytes_in).num("bytes_out", rc.ex.body_bytes_sent());
  if (std::string_view ua = req.find("user-agent"); !ua.empty()) line.str("user_agent", ua.substr(0, 256));
  if (!rc.error_code.empty()) line.str("error", rc.error_code);
  if (!rc.error_detail.empty()) line.str("error_detail", rc.error_detail);
  line.end();
  log->maybe_flush(now);
}

}  // namespace sluice::gateway
