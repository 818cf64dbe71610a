#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "core/status.h"

namespace sluice::upstream {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// The byte stream to one endpoint: TCP, or TLS over it. What the HTTP/1.1
// connection and the HTTP/2 connection share.
class Transport {
 public:
  // `tls` null for plain TCP. `sni` is also the name verified against the
  // certificate when the context verifies peers.
  Transport(asio::any_io_executor ex, asio::ssl::context* tls, std::string sni);

  // TCP connect, then the TLS handshake.
  asio::awaitable<Status> connect(const tcp::endpoint& ep);
  // Not coroutines themselves: each returns the socket operation to await
  // (no extra frame per read or write). `bufs` must outlive the await.
  using IoResult = std::tuple<boost::system::error_code, size_t>;
  asio::awaitable<IoResult> read_some(asio::mutable_buffer buf);
  asio::awaitable<IoResult> write(std::span<const asio::const_buffer> bufs);
  // Closes the socket (no TLS close_notify: the peer treats a closed socket
  // the same way, and a shutdown handshake with a stalled peer could hang).
  void close();

  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : plain_; }
  bool tls() const { return tls_ != nullptr; }
  // The protocol the server chose by ALPN ("" without TLS or ALPN).
  std::string_view alpn() const;
  const std::string& sni() const { return sni_; }

 private:
  tcp::socket plain_;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> tls_;
  std::string sni_;
};

// An end of stream, also a TLS peer that closed without close_notify.
bool is_eof(const boost::system::error_code& ec);

}  // namespace sluice::upstream
