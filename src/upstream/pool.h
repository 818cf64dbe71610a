#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/status.h"
#include "upstream/call.h"
#include "upstream/connection.h"
#include "upstream/h2_connection.h"

namespace sluice::upstream {

enum class Protocol : uint8_t { kHttp1, kHttp2 };

// Where an endpoint is and how requests to it are addressed.
struct Target {
  std::string host;         // name or IP literal
  uint16_t port = 0;
  bool tls = false;
  std::string sni;          // TLS server name (and name verified)
  std::string host_header;  // "host[:port]"
  std::string path_prefix;  // prepended to the request target
  Protocol protocol = Protocol::kHttp1;  // kHttp2: h2 by ALPN over TLS, else h2c with prior knowledge
  H2Settings h2;
};

// Passive health of one endpoint, shared by all workers (relaxed atomics,
// written only when a connection attempt fails or recovers).
class Health {
 public:
  bool up(int64_t now_ns) const { return now_ns >= down_until_ns_.load(std::memory_order_relaxed); }
  // Marks the endpoint down for a back-off that grows with consecutive failures (0.5 s .. 30 s).
  void failure(int64_t now_ns);
  void success();
  uint32_t consecutive_failures() const { return failures_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> down_until_ns_{0};
  std::atomic<uint32_t> failures_{0};
};

// The connections of one worker to one endpoint: keep-alive HTTP/1.1
// connections, or a few HTTP/2 connections each carrying many requests.
class EndpointPool {
 public:
  EndpointPool(asio::any_io_executor ex, Target target, std::shared_ptr<asio::ssl::context> tls,
               size_t max_idle, Health* health);
  ~EndpointPool();

  const Target& target() const { return target_; }
  Health& health() { return *health_; }
  const asio::any_io_executor& executor() const { return ex_; }

  // A call for one request. HTTP/1.1: on a pooled connection still alive,
  // else a new one (connect() opens it). HTTP/2: on the first connection
  // with room for another stream, else a new one (up to max_connections;
  // past that, the least loaded).
  std::unique_ptr<Call> open_call();

  // HTTP/1.1 connections. A pooled connection that is still alive, or null.
  std::unique_ptr<Connection> take_idle();
  std::unique_ptr<Connection> create();
  // Returns a connection after a response; kept only if reusable and room remains.
  void give_back(std::unique_ptr<Connection> c);
  // Address of the endpoint (IP literals directly; names resolved and cached for 30 s).
  asio::awaitable<Result<tcp::endpoint>> resolve();

  size_t idle_count() const { return idle_.size(); }
  // Closes idle HTTP/1.1 connections beyond `keep` (the least recently used
  // first): memory given back while the gateway is under its low watermark.
  void trim_idle(size_t keep);
  uint32_t in_flight = 0;  // requests of this worker now using the endpoint

 private:
  asio::any_io_executor ex_;
  Target target_;
  std::shared_ptr<asio::ssl::context> tls_;
  size_t max_idle_;
  Health* health_;
  struct Idle {
    std::unique_ptr<Connection> conn;
    int64_t since_ns;
  };
  std::vector<Idle> idle_;  // most recently used last
  std::vector<std::shared_ptr<H2Connection>> h2_;
  std::optional<tcp::endpoint> resolved_;
  int64_t resolved_at_ns_ = 0;
};

// Picks an endpoint among a worker's pools for one upstream: the less busy of
// two candidates (power of two choices on in-flight requests), skipping
// endpoints marked down unless all are. Returns an index or -1 if empty.
// `exclude` lists indices already tried for this request.
int pick_endpoint(const std::vector<EndpointPool*>& pools, int64_t now_ns, uint64_t& rr_state,
                  const std::vector<int>& exclude);

}  // namespace sluice::upstream
