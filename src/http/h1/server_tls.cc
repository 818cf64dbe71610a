#include "http/h1/server_impl.h"

namespace sluice::http::h1 {

asio::awaitable<void> serve_connection(std::unique_ptr<TlsStream> stream, const ServeContext& ctx, std::string initial,
                                       std::shared_ptr<const void> keep) {
  auto conn = std::make_shared<detail::Connection<TlsStream>>(std::move(*stream), ctx, std::move(initial),
                                                              std::move(keep));
  return conn->run(conn);
}

}  // namespace sluice::http::h1
