#pragma once
// Socket I/O that goes to the kernel first and to the reactor only to wait.
//
// Asio's async_read_some/async_write on a reactor socket try the system call
// at once too, but always complete through the scheduler (a queued handler
// and a later resumption of the coroutine, even when the call succeeded), and
// async_write keeps a 64-entry buffer array (1 KiB) in every operation. On the
// forward path almost every send succeeds at once and almost every read after
// a readiness event finds its bytes: here those complete inline, with no
// operation at all, and the coroutine waits (async_wait, which holds no
// buffer) only when the kernel says EAGAIN. Plain TCP only: TLS goes through
// its engine.

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <span>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/flat_buffer.h"

namespace sluice::net {

namespace asio = boost::asio;

// One non-blocking recv into [p, p + n). Returns the bytes read (> 0); 0 with
// `ec` = eof at end of stream; 0 with `ec` clear when nothing is there yet
// (EAGAIN); 0 with `ec` set on an error.
inline size_t try_recv(int fd, char* p, size_t n, boost::system::error_code& ec) {
  ec.clear();
  for (;;) {
    ssize_t got = ::recv(fd, p, n, MSG_DONTWAIT);
    if (got > 0) return static_cast<size_t>(got);
    if (got == 0) {
      ec = asio::error::eof;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) ec.assign(errno, boost::system::system_category());
    return 0;
  }
}

// One non-blocking read into `buf` (at least `chunk` bytes of room). Returns
// the bytes read; sets `full` when they filled the room (more is likely
// waiting). 0 as for try_recv (EAGAIN with `ec` clear, or eof/error).
inline size_t try_recv_into(int fd, FlatBuffer& buf, size_t chunk, bool& full, boost::system::error_code& ec) {
  char* p = buf.prepare(chunk);
  const size_t room = buf.writable();
  const size_t n = try_recv(fd, p, room, ec);
  buf.commit(n);
  full = n == room;
  return n;
}

// Sends what the socket takes now of `bufs` past the first `sent` bytes
// (advanced). True when everything is sent; false with `ec` clear when the
// socket is full (wait for writability), or with `ec` set on an error.
inline bool try_send(int fd, std::span<const asio::const_buffer> bufs, size_t& sent,
                     boost::system::error_code& ec) {
  ec.clear();
  constexpr size_t kMaxIov = 16;
  for (;;) {
    iovec iov[kMaxIov];
    size_t n = 0;
    size_t skip = sent;
    for (const auto& b : bufs) {
      if (skip >= b.size()) {
        skip -= b.size();
        continue;
      }
      if (n == kMaxIov) break;
      iov[n].iov_base = const_cast<char*>(static_cast<const char*>(b.data())) + skip;
      iov[n].iov_len = b.size() - skip;
      skip = 0;
      ++n;
    }
    if (n == 0) return true;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ssize_t got = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (got >= 0) {
      sent += static_cast<size_t>(got);
      continue;  // partly sent: the loop finds the rest (or that it is all out)
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) ec.assign(errno, boost::system::system_category());
    return false;
  }
}

// The rest of a send that try_send() could not finish (`ec` clear): waits for
// writability and sends, until all of `bufs` is out. Returns the error, if any.
inline asio::awaitable<boost::system::error_code> finish_send(asio::ip::tcp::socket& sock,
                                                              std::span<const asio::const_buffer> bufs,
                                                              size_t sent) {
  boost::system::error_code ec;
  do {
    auto [wec] = co_await sock.async_wait(asio::ip::tcp::socket::wait_write, asio::as_tuple(asio::use_awaitable));
    if (wec) co_return wec;
  } while (!try_send(sock.native_handle(), bufs, sent, ec) && !ec);
  co_return ec;
}

// After this many reads in a row that found their bytes without waiting, a
// reader waits once through the reactor anyway, so a connection that always
// has bytes cannot keep its worker from the others.
inline constexpr int kMaxInlineReads = 16;

}  // namespace sluice::net
