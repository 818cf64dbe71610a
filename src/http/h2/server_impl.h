#pragma once
// The HTTP/2 connection driver, a template over the byte stream
// (transport.h); instantiated for TCP in server.cc and TLS in server_tls.cc.
//
// Two coroutines per connection: the reader feeds the codec, the writer
// drains it to the socket. Each stream runs the handler in its own coroutine
// on an H2Exchange. Backpressure: a stream's writes queue at most
// Options::stream_buffer_bytes before its producer waits; the codec frames a
// stream's bytes only while the client's window for it is open, so a client
// that stops reading one stream stalls that stream's producer (and its
// upstream), never its neighbours. The writer batches frames of all streams
// into one socket write.

#include <cstring>
#include <memory>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "core/clock.h"
#include "http/h2/codec.h"
#include "http/h2/server.h"
#include "http/transport.h"
#include "net/deadline.h"
#include "net/waker.h"

namespace sluice::http::h2::detail {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kWriteBatch = 64 * 1024;
constexpr int64_t kFinalGoawayDelayMs = 1000;  // between the shutdown notice and the final GOAWAY

inline double now_s() { return static_cast<double>(SteadyClock::mono_ns()) / 1e9; }

using net::Waker;

template <class S>
class Connection;

template <class S>
class H2Exchange final : public Exchange, public std::enable_shared_from_this<H2Exchange<S>> {
 public:
  explicit H2Exchange(Connection<S>& c) : c_(c), waker_(c.executor()) { st.user = this; }

  std::string_view protocol() const override { return "HTTP/2"; }
  asio::any_io_executor executor() const override { return c_.executor(); }
  std::string_view peer_address() override { return c_.peer(); }

  void start(int64_t now_ns) {
    head_ = std::move(st.head);
    begin_exchange(now_ns);
  }

  asio::awaitable<Status> read_body(std::string& out, uint64_t limit) override {
    out.clear();
    if (head_.content_length && *head_.content_length > limit)
      co_return Status(Errc::kBodyTooLarge, "request body is larger than " + std::to_string(limit) + " bytes");
    BodyClock clock(c_.opts, start_ns_);
    for (;;) {
      if (!st.body.empty()) {
        const size_t n = st.body.size();
        if (out.size() + n > limit)
          co_return Status(Errc::kBodyTooLarge, "request body is larger than " + std::to_string(limit) + " bytes");
        out.append(st.body);
        st.body.clear();
        c_.codec.consume(st, n);  // opens the window for more
        c_.schedule_write();
      }
      if (st.body_done) break;
      if (st.closed) co_return Status(Errc::kClosed, "stream reset by the client");
      const bool woke = co_await waker_.wait(clock.next_wait_ms(out.size(), SteadyClock::mono_ns()));
      const int64_t now = SteadyClock::mono_ns();
      if (!st.body.empty()) clock.progress(now);
      if (!woke && st.body.empty() && !st.body_done && !st.closed) {
        if (const char* limit = clock.broken(out.size(), now))
          co_return Status(Errc::kTimeout, std::string(BodyClock::describe(limit)));
      }
    }
    out.reserve(out.size() + 64);  // spare room for parsers that over-read
    co_return Status::ok();
  }

  asio::awaitable<Status> send_head(int status, std::span<const Header> headers,
                                    std::optional<uint64_t> content_length) override {
    if (head_sent_) co_return Status(Errc::kInternal, "response head sent twice");
    head_sent_ = true;
    status_sent_ = status;
    no_body_ = head_.method == "HEAD" || status == 204 || status == 304 || status < 200;
    Status s = c_.codec.submit_head(st, status, headers, content_length, !no_body_);
    c_.schedule_write();
    co_return s;
  }

  asio::awaitable<Status> write(std::string_view data) override {
    if (!head_sent_) co_return Status(Errc::kInternal, "write before send_head");
    if (finished_) co_return Status(Errc::kInternal, "write after finish");
    if (st.closed) co_return Status(Errc::kClosed, "stream closed");
    if (no_body_ || data.empty()) co_return Status::ok();
    st.out.append(data);
    body_bytes_sent_ += data.size();
    c_.codec.data_ready(st);
    c_.schedule_write();
    const int64_t limit_ms = write_timeout_ms() > 0 ? write_timeout_ms() : c_.opts.write_stall_ms;
    while (st.queued() > c_.opts.h2.stream_buffer_bytes && !st.closed) {
      const bool woke = co_await waker_.wait(limit_ms);
      if (!woke && st.queued() > c_.opts.h2.stream_buffer_bytes && !st.closed) {
        c_.codec.reset(st, kCancel);
        c_.schedule_write();
        co_return Status(Errc::kTimeout, "client stopped reading");
      }
    }
    if (st.closed && st.queued() > 0) co_return Status(Errc::kClosed, "stream closed");
    co_return Status::ok();
  }

  asio::awaitable<Status> finish() override {
    if (!head_sent_) co_return Status(Errc::kInternal, "finish before send_head");
    if (finished_) co_return Status::ok();
    if (st.closed) co_return Status(Errc::kClosed, "stream closed");
    finished_ = true;
    if (!no_body_) {
      st.out_end = true;
      c_.codec.data_ready(st);
      c_.schedule_write();
    }
    co_return Status::ok();
  }

  void reset() override {
    c_.codec.reset(st, kInternalError);
    c_.schedule_write();
  }

  bool finished() const { return finished_; }
  void wake() { waker_.wake(); }
  void gone() { notify_aborted(); }

  Stream st;

 private:
  Connection<S>& c_;
  Waker waker_;
  bool no_body_ = false;
  bool finished_ = false;
};

template <class S>
class Connection final : public ConnectionSet::Member,
                         public ServerEvents,
                         public std::enable_shared_from_this<Connection<S>> {
 public:
  Connection(S s, const ServeContext& ctx, std::string initial, std::shared_ptr<const void> keep)
      : sock(std::move(s)),
        ctx_(ctx),
        opts(*ctx.options),
        codec(opts.h2, *this, now_s()),
        writer_(sock.get_executor()),
        writer_done_waker_(sock.get_executor()),
        idle_(sock.get_executor(), [this] { on_idle(); }),
        write_deadline_(sock.get_executor(), [this] { reset_socket(socket_of(sock)); }),
        final_goaway_(sock.get_executor(), [this] {
          codec.shutdown(true);
          schedule_write();
        }),
        initial_(std::move(initial)),
        keep_(std::move(keep)) {}

  asio::any_io_executor executor() { return sock.get_executor(); }
  std::string_view peer() {
    if (peer_.empty()) peer_ = peer_text(socket_of(sock));
    return peer_;
  }

  asio::awaitable<void> run();

  void schedule_write() { writer_.wake(); }

  // ConnectionSet::Member: the connection ends when its streams do. With
  // streams open, a shutdown notice (GOAWAY with the highest stream id) goes
  // first and the final GOAWAY (the last stream id really processed) a
  // round trip later, so requests the client sent meanwhile are served, not
  // refused (RFC 9113 6.8).
  void drain() override {
    if (draining_) return;
    draining_ = true;
    if (codec.active_streams() == 0) {
      codec.shutdown(true);
    } else {
      codec.shutdown(false);
      final_goaway_.arm_ms(kFinalGoawayDelayMs);
    }
    schedule_write();
  }
  bool idle() const override { return codec.active_streams() == 0 && running_ == 0; }
  size_t buffered_bytes() const override {
    size_t n = codec.memory() + wbuf_.capacity() + sizeof rbuf_;
    for (const auto& [id, x] : streams_) n += x->st.out.capacity() + x->st.body.capacity();
    return n;
  }

  // ServerEvents
  Stream* open_stream(int32_t id) override {
    auto x = std::make_shared<H2Exchange<S>>(*this);
    Stream* p = &x->st;
    streams_.emplace(id, std::move(x));
    return p;
  }
  void on_request(Stream& s) override {
    auto* x = static_cast<H2Exchange<S>*>(s.user);
    x->start(SteadyClock::mono_ns());
    asio::co_spawn(executor(), run_stream(this->shared_from_this(), x->shared_from_this()), asio::detached);
  }
  void on_progress(Stream& s) override { static_cast<H2Exchange<S>*>(s.user)->wake(); }
  void on_closed(Stream& s) override {
    auto* x = static_cast<H2Exchange<S>*>(s.user);
    x->wake();
    if (!(x->finished() && s.close_code == kNoError)) x->gone();
    streams_.erase(s.id);  // a running handler holds its own reference
    arm_idle_if_quiet();
  }
  void on_rejected(int status, std::string_view reason) override {
    if (ctx_.observer) ctx_.observer->on_protocol_error(status, reason);
  }
  void on_limit(Limit l) override {
    if (ctx_.observer) ctx_.observer->on_limit("HTTP/2", limit_name(l));
  }

  S sock;
  const ServeContext& ctx_;
  const ServerOptions& opts;
  ServerCodec codec;

 private:
  static asio::awaitable<void> run_stream(std::shared_ptr<Connection> c, std::shared_ptr<H2Exchange<S>> x);
  static asio::awaitable<void> write_loop(std::shared_ptr<Connection> c);
  // With no stream open, the idle timeout runs (the reader also arms it
  // before each read; this covers the last stream ending while it waits).
  void arm_idle_if_quiet() {
    if (codec.active_streams() == 0 && running_ == 0 && !reading_done_) idle_.arm_ms(opts.idle_timeout_ms);
  }
  bool feed(std::string_view bytes) {
    Status s = codec.receive(bytes, now_s());
    schedule_write();
    return s.is_ok();
  }
  void on_idle() {
    if (ctx_.observer) ctx_.observer->on_limit("HTTP/2", "idle_timeout");
    codec.shutdown(true);
    schedule_write();
  }
  // The connection is over: every stream still open learns it now.
  void abort_streams() {
    auto streams = std::move(streams_);
    streams_.clear();
    for (auto& [id, x] : streams) {
      x->st.closed = true;
      x->wake();
      if (!x->finished()) x->gone();
    }
  }

  Waker writer_;
  Waker writer_done_waker_;
  net::Deadline idle_;
  net::Deadline write_deadline_;
  net::Deadline final_goaway_;
  std::string initial_;
  std::shared_ptr<const void> keep_;
  std::string peer_;  // peer(), cached
  std::unordered_map<int32_t, std::shared_ptr<H2Exchange<S>>> streams_;
  char rbuf_[kReadChunk];
  std::string wbuf_;
  size_t running_ = 0;
  bool draining_ = false;
  bool reading_done_ = false;
  bool writer_done_ = false;
  bool broken_ = false;
};

template <class S>
asio::awaitable<void> Connection<S>::run() {
  auto self = this->shared_from_this();
  if (ctx_.observer) ctx_.observer->on_connection_open("HTTP/2");
  if (ctx_.connections) ctx_.connections->add(this);
  asio::co_spawn(executor(), write_loop(self), asio::detached);

  bool ok = feed(initial_);
  initial_.clear();
  initial_.shrink_to_fit();
  bool first = true;
  while (ok && codec.wants_read() && !writer_done_) {
    if (codec.active_streams() == 0 && running_ == 0) idle_.arm_ms(first ? opts.header_timeout_ms : opts.idle_timeout_ms);
    else idle_.disarm();
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(rbuf_, sizeof rbuf_), kNoThrow);
    if (ec || n == 0) break;
    first = false;
    ok = feed(std::string_view(rbuf_, n));
  }
  idle_.disarm();
  reading_done_ = true;
  schedule_write();
  while (!writer_done_) co_await writer_done_waker_.wait(0);
  write_deadline_.disarm();
  final_goaway_.disarm();
  close_socket(socket_of(sock));
  abort_streams();
  if (ctx_.connections) ctx_.connections->remove(this);
  if (ctx_.observer) ctx_.observer->on_connection_close();
}

template <class S>
asio::awaitable<void> Connection<S>::write_loop(std::shared_ptr<Connection> c) {
  for (;;) {
    c->wbuf_.clear();
    c->codec.produce(c->wbuf_, kWriteBatch);
    if (!c->wbuf_.empty()) {
      c->write_deadline_.arm_ms(c->opts.write_stall_ms);
      auto [ec, n] = co_await asio::async_write(c->sock, asio::buffer(c->wbuf_), kNoThrow);
      c->write_deadline_.disarm();
      if (ec) {
        c->broken_ = true;
        break;
      }
      continue;
    }
    if (c->reading_done_ || (!c->codec.wants_read() && !c->codec.wants_write())) break;
    co_await c->writer_.wait(0);
  }
  c->wbuf_ = std::string();
  // FIN after the last frame (GOAWAY); the reader sees the client close, or
  // the linger deadline cuts the socket.
  boost::system::error_code ec;
  socket_of(c->sock).shutdown(tcp::socket::shutdown_send, ec);
  c->write_deadline_.arm_ms(1000);
  c->writer_done_ = true;
  c->writer_done_waker_.wake();
}

template <class S>
asio::awaitable<void> Connection<S>::run_stream(std::shared_ptr<Connection> c, std::shared_ptr<H2Exchange<S>> x) {
  ++c->running_;
  try {
    co_await (*c->ctx_.handler)(*x);
  } catch (const std::exception&) {
    // Handlers report errors as values; an escaped exception is a bug. The
    // stream still ends cleanly below.
  }
  if (!x->finished() && !x->st.closed) {
    if (!x->head_sent()) {
      (void)co_await x->respond_error(500, "internal error", "internal_error");
    } else {
      x->reset();  // cannot complete a response already under way
    }
  }
  --c->running_;
  c->arm_idle_if_quiet();
  c->schedule_write();
}

}  // namespace sluice::http::h2::detail
