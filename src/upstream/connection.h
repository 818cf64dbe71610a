// upstream/: connections to model servers, per-worker pools, endpoint health.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>

#include "core/flat_buffer.h"
#include "core/status.h"
#include "http/h1/chunked.h"
#include "http/h1/parser.h"
#include "http/message.h"
#include "net/deadline.h"
#include "upstream/transport.h"

namespace sluice::upstream {

// One HTTP/1.1 client connection, plain or TLS. Operations carry no timeouts:
// the caller arms the connection's deadline, whose expiry closes it and so
// fails whatever is pending. The deadline lives as long as the connection, so
// a pooled connection re-arms it per request without touching the timer queue
// (a later deadline only stores the new time).
class Connection {
 public:
  // `tls` null for plain TCP. `sni` is also the name verified against the
  // certificate when the context verifies peers.
  Connection(asio::any_io_executor ex, asio::ssl::context* tls, std::string sni);
  ~Connection();

  asio::awaitable<Status> connect(const tcp::endpoint& ep);
  asio::awaitable<Status> write(std::span<const asio::const_buffer> bufs);

  // Response reading. read_head() parses into head() (views stay valid until
  // the next request on this connection). Then read_body() returns decoded
  // payload pieces until it returns an empty view (end of body).
  asio::awaitable<Status> read_head(bool request_was_head);
  const http::ResponseHead& head() const { return head_; }
  asio::awaitable<Result<std::string_view>> read_body();
  // Bytes of body already received and waiting (no I/O needed to get them).
  bool body_buffered() const { return !rbuf_.empty(); }
  // The body has ended: the piece read_body() returned last was its last.
  bool body_complete() const { return body_ == Body::kDone; }

  // True when the last response ended cleanly and the connection may carry
  // another request.
  bool reusable() const { return reusable_ && open_; }
  bool is_open() const { return open_; }
  // For pooled connections: false if the peer closed it while idle.
  bool still_alive();
  void close();
  // Gives the read buffer back to the worker's pool when it holds no bytes.
  void release_buffer() { rbuf_.release_if_empty(); }
  uint64_t requests() const { return requests_; }

  void arm_deadline(int64_t at_ns) { deadline_.arm_at(at_ns); }
  void disarm_deadline() { deadline_.disarm(); }
  // The deadline fired (and closed the connection) since it was last armed.
  bool deadline_expired() const { return deadline_.expired(); }

 private:
  asio::awaitable<Result<size_t>> read_some();
  // After a chunked piece: the payload of the chunks already received after
  // it joins it (one piece, one write to the client), and the last chunk ends
  // the body now when it is there.
  std::string_view gather_chunks(std::string_view first);

  Transport io_;
  bool open_ = false;
  bool reusable_ = false;
  uint64_t requests_ = 0;

  FlatBuffer rbuf_{4096};
  bool more_likely_ = false;  // the last read filled the buffer: read again before waiting
  int inline_reads_ = 0;      // reads in a row without a wait (net::kMaxInlineReads)
  std::string head_storage_;
  http::ResponseHead head_;
  http::h1::ChunkedDecoder chunked_;
  uint64_t body_left_ = 0;   // for content-length bodies
  enum class Body { kNone, kLength, kChunked, kUntilClose, kDone } body_ = Body::kNone;
  net::Deadline deadline_;
};

// A TLS client context for one upstream: TLS 1.2+, peer verification against
// the system store or `ca_file`; ALPN offers "h2" alone when `h2`.
Result<std::shared_ptr<asio::ssl::context>> make_client_tls_context(bool verify, const std::string& ca_file,
                                                                    bool h2 = false);

}  // namespace sluice::upstream
