#include "upstream/connection.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/ssl.h>

#include "net/direct_io.h"

namespace sluice::upstream {
namespace {
constexpr size_t kReadChunk = 4096;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
const http::h1::Limits kResponseLimits{64 * 1024, 256};
}  // namespace

Connection::Connection(asio::any_io_executor ex, asio::ssl::context* tls, std::string sni)
    : io_(ex, tls, std::move(sni)), deadline_(ex, [this] { close(); }) {}

Connection::~Connection() { close(); }

void Connection::close() {
  open_ = false;
  reusable_ = false;
  io_.close();
}

bool Connection::still_alive() {
  if (!open_) return false;
  char c;
  ssize_t n = ::recv(io_.lowest().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;  // peer closed
  if (n > 0) return false;   // unexpected bytes on an idle connection: not safe to reuse
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

asio::awaitable<Status> Connection::connect(const tcp::endpoint& ep) {
  Status s = co_await io_.connect(ep);
  open_ = s.is_ok();
  co_return s;
}

asio::awaitable<Status> Connection::write(std::span<const asio::const_buffer> bufs) {
  reusable_ = false;
  more_likely_ = false;  // the answer is not there yet: wait for it first
  ++requests_;
  boost::system::error_code ec;
  if (io_.tls()) {
    std::tie(ec, std::ignore) = co_await io_.write(bufs);
  } else {
    // Sent at once when the socket takes it all (no operation, no scheduler turn).
    size_t sent = 0;
    if (!net::try_send(io_.lowest().native_handle(), bufs, sent, ec) && !ec)
      ec = co_await net::finish_send(io_.lowest(), bufs, sent);
  }
  if (ec) {
    close();
    co_return Status(Errc::kClosed, "upstream write: " + ec.message());
  }
  co_return Status::ok();
}

asio::awaitable<Result<size_t>> Connection::read_some() {
  boost::system::error_code ec;
  size_t n = 0;
  if (io_.tls()) {
    char* p = rbuf_.prepare(kReadChunk);
    std::tie(ec, n) = co_await io_.read_some(asio::buffer(p, rbuf_.writable()));
    if (!ec) rbuf_.commit(n);
  } else {
    // Plain TCP: wait for bytes holding no buffer (an idle stream between two
    // events holds none), then take what is there without blocking. A read
    // that filled the buffer likely left more behind: that one is tried
    // before waiting again. (Same system calls as a reactor read: a
    // readiness wait instead of the read that finds nothing.)
    for (;;) {
      if (more_likely_ && inline_reads_ < net::kMaxInlineReads) {
        n = net::try_recv_into(io_.lowest().native_handle(), rbuf_, kReadChunk, more_likely_, ec);
        if (n > 0 || ec) {
          ++inline_reads_;
          break;
        }
      }
      rbuf_.release_if_empty();
      inline_reads_ = 0;
      auto [wec] = co_await io_.lowest().async_wait(tcp::socket::wait_read, kNoThrow);
      if (wec) {
        ec = wec;
        break;
      }
      more_likely_ = true;
    }
  }
  if (ec) {
    bool eof = is_eof(ec);
    open_ = open_ && eof;  // an orderly EOF still lets a close-delimited body end cleanly
    if (!eof) close();
    co_return Status(eof ? Errc::kClosed : Errc::kIo, ec.message());
  }
  co_return n;
}

asio::awaitable<Status> Connection::read_head(bool request_was_head) {
  for (;;) {
    if (!rbuf_.empty()) {
      head_.headers.clear();
      auto pr = http::h1::parse_response_head(rbuf_.view(), head_, kResponseLimits, request_was_head);
      if (pr.state == http::h1::ParseState::kError) {
        close();
        co_return Status(Errc::kInvalid, "bad upstream response: " + std::string(pr.error));
      }
      if (pr.state == http::h1::ParseState::kComplete) {
        if (head_.status >= 100 && head_.status < 200 && head_.status != 101) {
          rbuf_.consume(pr.consumed);  // interim response (100 Continue): skip
          continue;
        }
        head_storage_.assign(rbuf_.data(), pr.consumed);
        http::rebase(head_, rbuf_.data(), head_storage_.data());
        rbuf_.consume(pr.consumed);
        if (head_.chunked) {
          chunked_.reset();
          body_ = Body::kChunked;
        } else if (head_.content_length) {
          body_left_ = *head_.content_length;
          body_ = body_left_ ? Body::kLength : Body::kDone;
        } else {
          body_ = Body::kUntilClose;
        }
        if (body_ == Body::kDone) reusable_ = head_.keep_alive && rbuf_.empty();
        co_return Status::ok();
      }
    }
    auto r = co_await read_some();
    if (!r) {
      close();
      co_return Status(r.status().code() == Errc::kClosed ? Errc::kClosed : Errc::kIo,
                       "upstream closed before responding: " + r.status().message());
    }
  }
}

asio::awaitable<Result<std::string_view>> Connection::read_body() {
  for (;;) {
    switch (body_) {
      case Body::kNone:
      case Body::kDone:
        co_return std::string_view{};
      case Body::kLength:
        if (!rbuf_.empty()) {
          size_t take = std::min<uint64_t>(body_left_, rbuf_.size());
          std::string_view out(rbuf_.data(), take);
          rbuf_.consume(take);
          body_left_ -= take;
          if (body_left_ == 0) {
            body_ = Body::kDone;
            reusable_ = head_.keep_alive && rbuf_.empty();
          }
          co_return out;
        }
        break;
      case Body::kChunked:
        while (!rbuf_.empty()) {
          auto st = chunked_.decode(rbuf_.view());
          if (st.error) {
            close();
            co_return Status(Errc::kInvalid, "bad chunked upstream body: " + std::string(st.error_msg));
          }
          rbuf_.consume(st.consumed);
          if (st.done) {
            body_ = Body::kDone;
            reusable_ = head_.keep_alive && rbuf_.empty();
          }
          if (!st.data.empty()) co_return gather_chunks(st.data);
          if (st.done) co_return std::string_view{};
          if (st.consumed == 0) break;  // needs more bytes
        }
        break;
      case Body::kUntilClose:
        if (!rbuf_.empty()) {
          std::string_view out(rbuf_.data(), rbuf_.size());
          rbuf_.consume(out.size());
          co_return out;
        }
        break;
    }
    auto r = co_await read_some();
    if (!r) {
      if (body_ == Body::kUntilClose && r.status().code() == Errc::kClosed) {
        body_ = Body::kDone;
        close();
        co_return std::string_view{};
      }
      close();
      co_return Status(r.status().code() == Errc::kClosed ? Errc::kClosed : Errc::kIo,
                       "upstream body incomplete: " + r.status().message());
    }
  }
}

std::string_view Connection::gather_chunks(std::string_view first) {
  // Each later payload moves down over the chunk framing already consumed
  // before it, so the pieces become one run of bytes behind `first`.
  char* const base = const_cast<char*>(first.data());
  size_t len = first.size();
  while (!rbuf_.empty() && body_ == Body::kChunked) {
    auto st = chunked_.decode(rbuf_.view());
    if (st.error || (st.consumed == 0 && st.data.empty())) break;  // an error shows on the next read_body()
    if (!st.data.empty()) {
      std::memmove(base + len, st.data.data(), st.data.size());
      len += st.data.size();
    }
    rbuf_.consume(st.consumed);
    if (st.done) {
      body_ = Body::kDone;
      reusable_ = head_.keep_alive && rbuf_.empty();
    }
  }
  return {base, len};
}

Result<std::shared_ptr<asio::ssl::context>> make_client_tls_context(bool verify, const std::string& ca_file,
                                                                    bool h2) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  if (h2) {
    static constexpr unsigned char kH2[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(ctx->native_handle(), kH2, sizeof kH2);
  }
  if (verify) {
    ctx->set_verify_mode(asio::ssl::verify_peer, ec);
    if (ca_file.empty()) ctx->set_default_verify_paths(ec);
    else ctx->load_verify_file(ca_file, ec);
    if (ec) return Status(Errc::kInvalid, "TLS trust store" + (ca_file.empty() ? std::string() : " " + ca_file) +
                                              ": " + ec.message());
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none, ec);
  }
  return ctx;
}

}  // namespace sluice::upstream
