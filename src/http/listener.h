#pragma once

#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/status.h"
#include "http/server_common.h"

namespace sluice::http {

// One SO_REUSEPORT acceptor per worker io_context on the same address, so
// the kernel spreads connections over workers with no shared accept lock.
//
// Each connection is served by the codec it asks for: on a cleartext
// listener HTTP/2 when it opens with the HTTP/2 preface (h2c, prior
// knowledge), else HTTP/1.1; on a TLS listener by ALPN ("h2" or "http/1.1").
class HttpListener {
 public:
  static Result<std::unique_ptr<HttpListener>> open(const std::vector<asio::io_context*>& ctxs,
                                                    const asio::ip::tcp::endpoint& ep);
  uint16_t port() const { return port_; }
  size_t size() const { return acceptors_.size(); }
  // Starts accepting on acceptor i. Call before the worker runs, or on its thread.
  void start(size_t i, ServeContext ctx);
  // Stops accepting on acceptor i. Call on worker i's thread.
  void close(size_t i);

 private:
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::vector<std::unique_ptr<ServeContext>> contexts_;
  uint16_t port_ = 0;
};

}  // namespace sluice::http
