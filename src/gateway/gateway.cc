#include "gateway/gateway.h"

#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/clock.h"
#include "core/json_escape.h"
#include "http/error_body.h"
#include "net/listener.h"
#include "net/sleep.h"
#include "obs/build_info.h"
#include "policy/memory_probe.h"

namespace sluice::gateway {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using net::sleep_for;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// After the drain deadline: how long the requests that were cut get to send
// their final error event before the process stops.
constexpr auto kDrainCutGrace = 1000ms;
// Idle upstream connections each endpoint keeps per worker when memory is trimmed.
constexpr size_t kIdleUpstreamKeep = 4;

asio::awaitable<void> flush_log_periodically(obs::AccessLogBuffer* log) {
  for (;;) {
    co_await sleep_for(200ms);
    log->maybe_flush(SteadyClock::mono_ns());
  }
}

asio::awaitable<void> call_admin(Gateway* g, http::Exchange& ex);

// Each worker's share of server.max_connections, kept below the process's
// descriptor limit (with room for upstream connections, logs and listeners).
uint32_t connection_share(uint32_t max_connections, size_t workers) {
  rlimit rl{};
  uint64_t cap = max_connections;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const uint64_t usable = rl.rlim_cur > 512 ? (rl.rlim_cur - 256) * 3 / 4 : rl.rlim_cur / 2;
    cap = std::min<uint64_t>(cap, usable);
  }
  return static_cast<uint32_t>(std::max<uint64_t>(1, (cap + workers - 1) / std::max<size_t>(1, workers)));
}

}  // namespace

Result<std::unique_ptr<net::TlsServer>> make_tls_server(const Settings& s) {
  net::TlsServerOptions to;
  for (const auto& [cert, key] : s.server.tls.certificates) to.certificates.push_back({cert, key});
  to.tls12 = s.server.tls.tls12;
  to.session_tickets = s.server.tls.session_tickets;
  to.http2 = s.server.http2;
  return net::TlsServer::create(std::move(to));
}

Gateway::Gateway(std::shared_ptr<const Settings> settings, GatewayOptions options)
    : settings_(std::move(settings)), options_(std::move(options)), workers_(settings_->server.workers) {
  if (!options_.config_path.empty()) config_hash_ = file_hash(options_.config_path);
  fam_ = std::make_unique<GatewayMetrics>(registry_);
  main_metrics_ = &registry_.add_shard();
  const obs::BuildInfo& b = obs::build_info();
  main_metrics_->gauge(fam_->build_info, {b.version, b.commit, b.mode}).set(1);
}

// Gauges read from shared state when scraped (main thread only).
void Gateway::update_scrape_gauges() {
  const int64_t now = SteadyClock::mono_ns();
  const Settings& s = *settings_;
  auto limit_gauges = [&](const policy::ConcurrencyLimit* l, const std::string& scope) {
    main_metrics_->gauge(fam_->concurrency_active, {scope}).set(l->active());
    main_metrics_->gauge(fam_->concurrency_queued, {scope}).set(static_cast<int64_t>(l->queued()));
  };
  for (const auto& [scope, limit] : gen_->policy->scopes(s)) limit_gauges(limit.get(), scope);
  for (size_t u = 0; u < gen_->endpoints.size(); ++u)
    for (size_t e = 0; e < gen_->endpoints[u].size(); ++e)
      main_metrics_->gauge(fam_->endpoint_up, {s.upstreams[u].name, s.upstreams[u].endpoints[e].url})
          .set(gen_->endpoints[u][e].health->up(now) ? 1 : 0);
}

Gateway::~Gateway() {
  workers_.stop();
  workers_.join();
}

Status Gateway::start() {
  const Settings& s = *settings_;
  const std::vector<asio::io_context*> ctxs = worker_ctxs();

  auto log = obs::AccessLog::open(s.server.access_log);
  if (!log) return log.status();
  access_log_ = std::move(*log);
  auto audit = obs::AccessLog::open(s.admission.audit_log);
  if (!audit) return Status(Errc::kInvalid, "admission.audit_log: " + audit.status().message());
  audit_log_ = std::move(*audit);
  if (Status ms = start_memory_watermark(); !ms) return ms;
  if (s.uses_builtin_mock())
    if (Status st = start_mock(); !st) return st;
  auto gen = make_generation(settings_, nullptr, mock_ ? mock_->port() : 0, &shedding_, options_.process_count);
  if (!gen) return gen.status();
  gen_ = std::move(*gen);
  main_metrics_->gauge(fam_->config_generation).set(1);
  main_metrics_->gauge(fam_->config_reload_time).set(wall_us() / 1'000'000);

  auto ep = net::parse_listen_address(s.server.listen);
  if (!ep) return ep.status();
  auto api = open_listener(ctxs, *ep, options_.handed.api);
  if (!api) return api.status();
  api_ = std::move(*api);

  if (!s.server.tls.listen.empty()) {
    auto tls = make_tls_server(s);
    if (!tls) return tls.status();
    tls_ = std::move(*tls);
    auto tep = net::parse_listen_address(s.server.tls.listen);
    if (!tep) return tep.status();
    auto tl = open_listener(ctxs, *tep, options_.handed.tls);
    if (!tl) return tl.status();
    tls_listener_ = std::move(*tl);
  }

  auto admin_ep = net::parse_listen_address(s.server.admin_listen);
  if (!admin_ep) return admin_ep.status();
  auto admin = open_listener({&main_ctx_}, *admin_ep, options_.handed.admin);
  if (!admin) return admin.status();
  admin_ = std::move(*admin);

  const uint32_t per_worker_connections = connection_share(s.server.max_connections, workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    auto& ctx = workers_.at(i).ctx();
    obs::AccessLogBuffer* buf = access_log_->enabled() ? &access_log_->add_buffer() : nullptr;
    obs::AccessLogBuffer* abuf = audit_log_->enabled() ? &audit_log_->add_buffer() : nullptr;
    contexts_.push_back(
        std::make_unique<WorkerContext>(ctx, gen_, registry_.add_shard(), *fam_, buf, abuf, workers_.size()));
    WorkerContext& w = *contexts_.back();
    w.server_opts.max_connections = per_worker_connections;
    if (s.admission.memory.stop_accepting) w.server_opts.pause_accept = &shedding_;
    api_->start(i, {&w.handler, &w.server_opts, &w, &w.connections});
    if (tls_listener_) tls_listener_->start(i, {&w.handler, &w.server_opts, &w, &w.connections, tls_.get()});
    if (buf) asio::co_spawn(ctx, flush_log_periodically(buf), asio::detached);
    if (abuf) asio::co_spawn(ctx, flush_log_periodically(abuf), asio::detached);
  }

  restore_budgets();

  admin_opts_.idle_timeout_ms = 30'000;
  admin_handler_ = [this](http::Exchange& ex) { return call_admin(this, ex); };
  admin_->start(0, {&admin_handler_, &admin_opts_, nullptr, &admin_connections_});

  workers_.start();
  started_ = true;
  if (!options_.port_file.empty()) {
    Status ps = write_port_file();
    if (!ps) return ps;
  }
  if (options_.handed.ready_fd >= 0) {
    // A successor: the old process stops accepting and drains once told.
    net::report_ready(options_.handed.ready_fd);
    options_.handed.ready_fd = -1;
    if (options_.fixed_listeners)
      std::fprintf(stderr, "sluice: worker process %d serves the supervisor's sockets\n", static_cast<int>(::getpid()));
    else
      std::fprintf(stderr, "sluice: took over the listening sockets (binary upgrade); serving\n");
  }
  if (options_.predecessor > 0) {
    ::kill(options_.predecessor, SIGWINCH);
    std::fprintf(stderr, "sluice: took over the listening sockets of pid %d; told it to drain\n",
                 static_cast<int>(options_.predecessor));
  }
  std::fprintf(stderr, "sluice: listening on %s (port %u), admin on port %u, %zu workers, config %s\n",
               s.server.listen.c_str(), api_port(), admin_port(), workers_.size(), s.source.c_str());
  return Status::ok();
}

Status Gateway::write_port_file() const {
  std::string tmp = options_.port_file + ".tmp";
  {
    std::ofstream f(tmp);
    f << "{\"api\":" << api_port() << ",\"admin\":" << admin_port() << ",\"tls\":" << tls_port()
      << ",\"pid\":" << ::getpid() << "}\n";
    if (!f) return Status(Errc::kIo, "cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), options_.port_file.c_str()) != 0)
    return Status(Errc::kIo, "cannot write " + options_.port_file);
  return Status::ok();
}

bool Gateway::ready() const {
  if (!started_ || draining_) return false;
  const int64_t now = SteadyClock::mono_ns();
  for (const auto& per_upstream : gen_->endpoints)
    for (const auto& e : per_upstream)
      if (e.health->up(now)) return true;
  return false;
}

namespace {

asio::awaitable<void> drain_worker(WorkerContext* w, http::HttpListener* api, http::HttpListener* tls, size_t i,
                                   std::atomic<size_t>* drained) {
  api->close(i);
  if (tls) tls->close(i);
  w->connections.drain_all();
  while (w->connections.size() > 0) co_await sleep_for(20ms);
  drained->fetch_add(1);
}

asio::awaitable<void> call_admin(Gateway* g, http::Exchange& ex) {
  // A named coroutine, so no capturing lambda coroutine is ever created.
  co_await g->admin_handle(ex);
}

asio::awaitable<void> cut_worker(WorkerContext* w, bool force) {
  w->cut_live_requests("drain_deadline", force);
  co_return;
}

asio::awaitable<void> wait_for_signal_then_drain(Gateway* g, asio::io_context* ctx, std::chrono::milliseconds deadline) {
  asio::signal_set signals(*ctx, SIGINT, SIGTERM);
  auto [ec, sig] = co_await signals.async_wait(kNoThrow);
  if (ec || g->draining()) co_return;  // an upgrade already drains
  std::fprintf(stderr, "sluice: signal %d: draining (up to %lld ms)\n", sig, static_cast<long long>(deadline.count()));
  co_await drain_then_stop(g, ctx, deadline);
}

}  // namespace

asio::awaitable<void> drain_then_stop(Gateway* g, asio::io_context* ctx, std::chrono::milliseconds deadline) {
  g->begin_drain();
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!g->drained() && std::chrono::steady_clock::now() < until) co_await sleep_for(20ms);
  if (!g->drained()) {
    // Streams still running are ended the way an upstream failure ends them
    // (an SSE error event, an access-log line with error "drain_deadline"),
    // not cut off mid-byte; a short grace lets those last writes go out.
    std::fprintf(stderr, "sluice: drain deadline reached; ending %zu remaining requests\n", g->live_requests());
    for (bool force : {false, true}) {
      g->cut_live_requests(force);
      const auto grace = std::chrono::steady_clock::now() + kDrainCutGrace / 2;
      while (!g->drained() && std::chrono::steady_clock::now() < grace) co_await sleep_for(20ms);
    }
  }
  ctx->stop();
}

void Gateway::begin_drain() {
  if (draining_.exchange(true)) return;
  // The admin listener keeps answering until exit: /readyz says "draining"
  // and /metrics stays scrapeable while the streams finish.
  for (size_t i = 0; i < workers_.size(); ++i) {
    asio::co_spawn(workers_.at(i).ctx(), drain_worker(contexts_[i].get(), api_.get(), tls_listener_.get(), i, &drained_workers_),
                   asio::detached);
  }
}

Status Gateway::start_memory_watermark() {
  const MemoryShedding& m = settings_->admission.memory;
  uint64_t limit = m.limit;
  const char* source = "admission.memory.limit";
  if (limit == 0) {
    if (auto cg = policy::cgroup_memory_limit()) {
      limit = *cg;
      source = "the cgroup's memory limit";
    }
  }
  std::string what = source;
  if (options_.process_count > 1 && limit > 0) {  // each worker process sheds at its share
    limit /= options_.process_count;
    what += ", this worker process's share";
  }
  watermark_ = std::make_unique<policy::MemoryWatermark>(
      policy::MemoryWatermark::Options{.limit = limit, .high = m.high, .low = m.low});
  main_metrics_->gauge(fam_->memory_limit).set(static_cast<int64_t>(limit));
  if (limit == 0) {
    std::fprintf(stderr, "sluice: memory shedding off (no cgroup memory limit; set admission.memory.limit)\n");
  } else {
    std::fprintf(stderr, "sluice: memory shedding above %.0f MiB, admitting again below %.0f MiB (%.0f%%/%.0f%% of %.0f MiB, %s)\n",
                 watermark_->high_bytes() / 1048576.0, watermark_->low_bytes() / 1048576.0, m.high * 100, m.low * 100,
                 limit / 1048576.0, what.c_str());
  }
  return Status::ok();
}

void Gateway::sample_memory() {
  // Each worker measures its own buffers (on its thread) for the next sample.
  uint64_t buffered = 0;
  for (size_t i = 0; i < workers_.size(); ++i) {
    buffered += contexts_[i]->buffered.load(std::memory_order_relaxed);
    asio::post(workers_.at(i).ctx(), [w = contexts_[i].get()] { w->measure_buffers(); });
  }
  main_metrics_->gauge(fam_->memory_buffered).set(static_cast<int64_t>(buffered));
  const uint64_t rss = policy::process_rss_bytes();
  const auto event = watermark_->update(rss, SteadyClock::mono_ns());
  main_metrics_->gauge(fam_->memory_level).set(static_cast<int64_t>(rss));
  switch (event) {
    case policy::MemoryWatermark::Event::kStartShedding:
      shedding_.store(true, std::memory_order_relaxed);
      main_metrics_->gauge(fam_->memory_state).set(1);
      main_metrics_->counter(fam_->memory_transitions, {"shedding"}).inc();
      std::fprintf(stderr, "sluice: memory %.1f MiB is over the high watermark (%.1f MiB): new requests get 503\n",
                   rss / 1048576.0, watermark_->high_bytes() / 1048576.0);
      break;
    case policy::MemoryWatermark::Event::kStopShedding:
      shedding_.store(false, std::memory_order_relaxed);
      main_metrics_->gauge(fam_->memory_state).set(0);
      main_metrics_->counter(fam_->memory_transitions, {"admitting"}).inc();
      std::fprintf(stderr, "sluice: memory %.1f MiB is under the low watermark (%.1f MiB): admitting again\n",
                   rss / 1048576.0, watermark_->low_bytes() / 1048576.0);
      give_back_memory();
      break;
    case policy::MemoryWatermark::Event::kTrim:
      give_back_memory();
      break;
    case policy::MemoryWatermark::Event::kNone:
      break;
  }
}

namespace {

asio::awaitable<void> trim_worker(WorkerContext* w) {
  for (auto& per_upstream : w->gen->pools)
    for (auto& pool : per_upstream) pool->trim_idle(kIdleUpstreamKeep);
  co_return;
}

asio::awaitable<void> sample_memory_periodically(Gateway* g, std::chrono::milliseconds every) {
  for (;;) {
    g->sample_memory();
    co_await sleep_for(every);
  }
}

}  // namespace

// Low on memory pressure: idle upstream connections beyond a few per
// endpoint close on each worker, and freed heap goes back to the kernel.
void Gateway::give_back_memory() {
  for (size_t i = 0; i < workers_.size(); ++i)
    asio::co_spawn(workers_.at(i).ctx(), trim_worker(contexts_[i].get()), asio::detached);
  malloc_trim(0);
}

namespace {

constexpr auto kBudgetSaveEvery = 5s;

asio::awaitable<void> save_budgets_periodically(Gateway* g) {
  for (;;) {
    co_await sleep_for(kBudgetSaveEvery);
    g->save_budgets(false);
  }
}

}  // namespace

std::string Gateway::state_file() const {
  const std::string& path = settings_->limits_state_file;
  if (path.empty() || options_.process_count <= 1) return path;
  return path + "." + std::to_string(options_.process_slot);  // its replacement restores it
}

void Gateway::restore_budgets() {
  const std::string path = state_file();
  if (path.empty()) return;
  std::ifstream in(path);
  if (!in) return;  // first start
  const int64_t wall_s = wall_us() / 1'000'000;
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    for (auto& w : contexts_) w->gen->caller_limits.restore(w->gen->settings, wall_s, line);
    ++n;
  }
  std::fprintf(stderr, "sluice: budgets restored from %s (%zu entries)\n", path.c_str(), n);
}

// Sums the workers' snapshots and writes the state file (a temporary, then
// a rename: a crash leaves the previous file whole). Each worker is asked for
// a fresh snapshot for the next round.
void Gateway::save_budgets(bool workers_stopped) {
  const std::string path = state_file();
  if (path.empty() || contexts_.empty()) return;
  const int64_t wall_s = wall_us() / 1'000'000;
  std::map<std::string, uint64_t> total;  // "kind name budget period" -> used
  for (auto& w : contexts_) {
    std::vector<std::string> lines;
    if (workers_stopped) {
      w->gen->caller_limits.snapshot(w->gen->settings, wall_s, lines);
    } else {
      std::lock_guard lock(w->budget_mu);
      lines = w->budget_lines;
    }
    for (const std::string& l : lines) {
      const size_t sp = l.rfind(' ');
      total[l.substr(0, sp)] += std::stoull(l.substr(sp + 1));
    }
    if (!workers_stopped)
      asio::post(w->ctx, [w = w.get()] {
        std::vector<std::string> fresh;
        w->gen->caller_limits.snapshot(w->gen->settings, wall_us() / 1'000'000, fresh);
        std::lock_guard lock(w->budget_mu);
        w->budget_lines = std::move(fresh);
      });
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& [k, used] : total) out << k << ' ' << used << '\n';
    if (!out) {
      std::fprintf(stderr, "sluice: cannot write %s\n", tmp.c_str());
      return;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) std::fprintf(stderr, "sluice: cannot write %s\n", path.c_str());
}

bool Gateway::drained() const { return drained_workers_.load() >= workers_.size(); }

size_t Gateway::live_requests() const {
  size_t n = 0;
  for (const auto& w : contexts_) n += w->live_count.load(std::memory_order_relaxed);
  return n;
}

void Gateway::cut_live_requests(bool force) {
  for (size_t i = 0; i < workers_.size(); ++i)
    asio::co_spawn(workers_.at(i).ctx(), cut_worker(contexts_[i].get(), force), asio::detached);
}

void Gateway::reload_certificates(const char* why) {
  if (!tls_) return;
  Status st = tls_->reload();
  if (st) std::fprintf(stderr, "sluice: TLS certificates reloaded (%s)\n", why);
  else std::fprintf(stderr, "sluice: TLS certificate reload failed (%s), keeping the old ones: %s\n", why,
                    st.message().c_str());
}

namespace {

// SIGHUP reloads the configuration (certificates included); SIGUSR1 reopens
// the log files; SIGUSR2 upgrades to the binary now at our path; SIGWINCH
// (from `sluice --upgrade-from`) says a successor serves our sockets.
asio::awaitable<void> handle_control_signals(Gateway* g, asio::io_context* ctx) {
  asio::signal_set signals(*ctx, SIGHUP, SIGUSR1, SIGUSR2);
  signals.add(SIGWINCH);
  for (;;) {
    auto [ec, sig] = co_await signals.async_wait(kNoThrow);
    if (ec) co_return;
    if (sig == SIGHUP) (void)g->reload("SIGHUP");
    else if (sig == SIGUSR1) g->reopen_logs();
    else if (sig == SIGUSR2) asio::co_spawn(*ctx, g->upgrade("SIGUSR2"), asio::detached);
    else g->hand_over("a successor took over the listening sockets (SIGWINCH)");
  }
}

asio::awaitable<void> watch_certificates(Gateway* g, std::chrono::milliseconds every) {
  for (;;) {
    co_await sleep_for(every);
    // The TLS server of the moment (a reload may add, replace or drop it).
    if (const net::TlsServer* tls = g->tls_server(); tls && tls->files_changed()) g->reload_certificates("files changed");
  }
}

}  // namespace

int Gateway::run() {
  asio::co_spawn(main_ctx_, handle_control_signals(this, &main_ctx_), asio::detached);
  if (!options_.config_path.empty())
    asio::co_spawn(main_ctx_, watch_config_file(this, options_.config_path), asio::detached);
  if (settings_->server.tls.reload_check.count() > 0)
    asio::co_spawn(main_ctx_, watch_certificates(this, settings_->server.tls.reload_check), asio::detached);
  asio::co_spawn(main_ctx_, wait_for_signal_then_drain(this, &main_ctx_, settings_->server.drain_timeout),
                 asio::detached);
  if (!settings_->limits_state_file.empty())
    asio::co_spawn(main_ctx_, save_budgets_periodically(this), asio::detached);
  // Also without a limit: the level and buffer gauges are worth having.
  asio::co_spawn(main_ctx_, sample_memory_periodically(this, settings_->admission.memory.sample), asio::detached);
  main_ctx_.run();
  workers_.stop();
  workers_.join();
  save_budgets(/*workers_stopped=*/true);
  if (access_log_) access_log_->flush_all_and_stop();
  if (audit_log_) audit_log_->flush_all_and_stop();
  std::fprintf(stderr, "sluice: stopped\n");
  return 0;
}

asio::awaitable<void> Gateway::admin_handle(http::Exchange& ex) {
  std::string_view path = ex.request().path();
  std::array<http::Header, 1> json{{{"content-type", "application/json"}}};
  auto json_escape = [](std::string_view v) {
    std::string out;
    json_escape_append(out, v);
    return out;
  };
  if (path == "/healthz") {
    (void)co_await ex.respond(200, json, "{\"status\":\"ok\"}\n");
  } else if (path == "/readyz") {
    bool ok = ready();
    (void)co_await ex.respond(ok ? 200 : 503, json,
                              ok ? "{\"status\":\"ready\"}\n"
                                 : (draining_ ? "{\"status\":\"draining\"}\n" : "{\"status\":\"no healthy upstream\"}\n"));
  } else if (path == "/admin/reload") {
    if (ex.request().method != "POST") {
      std::array<http::Header, 2> allow{{{"content-type", "application/json"}, {"allow", "POST"}}};
      (void)co_await ex.respond(405, allow, http::error_body("use POST", "invalid_request_error", "method_not_allowed"));
      co_return;
    }
    const ReloadOutcome r = reload("POST /admin/reload");
    std::string body = r.ok ? "{\"status\":\"reloaded\"" : "{\"status\":\"rejected\"";
    body += ",\"generation\":" + std::to_string(r.generation);
    if (!r.ok) body += ",\"error\":\"" + json_escape(r.error) + "\"";
    body += ",\"notes\":[";
    for (size_t i = 0; i < r.notes.size(); ++i) body += (i ? ",\"" : "\"") + json_escape(r.notes[i]) + "\"";
    body += "]}\n";
    (void)co_await ex.respond(r.ok ? 200 : 400, json, body);
  } else if (path == "/admin/upgrade") {
    if (ex.request().method != "POST") {
      std::array<http::Header, 2> allow{{{"content-type", "application/json"}, {"allow", "POST"}}};
      (void)co_await ex.respond(405, allow, http::error_body("use POST", "invalid_request_error", "method_not_allowed"));
      co_return;
    }
    // Answered once the new process serves (or failed): this one drains next.
    const UpgradeOutcome u = co_await upgrade("POST /admin/upgrade");
    std::string body = u.ok ? "{\"status\":\"upgraded\",\"pid\":" + std::to_string(u.pid) + "}\n"
                            : "{\"status\":\"failed\",\"error\":\"" + json_escape(u.error) + "\"}\n";
    (void)co_await ex.respond(u.ok ? 200 : 500, json, body);
  } else if (path == "/metrics") {
    update_scrape_gauges();
    std::string body = registry_.render_prometheus();
    body += obs::render_process_metrics();
    std::array<http::Header, 1> text{{{"content-type", "text/plain; version=0.0.4; charset=utf-8"}}};
    (void)co_await ex.respond(200, text, body);
  } else {
    (void)co_await ex.respond(404, json, http::error_body("unknown admin path", "invalid_request_error", "not_found"));
  }
}

}  // namespace sluice::gateway
