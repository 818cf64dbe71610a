#pragma once

#include <array>
#include <atomic>
#include <cstring>
#include <unordered_map>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "gateway/caller_limits.h"
#include "net/redis_client.h"
#include "policy/redis_limits.h"
#include "gateway/context.h"
#include "gateway/generation.h"
#include "gateway/metrics_set.h"
#include "gateway/settings.h"
#include "gateway/shared_policy.h"
#include "gateway/stage.h"
#include "http/exchange.h"
#include "http/h1/server.h"
#include "obs/access_log.h"
#include "obs/metrics.h"
#include "upstream/pool.h"

namespace sluice::gateway {

// One worker's side of a Generation: its connection pools (a pool whose
// endpoint is unchanged is the previous generation's, connections and all),
// its shard of the key and team limits (counters carried over), its Redis
// client. Only the worker's thread touches it; a request holds the one it
// started with (RequestContext::settings shares its ownership).
struct WorkerGeneration {
  WorkerGeneration(boost::asio::io_context& ctx, std::shared_ptr<const Generation> g, size_t workers,
                   const WorkerGeneration* previous);

  std::shared_ptr<const Generation> shared;
  const Settings& settings;
  std::vector<std::vector<std::shared_ptr<upstream::EndpointPool>>> pools;  // [upstream][endpoint]
  std::vector<std::vector<upstream::EndpointPool*>> pool_views;
  std::vector<uint64_t> rr;  // per upstream
  WorkerLimits caller_limits;  // this worker's shard of every key's and team's limits (Redis: the fallback)
  // limits.backend: redis (remote_limits.cc). The client is kept over a
  // reload that leaves the server's address as it was.
  std::shared_ptr<net::RedisClient> redis;
  std::unique_ptr<policy::RedisLimiter> redis_limits;
  // Keys this worker has verified, by SHA-256(key): a key seen again costs
  // one hash instead of two (the salted check). Holds no key, only its
  // digest; cleared when it grows past kKeyCacheMax. Per snapshot: the
  // indices are into its auth.keys.
  struct DigestHash {
    size_t operator()(const std::array<uint8_t, 32>& d) const {
      size_t h;
      std::memcpy(&h, d.data(), sizeof h);
      return h;
    }
  };
  std::unordered_map<std::array<uint8_t, 32>, size_t, DigestHash> verified_keys;
  static constexpr size_t kKeyCacheMax = 4096;

 private:
  void start_redis(boost::asio::io_context& ctx, const WorkerGeneration* previous);
};

// One worker's gateway state. Only the worker's thread touches it.
class WorkerContext final : public http::ServerObserver {
 public:
  WorkerContext(boost::asio::io_context& ctx, std::shared_ptr<const Generation> generation, obs::Shard& metrics,
                const GatewayMetrics& fam, obs::AccessLogBuffer* log, obs::AccessLogBuffer* audit = nullptr,
                size_t workers = 1);

  // Switches to a new configuration snapshot (call on the worker's thread):
  // new requests use it; those running keep theirs.
  void adopt(std::shared_ptr<const Generation> generation);

  boost::asio::awaitable<void> handle(http::Exchange& ex);

  // ServerObserver
  void on_connection_open(std::string_view protocol) override;
  void on_limit(std::string_view protocol, std::string_view limit) override;
  void on_tls_handshake_error() override;
  void on_connection_close() override;
  void on_protocol_error(int status, std::string_view reason) override;
  void on_accept_error(const boost::system::error_code& ec) override;
  void on_connection_shed(std::string_view reason) override;

  boost::asio::io_context& ctx;
  std::shared_ptr<WorkerGeneration> gen;  // the current snapshot
  obs::Shard& metrics;
  const GatewayMetrics& fam;
  obs::AccessLogBuffer* log;
  obs::AccessLogBuffer* audit;  // the security audit log (header rule rejections); null: off
  boost::asio::awaitable<std::optional<WorkerLimits::Refusal>> reserve_remote(RequestContext& rc);
  void settle_remote(RequestContext& rc);
  void note_redis_transition(WorkerGeneration& g);
  std::unordered_map<std::string, int64_t> pending_settles;  // counter -> delta, flushed every few ms
  bool settle_flush_scheduled = false;
  // The last budget snapshot this worker took (for limits.state_file); the
  // main thread reads it under the mutex every few seconds.
  std::mutex budget_mu;
  std::vector<std::string> budget_lines;
  std::vector<std::unique_ptr<Stage>> stages;
  http::ConnectionSet connections;
  http::ServerOptions server_opts;
  http::Handler handler;  // bound to handle()
  std::atomic<size_t> live_count{0};  // requests running (read by the main thread)
  // What this worker's buffers held at its last measure_buffers() (read by
  // the main thread's memory sampler).
  std::atomic<uint64_t> buffered{0};
  // Client connection buffers and HTTP/2 queues, plus request bodies held.
  void measure_buffers();

  // Ends every running request now, as an upstream failure would end it, with
  // `reason` as its error code: a stream gets a final SSE error event, a
  // request waiting for its upstream a 503, and each is logged. `force`
  // (a second pass) resets those still running: their clients do not read.
  void cut_live_requests(const char* reason, bool force);

 private:
  void settle(RequestContext& rc);
  void apply_server_options(const Settings& s);
  void register_metrics(const Settings& s);
  void audit_header_violation(RequestContext& rc);
  boost::asio::awaitable<bool> run_stages(RequestContext& rc);
  void link(RequestContext& rc);
  void unlink(RequestContext& rc);

  size_t workers_;
  RequestContext* live_head_ = nullptr;
  int64_t last_accept_log_ns_ = 0;
};

// Answers a request locally and counts it: r.body as is when given, else an
// OpenAI-style error from r.code and r.message, with Allow (405) and
// Retry-After when set. Nothing is sent when the client is gone (status 499).
boost::asio::awaitable<void> reply_locally(RequestContext& rc, StageResult r);

// Forwards a routed request to its upstream and streams the answer back.
boost::asio::awaitable<void> forward(RequestContext& rc);

}  // namespace sluice::gateway
