#include "http/listener.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "http/h1/server.h"
#include "http/h2/server.h"
#include "http/transport.h"
#include "net/deadline.h"
#include "net/listener.h"
#include "net/tls_server.h"

namespace sluice::http {

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Cleartext: HTTP/2 with prior knowledge starts with the client preface;
// anything else is HTTP/1.1. The bytes read to decide go to the codec.
asio::awaitable<void> serve_cleartext(tcp::socket sock, const ServeContext* ctx) {
  if (!ctx->options->http2) {
    co_await h1::serve_connection(std::move(sock), *ctx, {});
    co_return;
  }
  std::string initial;
  ConnectionSet::Pending pending(ctx->connections);
  {
    net::Deadline deadline(sock.get_executor(), [&sock] { close_socket(sock); });
    deadline.arm_ms(ctx->options->idle_timeout_ms);
    // Read into `initial` itself: a buffer in this frame would stay for the
    // connection's whole life (the frame lives as long as the codec runs).
    constexpr size_t kChunk = 4096;
    while (initial.size() < h2::kClientPreface.size() &&
           h2::kClientPreface.starts_with(initial)) {
      const size_t have = initial.size();
      initial.resize(have + kChunk);
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(initial.data() + have, kChunk), kNoThrow);
      initial.resize(have + n);
      if (ec || n == 0) co_return;
    }
  }
  pending.release();  // the codec adds the connection to the set before it first waits
  // The codec runs on as a coroutine of its own, so this frame goes now.
  auto ex = sock.get_executor();
  if (initial.starts_with(h2::kClientPreface)) {
    asio::co_spawn(ex, h2::serve_connection(std::move(sock), *ctx, std::move(initial)), asio::detached);
  } else {
    asio::co_spawn(ex, h1::serve_connection(std::move(sock), *ctx, std::move(initial)), asio::detached);
  }
}

asio::awaitable<void> serve_tls(tcp::socket sock, const ServeContext* ctx) {
  std::shared_ptr<const net::TlsBundle> bundle = ctx->tls->current();
  auto stream = std::make_unique<TlsStream>(std::move(sock), bundle->default_context());
  ConnectionSet::Pending pending(ctx->connections);
  bool ok = false;
  {
    net::Deadline deadline(stream->get_executor(), [s = stream.get()] { close_socket(s->next_layer()); });
    deadline.arm_ms(ctx->options->header_timeout_ms);
    auto [hec] = co_await stream->async_handshake(asio::ssl::stream_base::server, kNoThrow);
    ok = !hec;
  }
  if (!ok) {
    if (ctx->observer) ctx->observer->on_tls_handshake_error();
    close_socket(stream->next_layer());
    co_return;
  }
  pending.release();
  const bool h2 = ctx->options->http2 && net::negotiated_alpn(stream->native_handle()) == "h2";
  if (h2) co_await h2::serve_connection(std::move(stream), *ctx, {}, std::move(bundle));
  else co_await h1::serve_connection(std::move(stream), *ctx, {}, std::move(bundle));
}

asio::awaitable<void> back_off(asio::ip::tcp::acceptor* acc) {
  asio::steady_timer t(acc->get_executor(), std::chrono::milliseconds(50));
  co_await t.async_wait(kNoThrow);
}

asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor* acc, const ServeContext* ctx) {
  const ServerOptions& opts = *ctx->options;
  auto paused = [&] { return opts.pause_accept && opts.pause_accept->load(std::memory_order_relaxed) && acc->is_open(); };
  for (;;) {
    // Shedding on memory: new connections wait in the kernel's backlog.
    while (paused()) co_await back_off(acc);
    auto [ec, sock] = co_await acc->async_accept(kNoThrow);
    // One accept was already pending when shedding began: that connection
    // waits here, unserved, like the ones in the backlog.
    while (!ec && paused()) co_await back_off(acc);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      // Out of descriptors or a transient error: counted, and a short back-off
      // instead of spinning on a listener that stays readable.
      if (ctx->observer) ctx->observer->on_accept_error(ec);
      co_await back_off(acc);
      continue;
    }
    if (opts.max_connections > 0 && ctx->connections && ctx->connections->size() >= opts.max_connections) {
      // At the cap an old idle keep-alive connection makes room; with none
      // idle, the new one is refused (closed before any byte is read).
      const bool made_room = ctx->connections->close_oldest_idle();
      if (ctx->observer) ctx->observer->on_connection_shed(made_room ? "idle_evicted" : "over_capacity");
      if (!made_room) {
        close_socket(sock);
        continue;
      }
    }
    net::tune_socket(sock);
    if (ctx->tls) asio::co_spawn(acc->get_executor(), serve_tls(std::move(sock), ctx), asio::detached);
    else asio::co_spawn(acc->get_executor(), serve_cleartext(std::move(sock), ctx), asio::detached);
  }
}

}  // namespace

Result<std::unique_ptr<HttpListener>> HttpListener::open(const std::vector<asio::io_context*>& ctxs,
                                                         const asio::ip::tcp::endpoint& ep) {
  auto l = std::make_unique<HttpListener>();
  asio::ip::tcp::endpoint bind_ep = ep;
  if (ep.port() != 0) {
    // The workers' listeners share the port through SO_REUSEPORT, which would
    // let a second instance join them unnoticed: make sure nobody is there.
    if (Status s = net::check_port_free(ep); !s) return s;
  }
  for (auto* ctx : ctxs) {
    auto acc = net::open_listener(*ctx, bind_ep, /*reuse_port=*/true);
    if (!acc) return acc.status();
    if (bind_ep.port() == 0) bind_ep.port(acc->local_endpoint().port());  // the rest share the picked port
    l->worker_of_.push_back(l->acceptors_.size());
    l->acceptors_.push_back(std::make_unique<asio::ip::tcp::acceptor>(std::move(*acc)));
  }
  l->contexts_.resize(ctxs.size());
  l->port_ = bind_ep.port();
  return l;
}

Result<std::unique_ptr<HttpListener>> HttpListener::adopt(const std::vector<asio::io_context*>& ctxs,
                                                          const std::vector<int>& fds) {
  if (fds.empty() || ctxs.empty()) return Status(Errc::kInvalid, "no listening socket to take over");
  auto l = std::make_unique<HttpListener>();
  for (size_t j = 0; j < fds.size(); ++j) {
    const auto bound = net::bound_endpoint(fds[j]);
    if (!bound) return Status(Errc::kIo, "inherited descriptor " + std::to_string(fds[j]) + " is not a TCP socket");
    const auto protocol = bound->protocol();
    auto acc = std::make_unique<asio::ip::tcp::acceptor>(*ctxs[j % ctxs.size()]);
    boost::system::error_code ec;
    acc->assign(protocol, fds[j], ec);
    if (ec) return Status(Errc::kIo, "inherited socket " + std::to_string(fds[j]) + ": " + ec.message());
    l->worker_of_.push_back(j % ctxs.size());
    l->acceptors_.push_back(std::move(acc));
  }
  const asio::ip::tcp::endpoint ep = l->acceptors_.front()->local_endpoint();
  for (size_t i = fds.size(); i < ctxs.size(); ++i) {
    auto acc = net::open_listener(*ctxs[i], ep, /*reuse_port=*/true);
    if (!acc) return acc.status();
    l->worker_of_.push_back(i);
    l->acceptors_.push_back(std::make_unique<asio::ip::tcp::acceptor>(std::move(*acc)));
  }
  l->contexts_.resize(ctxs.size());
  l->port_ = ep.port();
  return l;
}

asio::ip::tcp::endpoint HttpListener::local_endpoint() const {
  boost::system::error_code ec;
  return acceptors_.front()->local_endpoint(ec);
}

std::vector<int> HttpListener::native_handles() const {
  std::vector<int> fds;
  for (const auto& a : acceptors_)
    if (a->is_open()) fds.push_back(a->native_handle());
  return fds;
}

void HttpListener::start(size_t i, ServeContext ctx) {
  contexts_[i] = std::make_unique<ServeContext>(ctx);
  for (size_t j = 0; j < acceptors_.size(); ++j)
    if (worker_of_[j] == i)
      asio::co_spawn(acceptors_[j]->get_executor(), accept_loop(acceptors_[j].get(), contexts_[i].get()),
                     asio::detached);
}

void HttpListener::close(size_t i) {
  for (size_t j = 0; j < acceptors_.size(); ++j) {
    if (worker_of_[j] != i || !acceptors_[j]->is_open()) continue;
    boost::system::error_code ec;
    const int fd = acceptors_[j]->release(ec);  // out of the poller; a pending accept ends (operation_aborted)
    if (!ec && fd >= 0) ::close(fd);
  }
}

}  // namespace sluice::http
