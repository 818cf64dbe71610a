#include "http/exchange.h"

namespace sluice::http {

asio::awaitable<Status> Exchange::respond(int status, std::span<const Header> headers,
                                          std::string_view body) {
  Status s = co_await send_head(status, headers, body.size());
  if (!s) co_return s;
  if (!body.empty()) {
    s = co_await write(body);
    if (!s) co_return s;
  }
  co_return co_await finish();
}

}  // namespace sluice::http
