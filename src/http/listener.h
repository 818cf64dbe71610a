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
  // Takes over listening sockets another sluice handed over (a binary
  // upgrade): the very sockets, so no connection waiting in their queues is
  // lost. Socket j is served by worker j % workers; a worker left without
  // one gets a new socket on the same address (SO_REUSEPORT).
  static Result<std::unique_ptr<HttpListener>> adopt(const std::vector<asio::io_context*>& ctxs,
                                                     const std::vector<int>& fds);
  uint16_t port() const { return port_; }
  asio::ip::tcp::endpoint local_endpoint() const;
  // The listening sockets (for a hand-over).
  std::vector<int> native_handles() const;
  // Starts worker i's acceptors. Call before the worker runs, or on its thread.
  void start(size_t i, ServeContext ctx);
  // Stops worker i's acceptors. Call on worker i's thread. The socket is
  // taken out of the worker's poller before it is closed, so a copy held by
  // another process (after a hand-over) never wakes this one.
  void close(size_t i);

 private:
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::vector<size_t> worker_of_;                      // per acceptor
  std::vector<std::unique_ptr<ServeContext>> contexts_;  // per worker
  uint16_t port_ = 0;
};

}  // namespace sluice::http
