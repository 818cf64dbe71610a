// The protocol seam: the runner and the measurements know requests, responses
// and outcomes; only a ClientConnection knows a wire format. HTTP/1.1 (plain
// and TLS) carries one exchange at a time; HTTP/2 (h2c or TLS + ALPN h2)
// returns more than 1 from max_concurrent_streams() and lets several
// exchange() calls run at once, each on its own stream. An HTTP/3 connection
// would do the same.
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

// Abandons one exchange in flight (its timeout has passed) without ending
// the others on the same connection. exchange() points it at itself while it
// runs; abandon() at any other time does nothing.
class ExchangeCancel {
 public:
  void abandon() {
    if (fn_) fn_(arg_);
  }
  void bind(void (*fn)(void*), void* arg) {
    fn_ = fn;
    arg_ = arg;
  }
  void unbind() { bind(nullptr, nullptr); }

 private:
  void (*fn_)(void*) = nullptr;
  void* arg_ = nullptr;
};

// Points an ExchangeCancel at a running exchange for as long as it lives.
class CancelScope {
 public:
  CancelScope(ExchangeCancel& c, void (*fn)(void*), void* arg) : c_(c) { c_.bind(fn, arg); }
  ~CancelScope() { c_.unbind(); }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  ExchangeCancel& c_;
};

class ClientConnection {
 public:
  virtual ~ClientConnection() = default;

  // Opens (or re-opens after close()) the connection: kOk or kConnect.
  virtual asio::awaitable<Outcome> connect() = 0;

  // Sends `req` and reads the whole response, reporting its head and each
  // piece of decoded body to `meter` as it arrives. `req` must stay valid
  // until the call completes. `cancel.abandon()` ends this exchange early
  // (kReset): HTTP/1.1 closes the connection, HTTP/2 resets the stream.
  // Calls beyond max_concurrent_streams() wait for a stream to end.
  virtual asio::awaitable<Outcome> exchange(const OutgoingRequest& req, ResponseMeter& meter,
                                            ExchangeCancel& cancel) = 0;

  // Fails every pending operation (exchange and connect then return an error)
  // and leaves the connection closed. Used by timeouts and the end of a run.
  virtual void close() = 0;

  // Open and able to carry the next request.
  virtual bool ready() const = 0;

  // For a connection that sat idle: false if the peer has closed it (or sent
  // something unasked) meanwhile. Costs a syscall (HTTP/1.1; HTTP/2 reads
  // all the time and knows); servers with short keep-alive timeouts
  // (uvicorn's 5 s) make it worth one before a request that follows a long
  // idle spell, so that it is not lost to a stale socket.
  virtual bool still_open() = 0;

  // How many exchange() calls may be in flight at once (HTTP/2: known once
  // connected, the smaller of ours and the peer's limit).
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

// HTTP/2: h2c with prior knowledge, or TLS where ALPN must select "h2"
// (connect() fails with kConnect otherwise). At most `max_streams` exchanges
// at once, fewer if the peer's SETTINGS_MAX_CONCURRENT_STREAMS says so.
std::unique_ptr<ClientConnection> make_h2_connection(const ConnectParams& p, uint32_t max_streams);

}  // namespace sluice::bench
