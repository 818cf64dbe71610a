#include "http/listener.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "net/listener.h"

namespace sluice::http {

namespace {

asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor* acc, WorkerBinding b) {
  for (;;) {
    auto [ec, sock] = co_await acc->async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      // Out of descriptors or a transient error: back off briefly instead of spinning.
      asio::steady_timer t(acc->get_executor(), std::chrono::milliseconds(50));
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    asio::co_spawn(acc->get_executor(),
                   h1::serve_connection(std::move(sock), *b.handler, *b.options, b.observer, b.connections),
                   asio::detached);
  }
}

}  // namespace

Result<std::unique_ptr<HttpListener>> HttpListener::open(const std::vector<asio::io_context*>& ctxs,
                                                         const asio::ip::tcp::endpoint& ep) {
  auto l = std::make_unique<HttpListener>();
  asio::ip::tcp::endpoint bind_ep = ep;
  for (auto* ctx : ctxs) {
    auto acc = net::open_listener(*ctx, bind_ep, /*reuse_port=*/true);
    if (!acc) return acc.status();
    if (bind_ep.port() == 0) bind_ep.port(acc->local_endpoint().port());  // the rest share the picked port
    l->acceptors_.push_back(std::make_unique<asio::ip::tcp::acceptor>(std::move(*acc)));
  }
  l->port_ = bind_ep.port();
  return l;
}

void HttpListener::start(size_t i, WorkerBinding b) {
  asio::co_spawn(acceptors_[i]->get_executor(), accept_loop(acceptors_[i].get(), b), asio::detached);
}

void HttpListener::close(size_t i) {
  boost::system::error_code ec;
  acceptors_[i]->close(ec);
}

}  // namespace sluice::http
