#include "upstream/transport.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>

#include "net/listener.h"

namespace sluice::upstream {
namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
}

Transport::Transport(asio::any_io_executor ex, asio::ssl::context* tls, std::string sni)
    : plain_(ex), sni_(std::move(sni)) {
  if (tls) tls_ = std::make_unique<asio::ssl::stream<tcp::socket>>(ex, *tls);
}

asio::awaitable<Status> Transport::connect(const tcp::endpoint& ep) {
  auto [ec] = co_await lowest().async_connect(ep, kNoThrow);
  // Messages name no address: they may reach clients; the gateway logs the endpoint.
  if (ec) co_return Status(Errc::kUnavailable, "connect failed: " + ec.message());
  net::tune_socket(lowest());
  if (tls_) {
    SSL* ssl = tls_->native_handle();
    if (!sni_.empty()) {
      SSL_set_tlsext_host_name(ssl, sni_.c_str());
      SSL_set1_host(ssl, sni_.c_str());  // verified when the context verifies peers
    }
    auto [hec] = co_await tls_->async_handshake(asio::ssl::stream_base::client, kNoThrow);
    if (hec) {
      close();
      co_return Status(Errc::kUnavailable, "TLS handshake failed: " + hec.message());
    }
  }
  co_return Status::ok();
}

asio::awaitable<Transport::IoResult> Transport::read_some(asio::mutable_buffer buf) {
  if (tls_) return tls_->async_read_some(buf, kNoThrow);
  return plain_.async_read_some(buf, kNoThrow);
}

asio::awaitable<Transport::IoResult> Transport::write(std::span<const asio::const_buffer> bufs) {
  if (tls_) return asio::async_write(*tls_, bufs, kNoThrow);
  return asio::async_write(plain_, bufs, kNoThrow);
}

void Transport::close() {
  boost::system::error_code ec;
  lowest().close(ec);
}

std::string_view Transport::alpn() const {
  if (!tls_) return {};
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(const_cast<asio::ssl::stream<tcp::socket>&>(*tls_).native_handle(), &p, &n);
  return {reinterpret_cast<const char*>(p), n};
}

bool is_eof(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace sluice::upstream
