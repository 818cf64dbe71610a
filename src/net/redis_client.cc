#include "net/redis_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/clock.h"

namespace sluice::net {

namespace asio = boost::asio;

namespace {

RedisReply convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      break;
  }
  return out;
}

// One command in flight. The hiredis callback and the waiting coroutine both
// hold it; whichever comes second finds the other's mark.
struct Call {
  explicit Call(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  bool done = false;
  Result<RedisReply> result = Status(Errc::kUnavailable, "redis: connection lost");
};

}  // namespace

struct RedisClient::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor e, Options o) : ex(std::move(e)), opts(std::move(o)), sd(ex) {}

  asio::any_io_executor ex;
  Options opts;
  redisAsyncContext* ac = nullptr;
  asio::posix::stream_descriptor sd;
  bool connected = false;
  bool reading = false, writing = false;
  bool read_armed = false, write_armed = false;
  int64_t last_attempt_ns = 0;

  void connect() {
    last_attempt_ns = SteadyClock::mono_ns();
    ac = redisAsyncConnect(opts.host.c_str(), opts.port);
    if (!ac) return;
    if (ac->err) {
      redisAsyncFree(ac);
      ac = nullptr;
      return;
    }
    ac->data = this;
    ac->ev.data = this;
    ac->ev.addRead = [](void* p) { static_cast<Impl*>(p)->want(true, true); };
    ac->ev.delRead = [](void* p) { static_cast<Impl*>(p)->reading = false; };
    ac->ev.addWrite = [](void* p) { static_cast<Impl*>(p)->want(false, true); };
    ac->ev.delWrite = [](void* p) { static_cast<Impl*>(p)->writing = false; };
    ac->ev.cleanup = [](void* p) { static_cast<Impl*>(p)->detach(); };
    redisAsyncSetConnectCallback(ac, [](const redisAsyncContext* c, int status) {
      auto* self = static_cast<Impl*>(c->data);
      self->connected = status == REDIS_OK;
    });
    redisAsyncSetDisconnectCallback(ac, [](const redisAsyncContext* c, int) {
      static_cast<Impl*>(c->data)->connected = false;
    });
    boost::system::error_code ec;
    sd.assign(ac->c.fd, ec);
  }

  // The context is going away (hiredis frees it and closes the descriptor):
  // stop waiting on the descriptor without closing it ourselves.
  void detach() {
    connected = false;
    reading = writing = false;
    boost::system::error_code ec;
    sd.cancel(ec);
    if (sd.is_open()) (void)sd.release();
    ac = nullptr;
  }

  void want(bool read, bool on) {
    (read ? reading : writing) = on;
    arm(read);
  }

  void arm(bool read) {
    bool& armed = read ? read_armed : write_armed;
    if (armed || !ac || !sd.is_open()) return;
    armed = true;
    sd.async_wait(read ? asio::posix::descriptor_base::wait_read : asio::posix::descriptor_base::wait_write,
                  [self = shared_from_this(), read](const boost::system::error_code& ec) {
                    (read ? self->read_armed : self->write_armed) = false;
                    if (ec || !self->ac) return;
                    if (read && self->reading) redisAsyncHandleRead(self->ac);
                    if (!read && self->writing) redisAsyncHandleWrite(self->ac);
                    // The handler may have freed the context (a disconnect).
                    if (self->ac && (read ? self->reading : self->writing)) self->arm(read);
                  });
  }

  // Frees the context: pending commands fail (their callbacks see no
  // reply), cleanup() cancels the waits, which then let go of this object.
  void close() {
    if (ac) redisAsyncFree(ac);
  }
};

RedisClient::RedisClient(asio::any_io_executor ex, Options o)
    : impl_(std::make_shared<Impl>(std::move(ex), std::move(o))) {}

RedisClient::~RedisClient() { impl_->close(); }

bool RedisClient::connected() const { return impl_->connected; }

asio::awaitable<Result<RedisReply>> RedisClient::command(std::vector<std::string> argv, int64_t timeout_ms) {
  Impl& im = *impl_;
  if (!im.ac) {
    if (SteadyClock::mono_ns() - im.last_attempt_ns < im.opts.reconnect_interval_ms * 1'000'000)
      co_return Status(Errc::kUnavailable, "redis: not connected");
    im.connect();
    if (!im.ac) co_return Status(Errc::kUnavailable, "redis: cannot connect");
  }
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto call = std::make_shared<Call>(im.ex);
  auto* holder = new std::shared_ptr<Call>(call);
  const int rc = redisAsyncCommandArgv(
      im.ac,
      [](redisAsyncContext*, void* r, void* priv) {
        std::unique_ptr<std::shared_ptr<Call>> h(static_cast<std::shared_ptr<Call>*>(priv));
        Call& c = **h;
        if (c.done) return;  // the caller gave up already
        c.done = true;
        if (r) c.result = convert(static_cast<redisReply*>(r));
        c.timer.cancel();
      },
      holder, static_cast<int>(args.size()), args.data(), lens.data());
  if (rc != REDIS_OK) {
    delete holder;
    co_return Status(Errc::kUnavailable, "redis: the connection is closing");
  }
  call->timer.expires_after(std::chrono::milliseconds(timeout_ms));
  (void)co_await call->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!call->done) {
    call->done = true;
    co_return Status(Errc::kTimeout, "redis: no reply within " + std::to_string(timeout_ms) + " ms");
  }
  co_return std::move(call->result);
}

}  // namespace sluice::net
