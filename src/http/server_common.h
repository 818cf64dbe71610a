// What every server codec (h1, h2) shares: the observer the gateway counts
// with, and the per-worker set of live connections that a drain walks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

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
};

// Live connections of one worker, so a drain can close the idle ones and ask
// busy ones to close after their current response (HTTP/2: GOAWAY).
class ConnectionSet {
 public:
  class Member {
   public:
    virtual ~Member() = default;
    virtual void drain() = 0;
    Member* prev = nullptr;
    Member* next = nullptr;
  };
  void add(Member* m);
  void remove(Member* m);
  void drain_all();
  size_t size() const { return size_; }
  bool draining() const { return draining_; }

 private:
  Member* head_ = nullptr;
  size_t size_ = 0;
  bool draining_ = false;
};

struct ServerOptions {
  h1::Limits limits;
  int64_t header_timeout_ms = 10'000;  // from the first byte of a request to its complete head; TLS handshake
  int64_t idle_timeout_ms = 60'000;    // keep-alive wait for the next request (HTTP/2: with no open stream)
  int64_t body_timeout_ms = 60'000;    // gap allowed between request body reads
  int64_t write_stall_ms = 30'000;     // one response write may take this long (client not reading)
  size_t max_pipelined_bytes = 64 * 1024;
  bool http2 = true;                   // h2c by preface on cleartext, "h2" by ALPN on TLS
  h2::Options h2;
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
