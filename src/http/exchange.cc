#include "http/exchange.h"

#include <array>

#include "http/error_body.h"

namespace sluice::http {

asio::awaitable<Status> Exchange::write_last(std::string_view data) {
  if (!data.empty()) {
    Status s = co_await write(data);
    if (!s) co_return s;
  }
  co_return co_await finish();
}

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

asio::awaitable<Status> Exchange::respond_error(int status, std::string_view message, std::string_view code) {
  const std::string body = error_body(message, error_type_for_status(status), code);
  const std::array<Header, 1> headers{{{"content-type", "application/json"}}};
  co_return co_await respond(status, headers, body);
}

}  // namespace sluice::http
