#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "core/status.h"
#include "http/h2/codec.h"
#include "net/deadline.h"
#include "net/waker.h"
#include "upstream/call.h"
#include "upstream/transport.h"

namespace sluice::upstream {

class EndpointPool;

// How HTTP/2 connections to an upstream behave.
struct H2Settings {
  // A connection that has received nothing for this long is pinged: when a
  // request is about to use it, and while requests wait on it. No answer (or
  // any other frame) within ping_timeout_ms and the connection is dead: its
  // requests fail at once (before a response head they fail over).
  int64_t ping_interval_ms = 5000;
  int64_t ping_timeout_ms = 3000;
  uint32_t max_streams = 100;     // per connection, also bounded by the peer's MAX_CONCURRENT_STREAMS
  uint32_t max_connections = 4;   // per endpoint and worker; more requests queue in nghttp2
};

// What a request keeps of its stream; shared with the connection, which
// must keep it alive until the codec is done with it.
struct H2Stream {
  explicit H2Stream(const asio::any_io_executor& ex) : waker(ex) {}
  http::h2::ClientStream st;
  net::Waker waker;  // the request's coroutine, waiting for the head, body or close
};

// One HTTP/2 connection (h2 over TLS, or h2c with prior knowledge) carrying
// many requests. A reader coroutine feeds the codec; a writer coroutine
// batches its frames to the socket. A liveness deadline sends PINGs and
// declares the connection dead when they go unanswered.
class H2Connection final : public http::h2::ClientEvents, public std::enable_shared_from_this<H2Connection> {
 public:
  enum class State : uint8_t { kNew, kConnecting, kReady, kClosed };

  H2Connection(asio::any_io_executor ex, asio::ssl::context* tls, std::string sni, const H2Settings& cfg);
  ~H2Connection() override;

  State state() const { return state_; }
  // Open (or opening), not going away, and under its stream limit.
  bool accepts_streams() const;
  bool usable() const { return state_ != State::kClosed && !codec_.goaway_received(); }
  // Requests attached to the connection (waiting for it or using a stream).
  uint32_t attached() const { return attached_; }
  void attach() { ++attached_; }
  void detach();

  // Connects and starts the reader and writer (the first request does it;
  // the others wait_ready()).
  asio::awaitable<Status> connect(const tcp::endpoint& ep);
  // For a kNew connection: marks it as connecting (before resolving), so others wait.
  void begin_connect() { state_ = State::kConnecting; }
  void add_waiter(net::Waker* w) { waiters_.push_back(w); }
  void remove_waiter(net::Waker* w);
  // Why the connection ended (or failed to open).
  const Status& failure() const { return failure_; }

  Status submit(const std::shared_ptr<H2Stream>& s, const Request& r);
  void reset(H2Stream& s, uint32_t code);
  void consume(H2Stream& s, size_t n);
  // Ends the connection; its streams fail with `why`.
  void close(Status why);

  // ClientEvents
  void on_head(http::h2::ClientStream& s) override;
  void on_progress(http::h2::ClientStream& s) override;
  void on_closed(http::h2::ClientStream& s) override;
  void on_goaway(int32_t last_stream_id, uint32_t code) override;

 private:
  static asio::awaitable<void> read_loop(std::shared_ptr<H2Connection> c);
  static asio::awaitable<void> write_loop(std::shared_ptr<H2Connection> c);
  void schedule_write() { writer_.wake(); }
  void wake_waiters();
  void send_ping(int64_t now_ns);
  void on_liveness();
  void alive(int64_t now_ns);

  // Streams first: they must outlive the codec, which points at them.
  std::unordered_map<int32_t, std::shared_ptr<H2Stream>> streams_;
  H2Settings cfg_;
  http::h2::ClientCodec codec_;
  Transport io_;
  std::string scheme_;
  net::Waker writer_;
  net::Deadline liveness_;
  std::vector<net::Waker*> waiters_;
  Status failure_;
  std::array<char, 16 * 1024> rbuf_;
  std::string wbuf_;
  int64_t last_recv_ns_ = 0;
  int64_t ping_sent_ns_ = 0;
  uint32_t attached_ = 0;
  State state_ = State::kNew;
  bool ping_outstanding_ = false;
};

// A request on a shared HTTP/2 connection.
class H2Call final : public Call {
 public:
  H2Call(std::shared_ptr<H2Connection> c, EndpointPool& pool);
  ~H2Call() override;

  bool reused() const override { return reused_; }
  asio::awaitable<Status> connect() override;
  bool opened_connection() const override { return owner_; }
  asio::awaitable<Status> send(const Request& r) override;
  asio::awaitable<Status> read_head(bool request_was_head) override;
  const http::ResponseHead& head() const override { return head_; }
  asio::awaitable<Result<std::string_view>> read_body() override;
  bool body_buffered() const override { return !s_->st.body.empty() || s_->st.body_done; }
  bool body_complete() const override { return s_->st.body.empty() && s_->st.body_done; }
  void abort() override;
  void complete() override {}
  void arm_deadline(int64_t at_ns) override { deadline_.arm_at(at_ns); }
  void disarm_deadline() override { deadline_.disarm(); }
  bool deadline_expired() const override { return deadline_.expired(); }

 private:
  void cut(uint32_t code);
  Status why_closed() const;

  std::shared_ptr<H2Connection> c_;
  EndpointPool& pool_;
  std::shared_ptr<H2Stream> s_;
  http::ResponseHead head_;
  std::string piece_;
  net::Deadline deadline_;
  bool reused_;
  bool owner_ = false;  // this request opens the connection
  bool submitted_ = false;
  bool aborted_ = false;
};

}  // namespace sluice::upstream
