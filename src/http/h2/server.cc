#include "http/h2/server_impl.h"

namespace sluice::http::h2 {

asio::awaitable<void> serve_connection(tcp::socket socket, const ServeContext& ctx, std::string initial) {
  auto conn = std::make_shared<detail::Connection<tcp::socket>>(std::move(socket), ctx, std::move(initial), nullptr);
  co_await conn->run();
}

}  // namespace sluice::http::h2
