// HTTP/2 client connection for the bench: h2c with prior knowledge, or TLS
// with ALPN h2; many exchanges at once, one per stream. The codec
// (http/h2/codec.h) knows the protocol; this file moves its bytes. A reader
// coroutine feeds the codec what arrives, a writer coroutine sends what it
// produces (frames of every stream batched into one write), and each
// exchange() waits on its own stream for the head and body pieces it reports
// to its meter, taking them from the stream so that its window reopens.
//
// Lifetimes: everything one TCP connection needs is a Session, shared by the
// reader, the writer and the exchanges on it. A reconnect makes a new
// Session; the old one is freed when its last coroutine ends. A stream's
// state (Call) belongs to the Session and is reused only once the codec has
// closed the stream: an abandoned exchange returns before its RST_STREAM
// has left. Calls are reused, so a warm connection allocates little per
// request (the codec's response header strings).
#include <openssl/ssl.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "bench/client_connection.h"
#include "bench/client_transport.h"
#include "bench/response_meter.h"
#include "core/clock.h"
#include "http/h2/codec.h"
#include "http/transport.h"
#include "net/waker.h"

namespace sluice::bench {
namespace {

namespace h2 = http::h2;
using net::Waker;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kWriteBatch = 64 * 1024;

// One request/response stream and the exchange waiting on it.
struct Call {
  explicit Call(const asio::any_io_executor& ex) : waker(ex) {}

  // Ready for another request; string and vector capacities are kept.
  void reuse() {
    std::string out = std::move(st.out), body = std::move(st.body);
    auto headers = std::move(st.headers);
    st = h2::ClientStream{};
    out.clear();
    body.clear();
    headers.clear();
    st.out = std::move(out);
    st.body = std::move(body);
    st.headers = std::move(headers);
    st.user = this;
    read_ns = 0;
    submitted = abandoned = returned = false;
  }

  std::string_view response_field(std::string_view name) const {
    for (const auto& [n, v] : st.headers) {
      if (n == name) return v;
    }
    return {};
  }

  h2::ClientStream st;
  Waker waker;
  std::vector<http::Header> fields;  // request header fields, views into the OutgoingRequest
  int64_t read_ns = 0;               // when the last body bytes arrived
  bool submitted = false;            // the codec has the stream (until st.closed)
  bool abandoned = false;            // ExchangeCancel::abandon() ran
  bool returned = false;             // exchange() is over; reuse once the codec is done too
};

template <class S>
class Session final : public h2::ClientEvents {
 public:
  Session(S sock, uint32_t max_streams)
      : sock(std::move(sock)),
        codec_(codec_options_, *this),
        max_streams_(max_streams),
        writer_(this->sock.get_executor()),
        opened_(this->sock.get_executor()) {}

  S sock;

  // Open for new streams: the peer's SETTINGS seen, no GOAWAY, not broken.
  bool usable() const { return acked_ && !broken_ && !codec_.goaway_received() && !exhausted_; }
  bool broken() const { return broken_; }
  bool draining() const { return codec_.goaway_received() && !broken_ && codec_.active_streams() > 0; }
  uint32_t limit() const { return std::max<uint32_t>(1, std::min(max_streams_, codec_.peer_max_concurrent_streams())); }

  // Ends the connection: every waiter wakes and finds it broken.
  void fail() {
    if (broken_) return;
    broken_ = true;
    http::close_socket(http::socket_of(sock));
    for (auto& c : calls_) c->waker.wake();
    writer_.wake();
    opened_.wake();
  }

  // After the transport is up: asks for a PING ack, which the peer sends
  // after its SETTINGS, and starts the reader and the writer.
  static asio::awaitable<Outcome> start(std::shared_ptr<Session> s) {
    s->codec_.ping();
    asio::co_spawn(s->sock.get_executor(), read_loop(s), asio::detached);
    asio::co_spawn(s->sock.get_executor(), write_loop(s), asio::detached);
    while (!s->acked_ && !s->broken_ && !s->codec_.goaway_received()) co_await s->opened_.wait(0);
    co_return s->usable() ? Outcome::kOk : Outcome::kConnect;
  }

  asio::awaitable<Outcome> exchange(const OutgoingRequest& req, ResponseMeter& meter, ExchangeCancel& cancel) {
    Call* c = acquire();
    Outcome out;
    {
      CancelScope scope(cancel, &Session::abandon, c);
      out = co_await run(*c, req, meter);
    }
    release(*c);
    co_return out;
  }

 private:
  static void abandon(void* p) {
    Call* c = static_cast<Call*>(p);
    c->abandoned = true;
    c->waker.wake();
  }

  Call* acquire() {
    Call* c;
    if (free_.empty()) {
      calls_.push_back(std::make_unique<Call>(sock.get_executor()));
      c = calls_.back().get();
    } else {
      c = free_.back();
      free_.pop_back();
    }
    c->reuse();
    return c;
  }

  void release(Call& c) {
    c.returned = true;
    if (!c.submitted || c.st.closed) free_.push_back(&c);
    // else on_closed() frees it
  }

  void schedule_write() { writer_.wake(); }

  // Wakes the first queued exchange when a stream slot is free.
  void admit() {
    if (!queued_.empty() && codec_.active_streams() < limit()) queued_.front()->waker.wake();
  }

  bool slot_free(const Call& c) const { return queued_.front() == &c && codec_.active_streams() < limit(); }

  asio::awaitable<Outcome> run(Call& c, const OutgoingRequest& req, ResponseMeter& meter);

  static asio::awaitable<void> read_loop(std::shared_ptr<Session> s);
  static asio::awaitable<void> write_loop(std::shared_ptr<Session> s);

  // ClientEvents
  void on_head(h2::ClientStream& st) override { static_cast<Call*>(st.user)->waker.wake(); }
  void on_progress(h2::ClientStream& st) override {
    // Also called when request bytes were framed (inside produce()): only
    // what arrived is of interest, stamped with the time it was read.
    if (!receiving_) return;
    Call* c = static_cast<Call*>(st.user);
    c->read_ns = read_ns_;
    c->waker.wake();
  }
  void on_closed(h2::ClientStream& st) override {
    Call* c = static_cast<Call*>(st.user);
    if (c->returned) {
      free_.push_back(c);
    } else {
      c->waker.wake();
    }
    admit();
  }
  void on_ping_ack() override {
    acked_ = true;
    opened_.wake();
  }
  void on_goaway(int32_t, uint32_t) override {
    // Streams past the last id are closed by the codec (REFUSED_STREAM);
    // the others run to their end. Queued exchanges give up.
    opened_.wake();
    for (Call* c : queued_) c->waker.wake();
  }

  // Declared before the codec, which points into them: they outlive it.
  std::vector<std::unique_ptr<Call>> calls_;  // every Call made, reused through free_
  std::vector<Call*> free_;
  std::deque<Call*> queued_;               // exchanges waiting for a stream slot, first come first served
  const h2::ClientOptions codec_options_;  // the codec keeps a reference
  h2::ClientCodec codec_;
  uint32_t max_streams_;
  Waker writer_;
  Waker opened_;  // start() waits here for the PING ack
  int64_t read_ns_ = 0;
  bool receiving_ = false;
  bool acked_ = false;
  bool broken_ = false;
  bool exhausted_ = false;  // the codec refused a new stream (ids used up): reconnect
  char rbuf_[kReadChunk];
  std::string wbuf_;
};

template <class S>
asio::awaitable<Outcome> Session<S>::run(Call& c, const OutgoingRequest& req, ResponseMeter& meter) {
  if (!usable()) co_return Outcome::kReset;
  if (!queued_.empty() || codec_.active_streams() >= limit()) {
    queued_.push_back(&c);
    while (usable() && !c.abandoned && !slot_free(c)) co_await c.waker.wait(0);
    queued_.erase(std::find(queued_.begin(), queued_.end(), &c));
    if (!usable() || c.abandoned) {
      admit();
      co_return Outcome::kReset;
    }
  }

  c.fields.clear();
  for (const HeaderField& h : req.headers) c.fields.push_back({h.name, h.value});
  c.st.out.assign(req.body);
  c.st.out_end = true;
  Status submitted = codec_.submit_request(c.st, req.method, http::kIsTls<S> ? "https" : "http", req.authority,
                                           req.path, c.fields, !req.body.empty());
  if (!submitted) {
    exhausted_ = true;
    co_return Outcome::kReset;
  }
  c.submitted = true;
  schedule_write();
  admit();  // more than one slot may be free

  bool head_reported = false;
  for (;;) {
    if (c.st.head_done && !head_reported) {
      head_reported = true;
      meter.on_head(c.st.status, is_event_stream(c.response_field("content-type")));
    }
    if (!c.st.body.empty()) {
      const size_t n = c.st.body.size();
      const bool ok = meter.on_body(c.st.body, c.read_ns);
      c.st.body.clear();
      codec_.consume(c.st, n);
      if (!ok) {
        codec_.reset(c.st, h2::kCancel);
        schedule_write();
        co_return Outcome::kBadResponse;
      }
      if (codec_.wants_write()) schedule_write();  // a WINDOW_UPDATE
    }
    if (c.st.body_done) co_return head_reported ? Outcome::kOk : Outcome::kBadResponse;
    if (c.st.closed || broken_) co_return Outcome::kReset;
    if (c.abandoned) {
      codec_.reset(c.st, h2::kCancel);
      schedule_write();
      co_return Outcome::kReset;
    }
    co_await c.waker.wait(0);
  }
}

template <class S>
asio::awaitable<void> Session<S>::read_loop(std::shared_ptr<Session> s) {
  while (!s->broken_) {
    auto [ec, n] = co_await s->sock.async_read_some(asio::buffer(s->rbuf_, sizeof s->rbuf_), kNoThrow);
    s->read_ns_ = SteadyClock::mono_ns();
    if (ec || s->broken_) break;
    s->receiving_ = true;
    Status st = s->codec_.receive(std::string_view(s->rbuf_, n));
    s->receiving_ = false;
    if (!st) break;
    if (s->codec_.wants_write()) s->schedule_write();  // SETTINGS and PING acks, WINDOW_UPDATEs
    // After a GOAWAY, nghttp2 wants nothing more once the last stream is over.
    if (!s->codec_.wants_read() && !s->codec_.wants_write()) break;
  }
  s->fail();
}

template <class S>
asio::awaitable<void> Session<S>::write_loop(std::shared_ptr<Session> s) {
  while (!s->broken_) {
    s->wbuf_.clear();
    s->codec_.produce(s->wbuf_, kWriteBatch);
    if (s->wbuf_.empty()) {
      co_await s->writer_.wait(0);
      continue;
    }
    auto [ec, n] = co_await asio::async_write(s->sock, asio::buffer(s->wbuf_), kNoThrow);
    if (ec) break;
  }
  s->fail();
}

template <class S>
class H2Connection final : public ClientConnection {
 public:
  H2Connection(const ConnectParams& p, uint32_t max_streams)
      : p_(p), max_streams_(std::max<uint32_t>(1, max_streams)) {}
  ~H2Connection() override { close(); }

  asio::awaitable<Outcome> connect() override;

  asio::awaitable<Outcome> exchange(const OutgoingRequest& req, ResponseMeter& meter, ExchangeCancel& cancel) override {
    std::shared_ptr<Session<S>> s = session_;  // keeps it alive across a reconnect
    if (!s) co_return Outcome::kReset;
    Outcome out = co_await s->exchange(req, meter, cancel);
    co_return out;
  }

  void close() override {
    if (session_) session_->fail();
    for (auto& w : draining_) {
      if (auto s = w.lock()) s->fail();
    }
    draining_.clear();
  }

  bool ready() const override { return session_ && session_->usable(); }
  // The reader is always reading: a peer that closed is already known.
  bool still_open() override { return ready(); }
  int max_concurrent_streams() const override {
    return static_cast<int>(session_ && session_->usable() ? session_->limit() : max_streams_);
  }

 private:
  S make_stream() {
    if constexpr (http::kIsTls<S>) {
      return S(p_.executor, *p_.tls);
    } else {
      return S(p_.executor);
    }
  }

  ConnectParams p_;
  uint32_t max_streams_;
  std::shared_ptr<Session<S>> session_;
  // Sessions replaced after a GOAWAY whose streams still run to their end:
  // close() must reach them too.
  std::vector<std::weak_ptr<Session<S>>> draining_;
};

template <class S>
asio::awaitable<Outcome> H2Connection<S>::connect() {
  std::erase_if(draining_, [](const auto& w) { return w.expired(); });
  if (session_ && session_->draining()) {
    draining_.push_back(session_);
  } else if (session_) {
    session_->fail();
  }
  auto s = std::make_shared<Session<S>>(make_stream(), max_streams_);
  session_ = s;
  if constexpr (http::kIsTls<S>) {
    static const unsigned char kAlpn[] = {2, 'h', '2'};
    SSL_set_alpn_protos(s->sock.native_handle(), kAlpn, sizeof kAlpn);
  }
  const bool open = co_await open_transport(s->sock, p_);
  if (!open || s->broken()) {
    s->fail();
    co_return Outcome::kConnect;
  }
  if constexpr (http::kIsTls<S>) {
    const unsigned char* proto = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(s->sock.native_handle(), &proto, &len);
    if (std::string_view(reinterpret_cast<const char*>(proto), proto ? len : 0) != "h2") {
      s->fail();
      co_return Outcome::kConnect;
    }
  }
  Outcome out = co_await Session<S>::start(s);
  if (out != Outcome::kOk) s->fail();
  co_return out;
}

}  // namespace

std::unique_ptr<ClientConnection> make_h2_connection(const ConnectParams& p, uint32_t max_streams) {
  if (p.tls) return std::make_unique<H2Connection<http::TlsStream>>(p, max_streams);
  return std::make_unique<H2Connection<tcp::socket>>(p, max_streams);
}

}  // namespace sluice::bench
