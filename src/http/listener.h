#pragma once

#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/status.h"
#include "http/exchange.h"
#include "http/h1/server.h"

namespace sluice::http {

// What one worker's accept loop hands each new connection to.
struct WorkerBinding {
  const Handler* handler = nullptr;
  const h1::ServerOptions* options = nullptr;
  h1::ServerObserver* observer = nullptr;
  h1::ConnectionSet* connections = nullptr;
};

// One SO_REUSEPORT acceptor per worker io_context on the same address, so
// the kernel spreads connections over workers with no shared accept lock.
class HttpListener {
 public:
  static Result<std::unique_ptr<HttpListener>> open(const std::vector<asio::io_context*>& ctxs,
                                                    const asio::ip::tcp::endpoint& ep);
  uint16_t port() const { return port_; }
  size_t size() const { return acceptors_.size(); }
  // Starts accepting on acceptor i. Call before the worker runs, or on its thread.
  void start(size_t i, WorkerBinding b);
  // Stops accepting on acceptor i. Call on worker i's thread.
  void close(size_t i);

 private:
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  uint16_t port_ = 0;
};

}  // namespace sluice::http
