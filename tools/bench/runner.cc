#include "bench/runner.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <csignal>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bench/client_connection.h"
#include "bench/request_builder.h"
#include "bench/response_meter.h"
#include "bench/schedule.h"
#include "bench/target.h"
#include "core/clock.h"
#include "net/deadline.h"

namespace sluice::bench {
namespace {

using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr int64_t kReconnectBackoffNs = 10'000'000;  // after a failed connect
constexpr int64_t kMinSleepNs = 20'000;              // sooner than this: send now
constexpr int64_t kIdleProbeNs = 200'000'000;        // idle longer than this: check before sending

int64_t now_ns() { return SteadyClock::mono_ns(); }
int64_t seconds_to_ns(double s) { return static_cast<int64_t>(s * 1e9); }

// Read by every thread, written by none once the run starts.
struct Shared {
  const BenchOptions* opts = nullptr;
  Target target;
  std::vector<tcp::endpoint> endpoints;
  std::unique_ptr<asio::ssl::context> tls;
  std::optional<RequestTemplate> tmpl;
  std::optional<RequestMix> mix;
};

struct Lane;

// One connection and what the lanes on it share. HTTP/1.1: one lane per
// link. HTTP/2: up to --streams lanes, each exchange on its own stream.
struct Link {
  std::unique_ptr<ClientConnection> conn;
  Lane* first = nullptr;       // opens it before the run
  std::vector<Lane*> waiting;  // lanes waiting for another lane's connect
  int64_t last_used_ns = 0;    // end of the last exchange or connect
  int lanes = 0;               // lanes on this link still looping (phase 2)
  bool connecting = false;
};

// One request at a time and everything it reuses from request to request.
struct Lane {
  Lane(const RequestTemplate& t, Link* l) : link(l), builder(t) {}
  Link* link;
  std::unique_ptr<net::Deadline> deadline;  // expiry: cancel (the exchange or the connect)
  std::optional<asio::steady_timer> sleeper;
  RequestBuilder builder;
  ResponseMeter meter;
  ExchangeCancel cancel;  // bound to what the lane waits on: its exchange, or a connect
  bool timed_out = false;
};

struct Worker {
  asio::io_context ctx{1};
  Stats stats;
  std::optional<RequestSchedule> schedule;
  std::vector<std::unique_ptr<Link>> links;
  std::vector<std::unique_ptr<Lane>> lanes;
  std::optional<asio::steady_timer> end_timer;
  int64_t measure_from_ns = 0;
  int64_t end_ns = INT64_MAX;
  int64_t finished_ns = 0;  // when the last lane ended
  int64_t stopped_ns = 0;   // when stop_worker() ran (end timer or signal), 0 if never
  int connecting = 0;  // phase 1: initial connects (one per link) still under way
  int active = 0;      // phase 2: lane loops still running
  bool stopping = false;
  uint64_t connects = 0;
};

void stop_worker(Worker* w) {
  if (w->stopping) return;
  w->stopping = true;
  w->stopped_ns = now_ns();
  for (auto& link : w->links) link->conn->close();
  for (auto& lane : w->lanes) {
    if (lane->sleeper) lane->sleeper->cancel();
  }
  if (w->end_timer) w->end_timer->cancel();
}

asio::awaitable<void> sleep_until(Lane* lane, int64_t t_ns) {
  lane->sleeper->expires_at(asio::steady_timer::time_point(std::chrono::nanoseconds(t_ns)));
  auto [ec] = co_await lane->sleeper->async_wait(kNoThrow);
  (void)ec;
}

// Until the lane that opens the link's connection is done with it.
asio::awaitable<void> wait_for_connect(Lane* lane) {
  lane->link->waiting.push_back(lane);
  lane->sleeper->expires_at(asio::steady_timer::time_point::max());
  auto [ec] = co_await lane->sleeper->async_wait(kNoThrow);
  (void)ec;
}

void close_connection(void* conn) { static_cast<ClientConnection*>(conn)->close(); }

// Connects the lane's link with the connect timeout, or waits while another
// lane of the link does; counts its own failure when it is measured.
asio::awaitable<bool> open_link(Worker* w, Lane* lane, int64_t timeout_ns, bool count) {
  Link* link = lane->link;
  if (link->connecting) {
    co_await wait_for_connect(lane);
    co_return link->conn->ready();
  }
  link->connecting = true;
  lane->timed_out = false;
  lane->deadline->arm_at(now_ns() + timeout_ns);
  Outcome out;
  {
    CancelScope scope(lane->cancel, close_connection, link->conn.get());
    out = co_await link->conn->connect();
  }
  lane->deadline->disarm();
  link->connecting = false;
  for (Lane* other : link->waiting) other->sleeper->cancel();
  link->waiting.clear();
  if (out == Outcome::kOk) {
    ++w->connects;
    link->last_used_ns = now_ns();
    co_return true;
  }
  if (count && !w->stopping && now_ns() >= w->measure_from_ns) w->stats.count_error(ErrorKind::kConnect);
  co_return false;
}

asio::awaitable<void> initial_connect(const Shared* sh, Worker* w, Lane* lane) {
  bool ok = co_await open_link(w, lane, seconds_to_ns(sh->opts->connect_timeout_s), false);
  (void)ok;  // a failed lane retries, and counts, once the run starts
  // Deadline waits stay queued after disarm(), so run() would not return on
  // its own: stop it; the queued work carries over to phase 2.
  if (--w->connecting == 0) w->ctx.stop();
}

void lane_done(Worker* w, Lane* lane) {
  // The connection goes with the last lane on it: HTTP/2 neighbours may still be reading.
  if (--lane->link->lanes == 0) lane->link->conn->close();
  lane->deadline.reset();  // cancels its pending wait so the loop can end
  if (--w->active == 0) {
    w->finished_ns = now_ns();
    if (w->end_timer) w->end_timer->cancel();
  }
}

asio::awaitable<void> lane_loop(const Shared* sh, Worker* w, Lane* lane) {
  const BenchOptions& o = *sh->opts;
  const int64_t timeout_ns = seconds_to_ns(o.timeout_s);
  const int64_t connect_timeout_ns = seconds_to_ns(o.connect_timeout_s);
  RequestSchedule& schedule = *w->schedule;
  const bool open_loop = schedule.open_loop();
  Link* link = lane->link;
  while (!w->stopping) {
    if (!link->conn->ready()) {
      bool ok = co_await open_link(w, lane, connect_timeout_ns, true);
      if (w->stopping) break;
      if (!ok) {
        co_await sleep_until(lane, now_ns() + kReconnectBackoffNs);
        continue;
      }
    }
    std::optional<Slot> slot = schedule.claim(now_ns());
    if (!slot) break;
    if (open_loop && slot->intended_ns - now_ns() > kMinSleepNs) {
      co_await sleep_until(lane, slot->intended_ns);
      if (w->stopping) break;
    }
    if (now_ns() - link->last_used_ns > kIdleProbeNs && !link->conn->still_open()) {
      // Closed by the server while idle: reconnect, on this request's clock.
      bool ok = co_await open_link(w, lane, connect_timeout_ns, true);
      if (w->stopping) break;
      if (!ok) continue;  // counted as a connect error; the slot is given up
    }
    const int64_t sent_ns = now_ns();
    const int64_t start_ns = open_loop ? slot->intended_ns : sent_ns;
    Stats* rec = slot->measured ? &w->stats : nullptr;
    if (rec && open_loop) rec->wait.record(sent_ns - slot->intended_ns);

    const RequestShape shape = sh->mix->draw(slot->index);
    const OutgoingRequest req = lane->builder.build(shape);
    lane->meter.begin(start_ns, lane->builder.expected_content_events(), rec);
    lane->timed_out = false;
    lane->deadline->arm_at(sent_ns + timeout_ns);
    Outcome out = co_await link->conn->exchange(req, lane->meter, lane->cancel);
    lane->deadline->disarm();
    const int64_t end_ns = now_ns();
    link->last_used_ns = end_ns;
    // In flight when the run ended: neither a result nor an error.
    if (w->stopping && out != Outcome::kOk) break;
    lane->meter.finish(out, lane->timed_out, end_ns);
  }
  lane_done(w, lane);
}

asio::awaitable<void> end_of_run(Worker* w) {
  w->end_timer->expires_at(asio::steady_timer::time_point(std::chrono::nanoseconds(w->end_ns)));
  auto [ec] = co_await w->end_timer->async_wait(kNoThrow);
  if (!ec) stop_worker(w);
}

struct Sync {
  int64_t t0 = 0;  // written by the barrier's completion, read after it
  std::atomic<int> running{0};
  asio::io_context* main_ctx = nullptr;
};

// Runs once, when the last thread has its connections open: that is t0.
struct SetStartTime {
  Sync* sync;
  void operator()() noexcept { sync->t0 = now_ns(); }
};
using StartBarrier = std::barrier<SetStartTime>;

void worker_thread(const Shared* sh, Worker* w, uint32_t index, StartBarrier* ready, Sync* sync) {
  const BenchOptions& o = *sh->opts;
  // Phase 1: open every connection, so that set-up is not part of the run.
  w->connecting = static_cast<int>(w->links.size());
  for (auto& link : w->links) asio::co_spawn(w->ctx, initial_connect(sh, w, link->first), asio::detached);
  w->ctx.run();
  w->ctx.restart();

  // Phase 2: all threads start together at t0.
  ready->arrive_and_wait();
  const int64_t t0 = sync->t0;
  ScheduleParams p;
  p.start_ns = t0;
  p.warmup_ns = seconds_to_ns(o.warmup_s);
  if (o.duration_s > 0) p.end_ns = t0 + p.warmup_ns + seconds_to_ns(o.duration_s);
  p.max_measured = o.requests;
  p.rate = o.closed_loop() ? 0 : o.rate;
  p.threads = o.threads;
  p.thread_index = index;
  w->schedule.emplace(p);
  w->measure_from_ns = t0 + p.warmup_ns;
  w->end_ns = p.end_ns;
  w->active = static_cast<int>(w->lanes.size());
  if (!w->stopping) {
    if (w->end_ns != INT64_MAX) {
      w->end_timer.emplace(w->ctx);
      asio::co_spawn(w->ctx, end_of_run(w), asio::detached);
    }
    for (auto& lane : w->lanes) asio::co_spawn(w->ctx, lane_loop(sh, w, lane.get()), asio::detached);
  } else {
    w->active = 0;
    w->finished_ns = now_ns();
    for (auto& lane : w->lanes) lane->deadline.reset();
  }
  w->ctx.run();
  if (sync->running.fetch_sub(1) == 1 && sync->main_ctx) sync->main_ctx->stop();
}

Result<std::unique_ptr<asio::ssl::context>> make_tls_context(bool verify, const std::string& ca_file) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  if (verify) {
    if (ca_file.empty()) {
      ctx->set_default_verify_paths(ec);
      if (ec) return Status(Errc::kInvalid, "TLS: cannot load the system CA store: " + ec.message());
    } else {
      ctx->load_verify_file(ca_file, ec);
      if (ec) return Status(Errc::kInvalid, "TLS: cannot load --cacert " + ca_file + ": " + ec.message());
    }
    ctx->set_verify_mode(asio::ssl::verify_peer, ec);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none, ec);
  }
  static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx->native_handle(), kAlpn, sizeof kAlpn);
  return ctx;
}

Status prepare(const BenchOptions& o, Shared& sh) {
  sh.opts = &o;
  auto t = parse_target(o.url);
  if (!t) return t.status();
  sh.target = std::move(*t);

  asio::io_context rctx;
  tcp::resolver resolver(rctx);
  boost::system::error_code ec;
  auto results = resolver.resolve(sh.target.host, std::to_string(sh.target.port), ec);
  if (ec || results.empty()) {
    return Status(Errc::kUnavailable, "cannot resolve " + sh.target.host + ": " + ec.message());
  }
  for (const auto& r : results) sh.endpoints.push_back(r.endpoint());

  if (sh.target.tls) {
    auto ctx = make_tls_context(!o.insecure, o.ca_file);
    if (!ctx) return ctx.status();
    sh.tls = std::move(*ctx);
  }
  std::optional<std::string> body;
  if (!o.body_file.empty()) {
    std::ifstream in(o.body_file, std::ios::binary);
    if (!in) return Status(Errc::kInvalid, "cannot read --body-file " + o.body_file);
    std::ostringstream ss;
    ss << in.rdbuf();
    body = ss.str();
  }
  auto tmpl = RequestTemplate::make(sh.target.path, sh.target.authority, o.model, o.headers, std::move(body),
                                    o.input.max);
  if (!tmpl) return tmpl.status();
  sh.tmpl.emplace(std::move(*tmpl));
  sh.mix.emplace(o.seed, o.input, o.output, o.stream_share);
  return Status::ok();
}

}  // namespace

Result<BenchResult> run_bench(const BenchOptions& o, RunControl control) {
  Shared sh;
  Status st = prepare(o, sh);
  if (!st) return st;

  const uint32_t threads = o.threads;
  const uint32_t total = o.total_connections();
  std::vector<std::unique_ptr<Worker>> workers;
  uint32_t link_index = 0;  // over all threads
  for (uint32_t j = 0; j < threads; ++j) {
    auto w = std::make_unique<Worker>();
    uint32_t links = total / threads + (j < total % threads ? 1 : 0);
    for (uint32_t i = 0; i < links; ++i, ++link_index) {
      auto link = std::make_unique<Link>();
      ConnectParams cp;
      cp.executor = w->ctx.get_executor();
      cp.target = &sh.target;
      cp.endpoints = sh.endpoints;
      cp.tls = sh.tls.get();
      cp.verify_peer = !o.insecure;
      link->conn = o.http2 ? make_h2_connection(cp, o.streams_per_connection) : make_h1_connection(cp);
      // Closed loop: the concurrency spread evenly (at most --streams each).
      // Open loop: each connection carries up to --streams requests at once.
      link->lanes = static_cast<int>(o.closed_loop()
                                         ? o.concurrency / total + (link_index < o.concurrency % total ? 1 : 0)
                                         : o.streams_per_connection);
      for (int k = 0; k < link->lanes; ++k) {
        auto lane = std::make_unique<Lane>(*sh.tmpl, link.get());
        Lane* raw = lane.get();
        lane->deadline = std::make_unique<net::Deadline>(w->ctx.get_executor(), [raw] {
          raw->timed_out = true;
          raw->cancel.abandon();
        });
        lane->sleeper.emplace(w->ctx);
        if (!link->first) link->first = raw;
        w->lanes.push_back(std::move(lane));
      }
      w->links.push_back(std::move(link));
    }
    workers.push_back(std::move(w));
  }

  Sync sync;
  sync.running = static_cast<int>(threads);
  BenchResult result;
  StartBarrier ready(static_cast<std::ptrdiff_t>(threads), SetStartTime{&sync});
  asio::io_context main_ctx(1);
  std::optional<asio::signal_set> signals;
  if (control.handle_signals) {
    sync.main_ctx = &main_ctx;
    signals.emplace(main_ctx, SIGINT, SIGTERM);
    signals->async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      result.interrupted = true;
      for (auto& w : workers) asio::post(w->ctx, [wp = w.get()] { stop_worker(wp); });
    });
  }
  std::vector<std::thread> pool;
  for (uint32_t j = 0; j < threads; ++j) {
    pool.emplace_back(worker_thread, &sh, workers[j].get(), j, &ready, &sync);
  }
  if (control.handle_signals) {
    auto guard = asio::make_work_guard(main_ctx);
    main_ctx.run();
    signals->cancel();
  }
  for (auto& t : pool) t.join();

  const int64_t t0 = sync.t0;
  const int64_t from = t0 + seconds_to_ns(o.warmup_s);
  int64_t to = 0;
  for (auto& w : workers) {
    result.stats.merge(w->stats);
    result.connects += w->connects;
    // The window ends with the request limit, a stop, or the end time (open
    // loop lanes leave as soon as no slot is left before it: still a full window).
    int64_t w_end = w->end_ns;
    if (w->schedule && w->schedule->limit_reached()) {
      w_end = w->finished_ns;
    } else if (w->stopped_ns) {
      w_end = std::min(w->stopped_ns, w->end_ns);
    }
    to = std::max(to, std::min(w_end, w->end_ns));
  }
  result.elapsed_s = std::max<int64_t>(to - from, 0) / 1e9;
  result.start_wall_us = wall_us() - (now_ns() - t0) / 1000;
  return result;
}

}  // namespace sluice::bench
