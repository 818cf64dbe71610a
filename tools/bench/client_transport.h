// Opening the byte stream under a ClientConnection, for every protocol: TCP
// connect to the resolved endpoints in order, TCP_NODELAY, and for TLS the
// server name (SNI), the name or address to verify and the handshake. ALPN is
// the caller's: it depends on the protocol.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bench/client_connection.h"
#include "http/transport.h"
#include "net/listener.h"

namespace sluice::bench {

// SNI and peer verification for a client SSL object, before its handshake.
void set_tls_peer(SSL* ssl, const ConnectParams& p);

// False if the connect or the handshake failed (or the socket was closed meanwhile).
template <class Stream>
asio::awaitable<bool> open_transport(Stream& s, const ConnectParams& p) {
  constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
  auto [ec, ep] = co_await asio::async_connect(http::socket_of(s), p.endpoints, kNoThrow);
  if (ec) co_return false;
  net::tune_socket(http::socket_of(s));
  if constexpr (http::kIsTls<Stream>) {
    set_tls_peer(s.native_handle(), p);
    auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::client, kNoThrow);
    if (hec) co_return false;
  }
  co_return true;
}

}  // namespace sluice::bench
