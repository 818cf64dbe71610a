// The protocol seam: the runner and the measurements know requests, responses
// and outcomes; only a ClientConnection knows a wire format. HTTP/1.1 (plain
// and TLS) is the one implementation today. An HTTP/2 (nghttp2) or HTTP/3
// connection implements the same interface, returns more than 1 from
// max_concurrent_streams(), and lets several exchange() calls run at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "bench/target.h"

namespace boost::asio::ssl {
class context;
}

namespace sluice::bench {

namespace asio = boost::asio;

class ResponseMeter;

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// One request, protocol-agnostic. The connection writes its own framing
// (content-length for h1, :authority and DATA frames for h2).
struct OutgoingRequest {
  std::string_view method = "POST";
  std::string_view path;
  std::string_view authority;
  std::span<const HeaderField> headers;  // besides host and content-length
  std::string_view body;
};

enum class Outcome : uint8_t {
  kOk,           // a complete response (any status) was read
  kConnect,      // TCP connect or TLS handshake failed
  kReset,        // the peer closed or reset before the response was complete
  kBadResponse,  // unparseable head, framing or event stream
};

class ClientConnection {
 public:
  virtual ~ClientConnection() = default;

  // Opens (or re-opens after close()) the connection: kOk or kConnect.
  virtual asio::awaitable<Outcome> connect() = 0;

  // Sends `req` and reads the whole response, reporting its head and each
  // piece of decoded body to `meter` as it arrives. `req` must stay valid
  // until the call completes.
  virtual asio::awaitable<Outcome> exchange(const OutgoingRequest& req, ResponseMeter& meter) = 0;

  // Fails every pending operation (exchange and connect then return an error)
  // and leaves the connection closed. Used by timeouts and the end of a run.
  virtual void close() = 0;

  // Open and able to carry the next request.
  virtual bool ready() const = 0;

  // For a connection that sat idle: false if the peer has closed it (or sent
  // something unasked) meanwhile. Costs a syscall; servers with short
  // keep-alive timeouts (uvicorn's 5 s) make it worth one before a request
  // that follows a long idle spell, so that it is not lost to a stale socket.
  virtual bool still_open() = 0;

  // How many exchange() calls may be in flight at once.
  virtual int max_concurrent_streams() const { return 1; }
};

struct ConnectParams {
  asio::any_io_executor executor;
  const Target* target = nullptr;
  std::span<const asio::ip::tcp::endpoint> endpoints;  // resolved once, tried in order
  asio::ssl::context* tls = nullptr;                   // set for https://
  bool verify_peer = true;
};

// HTTP/1.1 with keep-alive, plain or TLS per `p.tls`.
std::unique_ptr<ClientConnection> make_h1_connection(const ConnectParams& p);

}  // namespace sluice::bench
