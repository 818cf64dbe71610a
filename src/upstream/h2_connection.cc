#include "upstream/h2_connection.h"

#include <array>
#include <charconv>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "core/clock.h"
#include "upstream/pool.h"

namespace sluice::upstream {
namespace {
constexpr size_t kWriteBatch = 64 * 1024;
constexpr uint32_t kRefusedStream = 0x7;
constexpr int64_t kNsPerMs = 1'000'000;
// Response bytes one request may have in flight and unread. LLM answers are
// small; this bounds what a stalled client can make the gateway hold.
constexpr uint32_t kStreamWindow = 256 * 1024;
}  // namespace

H2Connection::H2Connection(asio::any_io_executor ex, asio::ssl::context* tls, std::string sni, const H2Settings& cfg)
    : cfg_(cfg),
      codec_(http::h2::ClientOptions{.stream_window_bytes = kStreamWindow}, *this),
      io_(ex, tls, std::move(sni)),
      scheme_(tls ? "https" : "http"),
      writer_(ex),
      liveness_(ex, [this] { on_liveness(); }) {}

H2Connection::~H2Connection() { io_.close(); }

bool H2Connection::accepts_streams() const {
  if (!usable()) return false;
  const uint32_t cap = std::min(cfg_.max_streams, codec_.peer_max_concurrent_streams());
  return attached_ < cap;
}

void H2Connection::detach() {
  if (attached_ > 0) --attached_;
}

void H2Connection::remove_waiter(net::Waker* w) { std::erase(waiters_, w); }

void H2Connection::wake_waiters() {
  for (net::Waker* w : waiters_) w->wake();  // (waiters resume later: the list does not change here)
}

asio::awaitable<Status> H2Connection::connect(const tcp::endpoint& ep) {
  auto self = shared_from_this();  // the pool may drop it meanwhile
  Status s = co_await io_.connect(ep);
  if (s && io_.tls() && io_.alpn() != "h2")
    s = Status(Errc::kUnavailable, "the upstream did not agree to HTTP/2 by ALPN (" +
                                       (io_.alpn().empty() ? std::string("it chose no protocol")
                                                           : "it chose " + std::string(io_.alpn())) + ")");
  if (state_ == State::kClosed) co_return failure_;  // closed while connecting (the first request timed out)
  if (!s) {
    close(s);
    co_return s;
  }
  state_ = State::kReady;
  last_recv_ns_ = SteadyClock::mono_ns();
  asio::co_spawn(io_.lowest().get_executor(), read_loop(self), asio::detached);
  asio::co_spawn(io_.lowest().get_executor(), write_loop(self), asio::detached);
  wake_waiters();
  co_return Status::ok();
}

void H2Connection::close(Status why) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  failure_ = why.is_ok() ? Status(Errc::kClosed, "upstream HTTP/2 connection closed") : std::move(why);
  io_.close();
  liveness_.disarm();
  // The codec is never fed again: every stream still open ends here.
  for (auto& [id, s] : streams_) {
    s->st.closed = true;
    s->waker.wake();
  }
  wake_waiters();
  schedule_write();
}

Status H2Connection::submit(const std::shared_ptr<H2Stream>& s, const Request& r) {
  if (state_ != State::kReady) return failure_.is_ok() ? Status(Errc::kClosed, "upstream connection not open") : failure_;
  if (codec_.goaway_received()) return Status(Errc::kClosed, "upstream HTTP/2 connection is going away");
  auto& st = s->st;
  st.user = s.get();
  const bool has_body = !r.body.empty();
  if (has_body) {
    st.out.assign(r.body);
    st.out_end = true;
  }
  // No content-length: END_STREAM delimits the body.
  Status rs = codec_.submit_request(st, r.method, scheme_, r.authority, r.path, r.headers, has_body);
  if (!rs) return rs;
  streams_.emplace(st.id, s);
  const int64_t now = SteadyClock::mono_ns();
  if (!ping_outstanding_) {
    if (now - last_recv_ns_ >= cfg_.ping_interval_ms * kNsPerMs) send_ping(now);  // quiet a while: still there?
    else liveness_.arm_at(last_recv_ns_ + cfg_.ping_interval_ms * kNsPerMs);
  }
  schedule_write();
  return Status::ok();
}

void H2Connection::reset(H2Stream& s, uint32_t code) {
  if (state_ != State::kReady || s.st.closed) return;
  codec_.reset(s.st, code);
  schedule_write();
}

void H2Connection::consume(H2Stream& s, size_t n) {
  if (state_ != State::kReady) return;
  codec_.consume(s.st, n);
  schedule_write();
}

void H2Connection::send_ping(int64_t now_ns) {
  codec_.ping();
  ping_outstanding_ = true;
  ping_sent_ns_ = now_ns;
  liveness_.arm_at(now_ns + cfg_.ping_timeout_ms * kNsPerMs);
  schedule_write();
}

void H2Connection::alive(int64_t now_ns) {
  last_recv_ns_ = now_ns;
  ping_outstanding_ = false;  // any frame shows the peer is there
  if (!streams_.empty()) liveness_.arm_at(now_ns + cfg_.ping_interval_ms * kNsPerMs);  // later: a store
}

void H2Connection::on_liveness() {
  if (state_ != State::kReady) return;
  const int64_t now = SteadyClock::mono_ns();
  if (ping_outstanding_) {
    if (now - ping_sent_ns_ >= cfg_.ping_timeout_ms * kNsPerMs) {
      close(Status(Errc::kTimeout, "upstream connection dead: no answer to PING within " +
                                       std::to_string(cfg_.ping_timeout_ms) + " ms"));
    } else {
      liveness_.arm_at(ping_sent_ns_ + cfg_.ping_timeout_ms * kNsPerMs);
    }
    return;
  }
  if (streams_.empty()) return;  // nobody waits; the next request checks
  if (now - last_recv_ns_ >= cfg_.ping_interval_ms * kNsPerMs) send_ping(now);
  else liveness_.arm_at(last_recv_ns_ + cfg_.ping_interval_ms * kNsPerMs);
}

void H2Connection::on_head(http::h2::ClientStream& s) { static_cast<H2Stream*>(s.user)->waker.wake(); }
void H2Connection::on_progress(http::h2::ClientStream& s) { static_cast<H2Stream*>(s.user)->waker.wake(); }
void H2Connection::on_closed(http::h2::ClientStream& s) {
  static_cast<H2Stream*>(s.user)->waker.wake();
  streams_.erase(s.id);  // a request still running holds its own reference
}
void H2Connection::on_goaway(int32_t, uint32_t) {
  // No new streams; nghttp2 closes those above last_stream_id as refused.
  wake_waiters();
}

asio::awaitable<void> H2Connection::read_loop(std::shared_ptr<H2Connection> c) {
  while (c->state_ == State::kReady) {
    auto [ec, n] = co_await c->io_.read_some(asio::buffer(c->rbuf_));
    if (c->state_ != State::kReady) break;
    if (ec) {
      c->close(is_eof(ec) ? Status(Errc::kClosed, "upstream closed the HTTP/2 connection")
                          : Status(Errc::kIo, "upstream HTTP/2 connection: " + ec.message()));
      break;
    }
    c->alive(SteadyClock::mono_ns());
    Status s = c->codec_.receive(std::string_view(c->rbuf_.data(), n));
    c->schedule_write();
    if (!s) {
      c->close(Status(Errc::kInvalid, "bad HTTP/2 from upstream: " + s.message()));
      break;
    }
    if (c->codec_.goaway_received() && c->codec_.active_streams() == 0) {
      c->close(Status(Errc::kClosed, "upstream sent GOAWAY"));
      break;
    }
  }
}

asio::awaitable<void> H2Connection::write_loop(std::shared_ptr<H2Connection> c) {
  while (c->state_ == State::kReady) {
    c->wbuf_.clear();
    c->codec_.produce(c->wbuf_, kWriteBatch);
    if (!c->wbuf_.empty()) {
      std::array<asio::const_buffer, 1> bufs{asio::buffer(c->wbuf_)};
      auto [ec, n] = co_await c->io_.write(bufs);
      if (ec) {
        c->close(Status(Errc::kIo, "upstream HTTP/2 write: " + ec.message()));
        break;
      }
      continue;
    }
    co_await c->writer_.wait(0);
  }
  c->wbuf_ = std::string();
}

// ---- H2Call

H2Call::H2Call(std::shared_ptr<H2Connection> c, EndpointPool& pool)
    : c_(std::move(c)),
      pool_(pool),
      s_(std::make_shared<H2Stream>(pool.executor())),
      deadline_(pool.executor(), [this] { cut(http::h2::kCancel); }),
      reused_(c_->state() == H2Connection::State::kReady) {
  c_->attach();
}

H2Call::~H2Call() {
  if (submitted_ && !s_->st.closed) c_->reset(*s_, http::h2::kCancel);
  c_->remove_waiter(&s_->waker);
  c_->detach();
}

void H2Call::cut(uint32_t code) {
  if (submitted_) c_->reset(*s_, code);
  else if (owner_ && deadline_.expired()) c_->close(Status(Errc::kTimeout, "connect timeout"));
  s_->waker.wake();
}

void H2Call::abort() {
  aborted_ = true;
  cut(http::h2::kCancel);
}

asio::awaitable<Status> H2Call::connect() {
  for (;;) {
    if (aborted_) co_return Status(Errc::kCancelled, "the client went away");
    if (deadline_.expired()) co_return Status(Errc::kTimeout, "connect timeout");
    switch (c_->state()) {
      case H2Connection::State::kReady:
        co_return Status::ok();
      case H2Connection::State::kClosed:
        co_return c_->failure();
      case H2Connection::State::kNew: {
        owner_ = true;
        c_->begin_connect();
        auto ep = co_await pool_.resolve();
        if (!ep) {
          c_->close(ep.status());
          co_return ep.status();
        }
        Status s = co_await c_->connect(*ep);
        co_return s;
      }
      case H2Connection::State::kConnecting:
        c_->add_waiter(&s_->waker);
        co_await s_->waker.wait(0);
        c_->remove_waiter(&s_->waker);
        break;
    }
  }
}

asio::awaitable<Status> H2Call::send(const Request& r) {
  if (aborted_ || deadline_.expired()) co_return why_closed();
  Status s = c_->submit(s_, r);
  submitted_ = s.is_ok();
  co_return s;
}

Status H2Call::why_closed() const {
  if (aborted_) return Status(Errc::kCancelled, "the client went away");
  if (deadline_.expired()) return Status(Errc::kTimeout, "deadline");
  if (c_->state() == H2Connection::State::kClosed) return c_->failure();
  const uint32_t code = s_->st.close_code;
  if (code == kRefusedStream) return Status(Errc::kClosed, "upstream refused the stream (it is going away)");
  if (code == 0) return Status(Errc::kInvalid, "upstream ended the stream without a complete response");
  return Status(Errc::kIo, "upstream reset the stream (HTTP/2 error " + std::to_string(code) + ")");
}

asio::awaitable<Status> H2Call::read_head(bool) {
  auto& st = s_->st;
  for (;;) {
    if (st.head_done) break;
    if (st.closed || aborted_ || deadline_.expired()) co_return why_closed();
    co_await s_->waker.wait(0);
  }
  head_.status = st.status;
  head_.headers.clear();
  head_.content_length.reset();
  for (const auto& [name, value] : st.headers) {
    head_.headers.push_back({name, value});
    if (name == "content-length") {
      uint64_t n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec == std::errc() && p == value.data() + value.size()) head_.content_length = n;
    }
  }
  co_return Status::ok();
}

asio::awaitable<Result<std::string_view>> H2Call::read_body() {
  auto& st = s_->st;
  for (;;) {
    if (!st.body.empty()) {
      piece_.clear();
      piece_.swap(st.body);
      c_->consume(*s_, piece_.size());  // reopens the window: the upstream may send more
      co_return std::string_view(piece_);
    }
    if (st.body_done) co_return std::string_view{};
    if (st.closed || aborted_ || deadline_.expired()) co_return why_closed();
    co_await s_->waker.wait(0);
  }
}

}  // namespace sluice::upstream
