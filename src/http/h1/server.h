// HTTP/1.1 server side: turns a connection into a sequence of Exchanges.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "http/server_common.h"

namespace boost::asio::ssl {
template <typename Stream>
class stream;
}

namespace sluice::http::h1 {

// Serves one connection until it closes. `initial` holds bytes already read
// from it (protocol detection). Everything in `ctx` must outlive the
// returned awaitable; `keep` is held as long as the connection (the TLS
// certificates it was accepted with).
asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket, const ServeContext& ctx, std::string initial);
asio::awaitable<void> serve_connection(std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> stream,
                                       const ServeContext& ctx, std::string initial, std::shared_ptr<const void> keep);

}  // namespace sluice::http::h1
