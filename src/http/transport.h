// The byte streams server codecs run over: a TCP socket, or TLS on one. The
// codec drivers are templates over the stream type; these helpers are the
// only places that differ.
#pragma once

#include <sys/socket.h>

#include <string>
#include <type_traits>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>

namespace sluice::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using TlsStream = asio::ssl::stream<tcp::socket>;

template <class S>
inline constexpr bool kIsTls = std::is_same_v<S, TlsStream>;

inline tcp::socket& socket_of(tcp::socket& s) { return s; }
inline tcp::socket& socket_of(TlsStream& s) { return s.next_layer(); }

// "203.0.113.7:51234" or "[2001:db8::1]:51234"; "" once the socket is closed.
inline std::string peer_text(tcp::socket& s) {
  boost::system::error_code ec;
  tcp::endpoint ep = s.remote_endpoint(ec);
  if (ec) return {};
  std::string host = ep.address().to_string();
  std::string out = ep.address().is_v6() ? "[" + host + "]" : host;
  return out + ":" + std::to_string(ep.port());
}

inline void close_socket(tcp::socket& s) {
  boost::system::error_code ec;
  s.close(ec);
}

// Closes with a TCP reset (SO_LINGER 0): the peer sees the response cut off.
inline void reset_socket(tcp::socket& s) {
  ::linger lg{1, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close_socket(s);
}

}  // namespace sluice::http
