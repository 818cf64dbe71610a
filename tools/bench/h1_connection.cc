// HTTP/1.1 client connection for the bench, plain or TLS: one request at a
// time, keep-alive, responses read with the project's strict parser and
// chunked decoder. Buffers are members and reused, so a request on a warm
// connection allocates nothing here.
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "bench/client_connection.h"
#include "bench/client_transport.h"
#include "bench/response_meter.h"
#include "core/clock.h"
#include "core/flat_buffer.h"
#include "http/h1/chunked.h"
#include "http/h1/parser.h"
#include "http/message.h"

namespace sluice::bench {
namespace {

using tcp = asio::ip::tcp;
using TlsStream = asio::ssl::stream<tcp::socket>;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 16 * 1024;
const http::h1::Limits kResponseLimits{64 * 1024, 256};

void append_size(std::string& out, size_t n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

template <class Stream>
class H1Connection final : public ClientConnection {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  explicit H1Connection(const ConnectParams& p) : p_(p) {}
  ~H1Connection() override { close(); }

  asio::awaitable<Outcome> connect() override;
  asio::awaitable<Outcome> exchange(const OutgoingRequest& req, ResponseMeter& meter,
                                    ExchangeCancel& cancel) override;

  void close() override {
    open_ = false;
    if (!stream_) return;
    boost::system::error_code ec;
    // No TLS close_notify: it could wait on a stalled peer, and servers treat
    // a closed socket the same way.
    lowest().close(ec);
  }

  bool ready() const override { return open_; }

  bool still_open() override {
    if (!open_) return false;
    char c;
    ssize_t n = ::recv(lowest().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

 private:
  tcp::socket& lowest() {
    if constexpr (kTls) {
      return stream_->next_layer();
    } else {
      return *stream_;
    }
  }

  // Reads more bytes into rbuf_ and stamps read_ns_; false on EOF or error.
  asio::awaitable<bool> read_more();
  asio::awaitable<Outcome> read_response(bool request_was_head, ResponseMeter& meter);

  ConnectParams p_;
  std::optional<Stream> stream_;
  bool open_ = false;
  bool eof_ = false;
  int64_t read_ns_ = 0;
  std::string wbuf_;
  FlatBuffer rbuf_{2 * kReadChunk};
  http::ResponseHead head_;
  http::h1::ChunkedDecoder chunked_;
};

template <class Stream>
asio::awaitable<Outcome> H1Connection<Stream>::connect() {
  close();
  if constexpr (kTls) {
    stream_.emplace(p_.executor, *p_.tls);
  } else {
    stream_.emplace(p_.executor);
  }
  rbuf_.consume(rbuf_.size());
  const bool ok = co_await open_transport(*stream_, p_);
  if (!ok) {
    close();
    co_return Outcome::kConnect;
  }
  open_ = true;
  co_return Outcome::kOk;
}

template <class Stream>
asio::awaitable<bool> H1Connection<Stream>::read_more() {
  char* p = rbuf_.prepare(kReadChunk);
  auto [ec, n] = co_await stream_->async_read_some(asio::buffer(p, rbuf_.writable()), kNoThrow);
  read_ns_ = SteadyClock::mono_ns();
  if (ec) {
    eof_ = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
    co_return false;
  }
  rbuf_.commit(n);
  co_return true;
}

template <class Stream>
asio::awaitable<Outcome> H1Connection<Stream>::exchange(const OutgoingRequest& req, ResponseMeter& meter,
                                                       ExchangeCancel& cancel) {
  if (!open_) co_return Outcome::kReset;
  // One exchange at a time: abandoning it means closing the connection.
  CancelScope scope(cancel, [](void* self) { static_cast<H1Connection*>(self)->close(); }, this);
  wbuf_.clear();
  wbuf_ += req.method;
  wbuf_ += ' ';
  wbuf_ += req.path;
  wbuf_ += " HTTP/1.1\r\nhost: ";
  wbuf_ += req.authority;
  wbuf_ += "\r\n";
  for (const HeaderField& h : req.headers) {
    wbuf_ += h.name;
    wbuf_ += ": ";
    wbuf_ += h.value;
    wbuf_ += "\r\n";
  }
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT") {
    wbuf_ += "content-length: ";
    append_size(wbuf_, req.body.size());
    wbuf_ += "\r\n";
  }
  wbuf_ += "\r\n";
  // One contiguous write: one syscall, and TLS records as large as they can be.
  wbuf_ += req.body;
  auto [ec, n] = co_await asio::async_write(*stream_, asio::buffer(wbuf_), kNoThrow);
  if (ec) {
    close();
    co_return Outcome::kReset;
  }
  Outcome out = co_await read_response(req.method == "HEAD", meter);
  co_return out;
}

template <class Stream>
asio::awaitable<Outcome> H1Connection<Stream>::read_response(bool request_was_head, ResponseMeter& meter) {
  http::h1::ParseResult pr;
  for (;;) {
    if (!rbuf_.empty()) {
      pr = http::h1::parse_response_head(rbuf_.view(), head_, kResponseLimits, request_was_head);
      if (pr.state == http::h1::ParseState::kError) {
        close();
        co_return Outcome::kBadResponse;
      }
      if (pr.state == http::h1::ParseState::kComplete) {
        if (head_.status >= 100 && head_.status < 200 && head_.status != 101) {
          rbuf_.consume(pr.consumed);  // interim response: skip
          continue;
        }
        break;
      }
    }
    bool got = co_await read_more();
    if (!got) {
      close();
      co_return Outcome::kReset;
    }
  }
  // The head's views die with the next read: take what is needed now.
  enum class Body { kLength, kChunked, kUntilClose } mode = Body::kUntilClose;
  uint64_t left = 0;
  if (head_.chunked) {
    mode = Body::kChunked;
    chunked_.reset();
  } else if (head_.content_length) {
    mode = Body::kLength;
    left = *head_.content_length;
  }
  const bool keep_alive = head_.keep_alive;
  meter.on_head(head_.status, is_event_stream(head_.find("content-type")));
  rbuf_.consume(pr.consumed);

  for (;;) {
    bool done = false;
    if (mode == Body::kLength) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(left, rbuf_.size()));
      bool ok = meter.on_body(rbuf_.view().substr(0, take), read_ns_);
      rbuf_.consume(take);
      left -= take;
      if (!ok) {
        close();
        co_return Outcome::kBadResponse;
      }
      done = left == 0;
    } else if (mode == Body::kChunked) {
      for (;;) {
        auto step = chunked_.decode(rbuf_.view());
        bool ok = !step.error && meter.on_body(step.data, read_ns_);
        rbuf_.consume(step.consumed);
        if (!ok) {
          close();
          co_return Outcome::kBadResponse;
        }
        if (step.done) {
          done = true;
          break;
        }
        if (step.consumed == 0 && step.data.empty()) break;
      }
    } else {
      bool ok = meter.on_body(rbuf_.view(), read_ns_);
      rbuf_.consume(rbuf_.size());
      if (!ok) {
        close();
        co_return Outcome::kBadResponse;
      }
    }
    if (done) break;
    bool got = co_await read_more();
    if (!got) {
      bool ended = mode == Body::kUntilClose && eof_;
      close();
      co_return ended ? Outcome::kOk : Outcome::kReset;
    }
  }
  // Bytes after the response were never asked for (no pipelining): the
  // connection is out of step, so it is not reused.
  if (!keep_alive || !rbuf_.empty()) close();
  co_return Outcome::kOk;
}

}  // namespace

std::unique_ptr<ClientConnection> make_h1_connection(const ConnectParams& p) {
  if (p.tls) return std::make_unique<H1Connection<TlsStream>>(p);
  return std::make_unique<H1Connection<tcp::socket>>(p);
}

}  // namespace sluice::bench
