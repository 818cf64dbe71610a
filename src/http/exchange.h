// The one request/response object every codec produces (DESIGN.md section 3).
//
// A codec (h1 today; h2 and h3 later) parses the request head, then hands an
// Exchange to the handler (the gateway pipeline or the mock model). Above this
// interface no code knows the protocol. Backpressure: write() completes only
// when the bytes were accepted by the transport (at most one write in flight
// per exchange), so a slow client suspends its producer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/any_io_executor.hpp>

#include "core/status.h"
#include "http/message.h"

namespace sluice::http {

namespace asio = boost::asio;

class Exchange {
 public:
  virtual ~Exchange() = default;

  const RequestHead& request() const { return head_; }
  // Monotonic time (ns) at which the request head was complete.
  int64_t start_ns() const { return start_ns_; }
  virtual std::string_view protocol() const = 0;  // "HTTP/1.1", "HTTP/2", ...

  // Reads the whole request body into `out` (replacing its contents). The
  // codec leaves spare capacity after the bytes for parsers that over-read
  // (simdjson). kBodyTooLarge past `limit`, kClosed/kTimeout/kInvalid on a
  // bad or vanished client.
  virtual asio::awaitable<Status> read_body(std::string& out, uint64_t limit) = 0;

  // Response head. content_length == nullopt streams the body (chunked for
  // HTTP/1.1). Hop-by-hop and framing headers in `headers` are ignored: the
  // codec owns framing.
  virtual asio::awaitable<Status> send_head(int status, std::span<const Header> headers,
                                            std::optional<uint64_t> content_length) = 0;
  // Body bytes; flushed to the transport before completing.
  virtual asio::awaitable<Status> write(std::string_view data) = 0;
  // End of the response body.
  virtual asio::awaitable<Status> finish() = 0;
  // The body's last bytes and its end together (HTTP/1.1: one write with the
  // last chunk). By default write() then finish().
  virtual asio::awaitable<Status> write_last(std::string_view data);

  // A whole response at once (local replies, small bodies).
  asio::awaitable<Status> respond(int status, std::span<const Header> headers, std::string_view body);
  // An OpenAI-style JSON error (error_body.h) with the type for `status`.
  asio::awaitable<Status> respond_error(int status, std::string_view message, std::string_view code);

  // Abruptly ends this exchange: resets the connection (HTTP/1.1) or the
  // stream (HTTP/2+). Used to pass an upstream failure through faithfully.
  virtual void reset() = 0;

  bool head_sent() const { return head_sent_; }
  int status_sent() const { return status_sent_; }
  uint64_t body_bytes_sent() const { return body_bytes_sent_; }

  // The client went away (disconnect, reset) while the handler runs: the
  // codec calls the hook once so the handler can cancel upstream work now
  // rather than at its next write.
  void set_abort_hook(std::function<void()> hook) { abort_hook_ = std::move(hook); }
  bool aborted() const { return aborted_; }

  virtual asio::any_io_executor executor() const = 0;

  // The client's address ("ip:port", "[v6]:port"), looked up once per
  // connection on first use; "" when unknown.
  virtual std::string_view peer_address() { return {}; }

  // How long one response write may wait for a client that is not reading
  // before the exchange fails with kTimeout. 0: the listener's default.
  void set_write_timeout_ms(int64_t ms) { write_timeout_ms_ = ms; }
  int64_t write_timeout_ms() const { return write_timeout_ms_; }

 protected:
  // Codecs reuse one Exchange object per connection or stream slot.
  void begin_exchange(int64_t start_ns) {
    start_ns_ = start_ns;
    head_sent_ = false;
    status_sent_ = 0;
    body_bytes_sent_ = 0;
    write_timeout_ms_ = 0;
    aborted_ = false;
    abort_hook_ = nullptr;
  }

  void notify_aborted() {
    if (aborted_) return;
    aborted_ = true;
    if (abort_hook_) {
      auto hook = std::move(abort_hook_);
      hook();
    }
  }

  RequestHead head_;
  int64_t start_ns_ = 0;
  bool head_sent_ = false;
  int status_sent_ = 0;
  uint64_t body_bytes_sent_ = 0;
  int64_t write_timeout_ms_ = 0;

 private:
  bool aborted_ = false;
  std::function<void()> abort_hook_;
};

// What a listener runs for each exchange. The Exchange outlives the returned
// awaitable.
using Handler = std::function<asio::awaitable<void>(Exchange&)>;

}  // namespace sluice::http
