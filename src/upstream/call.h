#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "core/status.h"
#include "http/message.h"

namespace sluice::upstream {

namespace asio = boost::asio;

// One request to an endpoint, protocol-neutral. Each protocol frames it
// itself: HTTP/1.1 writes a request line, host and content-length; HTTP/2
// sends pseudo-headers, lowercase names and DATA frames.
struct Request {
  std::string_view method;
  std::string path;  // the endpoint's path prefix + the client's target
  std::string_view authority;
  std::span<const http::Header> headers;  // end-to-end fields only
  std::string_view body;
  bool send_length = false;  // HTTP/1.1: content-length even when the body is empty (POST)
};

// One request/response exchange with an endpoint: an HTTP/1.1 connection of
// its own, or a stream on a shared HTTP/2 connection.
//
// Operations carry no timeouts: the caller arms the call's deadline, whose
// expiry cuts the exchange (closes the HTTP/1.1 connection, resets the
// stream) and so fails whatever is pending.
class Call {
 public:
  virtual ~Call() = default;

  // The exchange runs on a connection that was already open, so connect()
  // has nothing to do. A failure there before any response byte may be the
  // upstream having closed it while idle (Errc::kClosed): safe to retry.
  virtual bool reused() const = 0;
  virtual asio::awaitable<Status> connect() = 0;
  // connect() opened a new connection (other HTTP/2 requests may have waited on it).
  virtual bool opened_connection() const = 0;

  virtual asio::awaitable<Status> send(const Request& r) = 0;
  // Reads up to the final response head; head() then holds it (views valid
  // until the call ends).
  virtual asio::awaitable<Status> read_head(bool request_was_head) = 0;
  virtual const http::ResponseHead& head() const = 0;
  // Decoded body pieces; an empty view at the end of the body. A piece is
  // valid until the next call.
  virtual asio::awaitable<Result<std::string_view>> read_body() = 0;
  // Body bytes already received (no I/O needed to get the next piece).
  virtual bool body_buffered() const = 0;
  // The piece read last was the body's last: the next read_body() would
  // return the end without I/O (so the answer's end can go with that piece).
  virtual bool body_complete() const = 0;

  // Abandons the exchange now (the client left): pending operations fail.
  virtual void abort() = 0;
  // The response was read to its end and delivered: the connection may carry
  // other requests. Without it, ending the call discards the connection
  // (HTTP/1.1) or resets the stream (HTTP/2).
  virtual void complete() = 0;

  virtual void arm_deadline(int64_t at_ns) = 0;
  virtual void disarm_deadline() = 0;
  // The deadline fired since it was last armed.
  virtual bool deadline_expired() const = 0;
};

}  // namespace sluice::upstream
