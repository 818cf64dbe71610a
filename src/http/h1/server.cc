#include "http/h1/server_impl.h"

namespace sluice::http::h1 {

asio::awaitable<void> serve_connection(tcp::socket socket, const ServeContext& ctx, std::string initial) {
  auto conn = std::make_shared<detail::Connection<tcp::socket>>(std::move(socket), ctx, std::move(initial), nullptr);
  return conn->run(conn);
}

}  // namespace sluice::http::h1
