#pragma once
// The HTTP/1.1 connection, a template over the byte stream (transport.h);
// instantiated for TCP in server.cc and for TLS in server_tls.cc.

#include "http/h1/server.h"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "core/clock.h"
#include "core/flat_buffer.h"
#include "http/error_body.h"
#include "http/h1/chunked.h"
#include "http/h1/serialize.h"
#include "http/transport.h"
#include "net/deadline.h"
#include "net/direct_io.h"

namespace sluice::http::h1 {

namespace detail {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view k100Continue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr size_t kReadChunk = 4096;

// True if `bytes` (with up to 3 bytes of context before `from`) contains the
// end of a header block, so that a parse attempt can succeed or fail.
inline bool may_hold_head_end(std::string_view bytes, size_t from) {
  size_t start = from >= 3 ? from - 3 : 0;
  std::string_view s = bytes.substr(start);
  return s.find("\n\r\n") != std::string_view::npos || s.find("\n\n") != std::string_view::npos;
}

template <class S>
class Connection;

template <class S>
class H1Exchange final : public Exchange {
 public:
  explicit H1Exchange(Connection<S>& c) : c_(c) {}

  std::string_view protocol() const override {
    return head_.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
  }
  asio::awaitable<Status> read_body(std::string& out, uint64_t limit) override;
  asio::awaitable<Status> send_head(int status, std::span<const Header> headers,
                                    std::optional<uint64_t> content_length) override;
  asio::awaitable<Status> write(std::string_view data) override;
  asio::awaitable<Status> finish() override;
  asio::awaitable<Status> write_last(std::string_view data) override;
  void reset() override;
  asio::any_io_executor executor() const override;
  std::string_view peer_address() override { return c_.peer(); }

  void start(int64_t now_ns) {
    begin_exchange(now_ns);
    body_state_ = (head_.chunked || head_.content_length.value_or(0) > 0) ? BodyState::kUnread
                                                                            : BodyState::kDone;
    keep_alive_ = head_.keep_alive;
    head_only_ = head_.method == "HEAD";
    chunked_out_ = false;
    close_delimited_ = false;
    no_body_ = false;
    head_pending_ = false;
    finished_ = false;
    continue_sent_ = false;
    out_.clear();
  }

  RequestHead& head() { return head_; }
  bool finished() const { return finished_; }
  bool keep_alive() const { return keep_alive_; }
  bool body_done() const { return body_state_ == BodyState::kDone; }
  void gone() { notify_aborted(); }
  size_t buffered() const { return out_.capacity() + chunk_hdr_.capacity(); }

 private:
  enum class BodyState { kUnread, kDone, kFailed };
  asio::awaitable<Status> flush(std::string_view data, std::string_view trailer_bytes);

  Connection<S>& c_;
  BodyState body_state_ = BodyState::kDone;
  bool keep_alive_ = true;
  bool head_only_ = false;
  bool chunked_out_ = false;
  bool close_delimited_ = false;
  bool no_body_ = false;
  bool head_pending_ = false;
  bool finished_ = false;
  bool continue_sent_ = false;
  std::string out_;        // pending response head
  std::string chunk_hdr_;  // scratch for the chunk-size line
};

template <class S>
class Connection final : public ConnectionSet::Member, public std::enable_shared_from_this<Connection<S>> {
 public:
  Connection(S s, const ServeContext& ctx, std::string initial, std::shared_ptr<const void> keep)
      : sock(std::move(s)),
        handler(*ctx.handler),
        opts(*ctx.options),
        observer(ctx.observer),
        set_(ctx.connections),
        keep_(std::move(keep)),
        deadline(sock.get_executor(), [this] { on_deadline(); }),
        ex(*this) {
    if (!initial.empty()) {
      char* p = rbuf.prepare(initial.size());
      std::memcpy(p, initial.data(), initial.size());
      rbuf.commit(initial.size());
    }
  }

  // The connection's life. `self` keeps it alive from the moment the
  // coroutine is created (serve_connection returns it without a frame of its own).
  asio::awaitable<void> run(std::shared_ptr<Connection> self);

  std::string_view peer() {
    if (peer_.empty()) peer_ = peer_text(socket_of(sock));
    return peer_;
  }

  // A connection that has not sent its first request yet was accepted a
  // moment ago, its request likely on the way (a new connection during a
  // drain or an upgrade's hand-over): it gets a short grace to send it, and
  // is served, instead of being closed unanswered.
  void drain() override {
    draining = true;
    if (!waiting) return;
    if (fresh) deadline.arm_ms(std::min<int64_t>(opts.idle_timeout_ms, kDrainFirstRequestGraceMs));
    else close_now();
  }
  bool idle() const override { return waiting && !fresh; }
  size_t buffered_bytes() const override { return rbuf.capacity() + head_storage.capacity() + ex.buffered(); }

  // One read of request body bytes under the body limits (BodyClock): a limit
  // that runs out cancels the read, not the connection, so a 408 can follow.
  asio::awaitable<Status> read_body_some(BodyClock& clock, uint64_t received, asio::mutable_buffer buf, size_t& n) {
    for (;;) {
      timed_out = false;
      body_wait = true;
      deadline.arm_ms(clock.next_wait_ms(received, SteadyClock::mono_ns()));
      auto [ec, got] = co_await sock.async_read_some(buf, kNoThrow);
      deadline.disarm();
      body_wait = false;
      const int64_t now = SteadyClock::mono_ns();
      if (!ec && got > 0) {
        clock.progress(now);
        n = got;
        co_return Status::ok();
      }
      if (timed_out && ec == asio::error::operation_aborted) {
        if (const char* limit = clock.broken(received, now))
          co_return Status(Errc::kTimeout, std::string(BodyClock::describe(limit)));
        continue;  // woke a moment early: no limit is broken yet
      }
      broken = broken || ec != asio::error::eof;
      co_return Status(Errc::kClosed, "request body incomplete");
    }
  }

  // Reads more bytes into rbuf. Returns false on EOF, error or timeout.
  asio::awaitable<bool> read_more() {
    if constexpr (!kIsTls<S>) {
      // Plain TCP: wait for bytes holding no buffer (an idle keep-alive
      // connection holds none), then take what is there without blocking.
      // Bytes are likely there already on a new connection and after a read
      // that filled the buffer: then the read comes first.
      for (;;) {
        if (more_likely) {
          boost::system::error_code ec;
          if (net::try_recv_into(socket_of(sock).native_handle(), rbuf, kReadChunk, more_likely, ec) > 0)
            co_return true;
          if (ec) co_return false;
        }
        rbuf.release_if_empty();
        auto [ec] = co_await socket_of(sock).async_wait(tcp::socket::wait_read, kNoThrow);
        if (ec) co_return false;
        more_likely = true;
      }
    }
    char* p = rbuf.prepare(kReadChunk);
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(p, rbuf.writable()), kNoThrow);
    if (ec || n == 0) co_return false;
    rbuf.commit(n);
    co_return true;
  }

  asio::awaitable<Status> write_all(asio::const_buffer buf) {
    co_return co_await write_all(std::span<const asio::const_buffer>(&buf, 1));
  }
  // Plain TCP: sent at once when the socket takes it all (no operation, no
  // scheduler turn, no stall deadline armed); otherwise the rest waits for
  // writability under the stall deadline.
  asio::awaitable<Status> write_all(std::span<const asio::const_buffer> bufs) {
    if (broken) co_return Status(Errc::kClosed, "connection closed");
    boost::system::error_code ec;
    if constexpr (!kIsTls<S>) {
      size_t sent = 0;
      if (!net::try_send(socket_of(sock).native_handle(), bufs, sent, ec) && !ec) {
        deadline.arm_ms(ex.write_timeout_ms() > 0 ? ex.write_timeout_ms() : opts.write_stall_ms);
        ec = co_await net::finish_send(socket_of(sock), bufs, sent);
        deadline.disarm();
      }
    } else {
      deadline.arm_ms(ex.write_timeout_ms() > 0 ? ex.write_timeout_ms() : opts.write_stall_ms);
      std::tie(ec, std::ignore) = co_await asio::async_write(sock, bufs, kNoThrow);
      deadline.disarm();
    }
    if (ec) {
      broken = true;
      if (timed_out) co_return Status(Errc::kTimeout, "client stopped reading");
      co_return Status(Errc::kClosed, ec.message());
    }
    co_return Status::ok();
  }

  // Watches the idle read side while the handler runs: notices a client that
  // goes away, and takes in pipelined bytes without blocking the handler.
  // The read buffer goes back to the pool when empty: none is held while the handler runs.
  void start_watch() {
    rbuf.release_if_empty();
    if (watching || broken || peer_gone) return;
    watching = true;
    uint64_t gen = ++watch_gen;
    socket_of(sock).async_wait(tcp::socket::wait_read,
                               [self = this->shared_from_this(), gen](const boost::system::error_code& ec) {
                                 self->on_readable(ec, gen);
                               });
  }
  void stop_watch() {
    // A pending wait becomes stale; it completes harmlessly on the next readable event.
    watching = false;
    ++watch_gen;
  }

  void close_now() {
    broken = true;
    close_socket(socket_of(sock));
  }

  void reset_now() {
    broken = true;
    reset_socket(socket_of(sock));
  }

  S sock;
  const Handler& handler;
  const ServerOptions& opts;
  ServerObserver* observer;
  ConnectionSet* set_;
  std::shared_ptr<const void> keep_;
  std::string peer_;  // peer(), cached
  net::Deadline deadline;
  FlatBuffer rbuf{kReadChunk};
  std::string head_storage;
  H1Exchange<S> ex;
  static constexpr int64_t kDrainFirstRequestGraceMs = 1000;
  bool waiting = true;  // between requests, nothing buffered (keep-alive idle)
  bool fresh = true;    // no request head read yet
  bool draining = false;
  bool broken = false;
  bool timed_out = false;
  bool body_wait = false;  // the deadline guards a request body read (see BodyClock)
  bool peer_gone = false;
  bool watching = false;
  bool more_likely = true;  // read_more(): bytes are likely waiting (plain TCP)
  uint64_t watch_gen = 0;

 private:
  void on_deadline() {
    timed_out = true;
    if (body_wait) {  // a body limit: cancel the read so a 408 can still be sent
      boost::system::error_code ec;
      socket_of(sock).cancel(ec);
      return;
    }
    close_now();
  }
  void on_readable(const boost::system::error_code& ec, uint64_t gen);
  asio::awaitable<void> reject(int status, std::string_view reason);
  asio::awaitable<void> lingering_close();
  asio::awaitable<void> close_gracefully();
};

template <class S>
void Connection<S>::on_readable(const boost::system::error_code& ec, uint64_t gen) {
  if (gen != watch_gen || !watching) return;
  watching = false;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    peer_gone = true;
    ex.gone();
    return;
  }
  if constexpr (kIsTls<S>) {
    // TLS records cannot be taken off the socket without the TLS engine: only
    // look. EOF or an error means the client left; data (a pipelined request
    // or an alert) ends the watch until the next read.
    char probe;
    ssize_t n = ::recv(socket_of(sock).native_handle(), &probe, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) {
      if (n < 0) start_watch();
      return;
    }
    peer_gone = true;
    ex.gone();
    return;
  }
  for (;;) {
    if (rbuf.size() >= opts.max_pipelined_bytes) return;  // enough queued: stop reading
    char* p = rbuf.prepare(kReadChunk);
    ssize_t n = ::recv(socket_of(sock).native_handle(), p, rbuf.writable(), MSG_DONTWAIT);
    if (n > 0) {
      rbuf.commit(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    peer_gone = true;  // EOF or error
    ex.gone();
    return;
  }
  start_watch();
}

template <class S>
asio::awaitable<void> Connection<S>::reject(int status, std::string_view reason) {
  if (observer) observer->on_protocol_error(status, reason);
  std::string body = error_body(reason, error_type_for_status(status),
                                status == 431 ? "request_header_fields_too_large" : "bad_request");
  std::string out;
  append_status_line(out, status);
  append_header(out, "content-type", "application/json");
  append_header(out, "content-length", std::to_string(body.size()));
  append_header(out, "connection", "close");
  out += kCrlf;
  out += body;
  co_await write_all(asio::buffer(out));
  co_await lingering_close();
}

// Half-close and read what the client still sends for a moment, so the error
// response is not destroyed by a TCP reset (RFC 9112 9.6).
template <class S>
asio::awaitable<void> Connection<S>::lingering_close() {
  if (broken) co_return;
  if constexpr (kIsTls<S>) {
    co_await close_gracefully();
    co_return;
  }
  boost::system::error_code ec;
  socket_of(sock).shutdown(tcp::socket::shutdown_send, ec);
  deadline.arm_ms(1000);
  char scratch[4096];
  size_t total = 0;
  while (total < (1u << 20)) {
    auto [rec, n] = co_await sock.async_read_some(asio::buffer(scratch), kNoThrow);
    if (rec || n == 0) break;
    total += n;
  }
  deadline.disarm();
}

template <class S>
asio::awaitable<void> Connection<S>::run(std::shared_ptr<Connection> self) {
  if (observer) observer->on_connection_open("HTTP/1.1");
  if (set_) set_->add(this);

  while (!broken) {
    if (draining && rbuf.empty() && !fresh) break;
    // 1. The request head.
    waiting = rbuf.empty();
    deadline.arm_ms(!waiting ? opts.header_timeout_ms
                    : draining ? std::min<int64_t>(opts.idle_timeout_ms, kDrainFirstRequestGraceMs)
                               : opts.idle_timeout_ms);
    ParseResult pr;
    size_t scanned = 0;
    bool got_head = false;
    for (;;) {
      if (!rbuf.empty() && (may_hold_head_end(rbuf.view(), scanned) ||
                            rbuf.size() > opts.limits.max_header_bytes)) {
        ex.head().headers.clear();
        pr = parse_request_head(rbuf.view(), ex.head(), opts.limits);
        if (pr.state != ParseState::kIncomplete) {
          got_head = true;
          break;
        }
      }
      scanned = rbuf.size();
      // Result to a local first: GCC 12 miscompiles co_await inside a condition.
      const bool more = co_await read_more();
      if (!more) break;
      if (waiting) {
        waiting = false;
        deadline.arm_ms(opts.header_timeout_ms);
      }
    }
    waiting = false;
    fresh = false;
    if (!got_head) {
      // EOF or timeout. A partial head that timed out is a slow client.
      if (timed_out && !rbuf.empty() && observer) observer->on_protocol_error(408, "request head timeout");
      break;
    }
    deadline.disarm();
    if (pr.state == ParseState::kError) {
      co_await reject(pr.error_status, pr.error);
      break;
    }

    // 2. Move the head out of the read buffer so later reads cannot invalidate it.
    head_storage.assign(rbuf.data(), pr.consumed);
    rebase(ex.head(), rbuf.data(), head_storage.data());
    rbuf.consume(pr.consumed);
    if (draining) ex.head().keep_alive = false;

    // 3. The exchange.
    ex.start(SteadyClock::mono_ns());
    if (ex.body_done()) start_watch();
    try {
      co_await handler(ex);
    } catch (const std::exception&) {
      // Handlers report errors as values; an escaped exception is a bug. The
      // connection still answers below and stays consistent.
    }
    stop_watch();

    if (!ex.finished()) {
      if (!ex.head_sent() && !broken) {
        // The handler ended without answering: a bug, but the client still gets a reply.
        co_await ex.respond_error(500, "internal error", "internal_error");
      } else {
        break;  // cannot complete a response already under way
      }
    }
    if (broken || !ex.keep_alive() || !ex.body_done() || peer_gone) break;
    more_likely = false;  // the client reads the response before it sends more
  }

  deadline.disarm();
  stop_watch();
  if (set_) set_->remove(this);
  if (observer) observer->on_connection_close();
  if (!broken) co_await close_gracefully();
}

// TLS: close_notify (bounded: a peer that never answers is cut off); then FIN.
template <class S>
asio::awaitable<void> Connection<S>::close_gracefully() {
  if constexpr (kIsTls<S>) {
    deadline.arm_ms(1000);
    (void)co_await sock.async_shutdown(kNoThrow);
    deadline.disarm();
  }
  boost::system::error_code ec;
  socket_of(sock).shutdown(tcp::socket::shutdown_send, ec);
  socket_of(sock).close(ec);
}

// ---- H1Exchange ----

template <class S>
asio::any_io_executor H1Exchange<S>::executor() const { return c_.sock.get_executor(); }

template <class S>
asio::awaitable<Status> H1Exchange<S>::read_body(std::string& out, uint64_t limit) {
  out.clear();
  if (body_state_ == BodyState::kDone) co_return Status::ok();
  if (body_state_ == BodyState::kFailed) co_return Status(Errc::kInvalid, "request body already failed");
  auto fail = [&](Status s) {
    body_state_ = BodyState::kFailed;
    keep_alive_ = false;
    return s;
  };
  if (head_.content_length && *head_.content_length > limit) {
    co_return fail(Status(Errc::kBodyTooLarge, "request body is larger than " + std::to_string(limit) + " bytes"));
  }
  if (head_.expect_continue && !continue_sent_) {
    continue_sent_ = true;
    Status s = co_await c_.write_all(asio::buffer(k100Continue));
    if (!s) co_return fail(s);
  }
  FlatBuffer& rbuf = c_.rbuf;
  BodyClock clock(c_.opts, start_ns_);
  if (head_.content_length) {
    const size_t len = *head_.content_length;
    out.reserve(len + 64);  // spare room for parsers that over-read
    size_t take = std::min(len, rbuf.size());
    out.append(rbuf.data(), take);
    rbuf.consume(take);
    if (out.size() < len) {
      size_t have = out.size();
      out.resize(len);
      while (have < len) {
        size_t got = 0;
        Status st = co_await c_.read_body_some(clock, have, asio::buffer(out.data() + have, len - have), got);
        if (!st) {
          out.resize(have);
          co_return fail(st);
        }
        have += got;
      }
    }
  } else {  // chunked
    ChunkedDecoder dec;
    for (;;) {
      auto st = dec.decode(rbuf.view());
      if (st.error) co_return fail(Status(Errc::kInvalid, "bad chunked request body: " + std::string(st.error_msg)));
      if (!st.data.empty()) {
        if (out.size() + st.data.size() > limit)
          co_return fail(Status(Errc::kBodyTooLarge, "request body is larger than " + std::to_string(limit) + " bytes"));
        out.append(st.data);
      }
      rbuf.consume(st.consumed);
      if (st.done) break;
      if (st.consumed == 0 && st.data.empty()) {
        char* p = rbuf.prepare(kReadChunk);
        size_t got = 0;
        Status rs = co_await c_.read_body_some(clock, out.size(), asio::buffer(p, rbuf.writable()), got);
        if (!rs) co_return fail(rs);
        rbuf.commit(got);
      }
    }
    out.reserve(out.size() + 64);
  }
  body_state_ = BodyState::kDone;
  c_.start_watch();
  co_return Status::ok();
}

template <class S>
asio::awaitable<Status> H1Exchange<S>::send_head(int status, std::span<const Header> headers,
                                              std::optional<uint64_t> content_length) {
  if (head_sent_) co_return Status(Errc::kInternal, "response head sent twice");
  head_sent_ = true;
  status_sent_ = status;
  if (body_state_ != BodyState::kDone) keep_alive_ = false;  // unread body: cannot reuse the connection
  if (c_.draining) keep_alive_ = false;
  out_.clear();
  append_status_line(out_, status);
  for (const auto& h : headers) {
    if (is_hop_by_hop(h.name) || iequals(h.name, "content-length") || iequals(h.name, "transfer-encoding"))
      continue;
    append_header(out_, h.name, h.value);
  }
  no_body_ = head_only_ || status == 204 || status == 304 || status < 200;
  if (status == 204 || status == 304 || status < 200) {
    // no framing headers
  } else if (content_length) {
    out_ += "content-length: ";
    out_ += std::to_string(*content_length);
    out_ += kCrlf;
  } else if (head_.version_minor >= 1) {
    chunked_out_ = !head_only_;
    out_ += "transfer-encoding: chunked\r\n";
  } else {
    close_delimited_ = true;
    keep_alive_ = false;
  }
  if (!keep_alive_) out_ += "connection: close\r\n";
  else if (head_.version_minor == 0) out_ += "connection: keep-alive\r\n";
  out_ += kCrlf;
  head_pending_ = true;
  co_return Status::ok();
}

template <class S>
asio::awaitable<Status> H1Exchange<S>::flush(std::string_view data, std::string_view trailer_bytes) {
  std::array<asio::const_buffer, 5> bufs;
  size_t n = 0;
  if (head_pending_) bufs[n++] = asio::buffer(out_);
  if (!data.empty()) {
    if (chunked_out_) {
      chunk_hdr_.clear();
      append_chunk_size(chunk_hdr_, data.size());
      bufs[n++] = asio::buffer(chunk_hdr_);
      bufs[n++] = asio::buffer(data.data(), data.size());
      bufs[n++] = asio::buffer(kCrlf.data(), kCrlf.size());
    } else {
      bufs[n++] = asio::buffer(data.data(), data.size());
    }
  }
  if (!trailer_bytes.empty()) bufs[n++] = asio::buffer(trailer_bytes.data(), trailer_bytes.size());  // the last chunk
  if (n == 0) co_return Status::ok();
  head_pending_ = false;
  Status s = co_await c_.write_all(std::span<const asio::const_buffer>(bufs.data(), n));
  if (s) body_bytes_sent_ += data.size();
  co_return s;
}

template <class S>
asio::awaitable<Status> H1Exchange<S>::write(std::string_view data) {
  if (!head_sent_) co_return Status(Errc::kInternal, "write before send_head");
  if (finished_) co_return Status(Errc::kInternal, "write after finish");
  if (no_body_) data = {};
  co_return co_await flush(data, {});
}

template <class S>
asio::awaitable<Status> H1Exchange<S>::finish() {
  if (finished_ && head_sent_) co_return Status::ok();  // finishing twice is harmless
  co_return co_await write_last({});
}

template <class S>
asio::awaitable<Status> H1Exchange<S>::write_last(std::string_view data) {
  if (!head_sent_) co_return Status(Errc::kInternal, "finish before send_head");
  if (finished_) co_return Status(Errc::kInternal, "write after finish");
  if (no_body_) data = {};
  Status s = co_await flush(data, chunked_out_ ? kLastChunk : std::string_view{});
  finished_ = s.is_ok();
  if (close_delimited_) keep_alive_ = false;
  co_return s;
}

template <class S>
void H1Exchange<S>::reset() {
  keep_alive_ = false;
  c_.reset_now();
}

}  // namespace detail
}  // namespace sluice::http::h1
