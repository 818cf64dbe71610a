// HTTP/2 server side: one connection, many concurrent Exchanges (streams).
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

namespace sluice::http::h2 {

// Serves one HTTP/2 connection until it closes. `initial` holds bytes already
// read (the start of the client preface). As for h1::serve_connection.
asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket, const ServeContext& ctx, std::string initial);
asio::awaitable<void> serve_connection(std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> stream,
                                       const ServeContext& ctx, std::string initial, std::shared_ptr<const void> keep);

}  // namespace sluice::http::h2
