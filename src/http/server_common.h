// What every server codec (h1, h2) shares: the observer the gateway counts
// with, and the per-worker set of live connections that a drain walks.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <algorithm>

#include "http/exchange.h"
#include "http/h1/parser.h"
#include "http/h2/codec.h"

namespace sluice::net {
class TlsServer;
}

namespace sluice::http {

// What a codec reports upward (metrics); implemented by the gateway.
class ServerObserver {
 public:
  virtual ~ServerObserver() = default;
  // `protocol`: "HTTP/1.1", "HTTP/2" (after ALPN or preface detection).
  virtual void on_connection_open(std::string_view protocol) {}
  virtual void on_connection_close() {}
  // A request rejected by the codec itself (400, 431, 505, 501, 408-by-close).
  virtual void on_protocol_error(int status, std::string_view reason) {}
  // A connection-level limit or attack defence fired (HTTP/2: rapid_reset, ...).
  virtual void on_limit(std::string_view protocol, std::string_view limit) {}
  // A TLS handshake failed (bad client, no common protocol, timeout).
  virtual void on_tls_handshake_error() {}
  // accept() failed (EMFILE, ENFILE, ...); the loop backs off and goes on.
  virtual void on_accept_error(const boost::system::error_code& ec) {}
  // A connection closed to stay under max_connections: "idle_evicted" (an old
  // idle keep-alive connection) or "over_capacity" (a new one, none was idle).
  virtual void on_connection_shed(std::string_view reason) {}
};

// Live connections of one worker, so a drain can close the idle ones and ask
// busy ones to close after their current response (HTTP/2: GOAWAY).
class ConnectionSet {
 public:
  class Member {
   public:
    virtual ~Member() = default;
    virtual void drain() = 0;
    // Between requests, with nothing in flight (a keep-alive connection waiting).
    virtual bool idle() const { return false; }
    // Bytes its buffers hold (read and write buffers, HTTP/2 stream queues).
    virtual size_t buffered_bytes() const { return 0; }
    Member* prev = nullptr;
    Member* next = nullptr;
    bool evicted = false;
  };
  void add(Member* m);
  void remove(Member* m);
  void drain_all();
  // Closes the connection that has been open longest among the idle ones;
  // false when none is idle.
  bool close_oldest_idle();
  // What all members' buffers hold now (walks the set: for a periodic sample).
  size_t buffered_bytes() const;
  // Members, plus connections accepted but not yet handed to their codec
  // (reading the h2c preface, in the TLS handshake): a drain waits for those too.
  size_t size() const { return size_ + pending_; }
  bool draining() const { return draining_; }

  // Counts a connection as pending for its lifetime (null set: nothing).
  class Pending {
   public:
    explicit Pending(ConnectionSet* set) : set_(set) {
      if (set_) ++set_->pending_;
    }
    ~Pending() { release(); }
    Pending(const Pending&) = delete;
    Pending& operator=(const Pending&) = delete;
    void release() {
      if (set_) --set_->pending_;
      set_ = nullptr;
    }

   private:
    ConnectionSet* set_;
  };

 private:
  Member* head_ = nullptr;  // newest
  Member* tail_ = nullptr;  // oldest
  size_t size_ = 0;
  size_t pending_ = 0;
  bool draining_ = false;
};

struct ServerOptions {
  h1::Limits limits;
  int64_t header_timeout_ms = 10'000;  // from the first byte of a request to its complete head; TLS handshake
  int64_t idle_timeout_ms = 60'000;    // keep-alive wait for the next request (HTTP/2: with no open stream)
  int64_t body_timeout_ms = 60'000;    // gap allowed between request body reads
  int64_t body_deadline_ms = 0;        // the whole body, from the end of the head; 0: none
  uint64_t min_body_rate = 0;          // bytes/s on average once the grace has passed; 0: none
  int64_t min_body_rate_grace_ms = 5'000;
  int64_t write_stall_ms = 30'000;     // one response write may take this long (client not reading)
  size_t max_pipelined_bytes = 64 * 1024;
  uint32_t max_connections = 0;        // this worker's share of server.max_connections; 0: none
  const std::atomic<bool>* pause_accept = nullptr;  // while true, accept nothing (memory shedding)
  bool http2 = true;                   // h2c by preface on cleartext, "h2" by ALPN on TLS
  h2::Options h2;
};

// The time limits of one request body: a gap between reads, a deadline for
// the whole body, and a minimum average rate once a grace period has passed
// (a "slow POST" that trickles a few bytes at a time, as Kestrel's
// MinRequestBodyDataRate). Codecs wait at most next_wait_ms() for more bytes;
// when a wait runs out, broken() says which limit it was, if any.
class BodyClock {
 public:
  BodyClock(const ServerOptions& o, int64_t start_ns) : o_(o), start_ns_(start_ns), last_ns_(start_ns) {}
  void progress(int64_t now_ns) { last_ns_ = now_ns; }
  int64_t next_wait_ms(uint64_t received, int64_t now_ns) const;
  // "body_timeout", "min_body_rate", "body_gap", or nullptr while all hold.
  const char* broken(uint64_t received, int64_t now_ns) const;
  // The client-facing reason for a broken limit.
  static std::string_view describe(const char* limit);

 private:
  const ServerOptions& o_;
  int64_t start_ns_;
  int64_t last_ns_;
};

// What one worker's accept loop hands each new connection to. Everything
// pointed to outlives the connections.
struct ServeContext {
  const Handler* handler = nullptr;
  const ServerOptions* options = nullptr;
  ServerObserver* observer = nullptr;
  ConnectionSet* connections = nullptr;
  const net::TlsServer* tls = nullptr;  // null: a cleartext listener
};

}  // namespace sluice::http
