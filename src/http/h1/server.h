// HTTP/1.1 server side: turns a TCP connection into a sequence of Exchanges.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "http/exchange.h"
#include "http/h1/parser.h"

namespace sluice::http::h1 {

struct ServerOptions {
  Limits limits;
  int64_t header_timeout_ms = 10'000;  // from the first byte of a request to its complete head
  int64_t idle_timeout_ms = 60'000;    // keep-alive wait for the next request
  int64_t body_timeout_ms = 60'000;    // gap allowed between request body reads
  int64_t write_stall_ms = 30'000;     // one response write may take this long (client not reading)
  size_t max_pipelined_bytes = 64 * 1024;
};

// What the codec reports upward (metrics); implemented by the gateway.
class ServerObserver {
 public:
  virtual ~ServerObserver() = default;
  virtual void on_connection_open() {}
  virtual void on_connection_close() {}
  // A request rejected by the codec itself (400, 431, 505, 501, 408-by-close).
  virtual void on_protocol_error(int status, std::string_view reason) {}
};

// Live connections of one worker, so a drain can close the idle ones and ask
// busy ones to close after their current response.
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

// Serves one connection until it closes. `handler`, `opts`, `observer` and
// `set` must outlive the returned awaitable.
asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket, const Handler& handler,
                                       const ServerOptions& opts, ServerObserver* observer,
                                       ConnectionSet* set);

}  // namespace sluice::http::h1
