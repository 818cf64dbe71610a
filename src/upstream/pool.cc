#include "upstream/pool.h"

#include <algorithm>
#include <array>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/clock.h"

namespace sluice::upstream {

void Health::failure(int64_t now_ns) {
  uint32_t f = failures_.load(std::memory_order_relaxed) + 1;
  failures_.store(f, std::memory_order_relaxed);
  int64_t backoff_ms = std::min<int64_t>(30'000, 500LL << std::min<uint32_t>(f - 1, 6));
  down_until_ns_.store(now_ns + backoff_ms * 1'000'000, std::memory_order_relaxed);
}

void Health::success() {
  if (failures_.load(std::memory_order_relaxed) != 0) {
    failures_.store(0, std::memory_order_relaxed);
    down_until_ns_.store(0, std::memory_order_relaxed);
  }
}

namespace {

// An HTTP/1.1 request line, host, the fields, content-length.
std::string http1_head(const Request& r) {
  std::string h;
  h.reserve(512);
  h.append(r.method).append(" ").append(r.path).append(" HTTP/1.1\r\nhost: ").append(r.authority).append("\r\n");
  for (const auto& f : r.headers) h.append(f.name).append(": ").append(f.value).append("\r\n");
  if (!r.body.empty() || r.send_length) h.append("content-length: ").append(std::to_string(r.body.size())).append("\r\n");
  h.append("\r\n");
  return h;
}

// A request on an HTTP/1.1 connection of its own, returned to the pool when
// the response completed and the connection can carry another.
class H1Call final : public Call {
 public:
  H1Call(EndpointPool& pool, std::unique_ptr<Connection> c, bool reused)
      : pool_(pool), c_(std::move(c)), reused_(reused) {}
  ~H1Call() override {
    if (complete_) pool_.give_back(std::move(c_));
  }

  bool reused() const override { return reused_; }
  asio::awaitable<Status> connect() override {
    auto ep = co_await pool_.resolve();
    // (No co_await inside ?: — GCC 12 miscompiles temporaries there.)
    Status s = ep.has_value() ? Status::ok() : ep.status();
    if (s) s = co_await c_->connect(*ep);
    co_return s;
  }
  bool opened_connection() const override { return !reused_; }
  // These hand back the connection's own operations (no coroutine frame of
  // their own on the per-request path).
  asio::awaitable<Status> send(const Request& r) override {
    head_ = http1_head(r);
    bufs_ = {asio::buffer(head_), asio::buffer(r.body)};
    return c_->write(bufs_);
  }
  asio::awaitable<Status> read_head(bool request_was_head) override {
    std::string().swap(head_);  // sent: a long stream does not keep the request head
    return c_->read_head(request_was_head);
  }
  const http::ResponseHead& head() const override { return c_->head(); }
  asio::awaitable<Result<std::string_view>> read_body() override { return c_->read_body(); }
  bool body_buffered() const override { return c_->body_buffered(); }
  bool body_complete() const override { return c_->body_complete(); }
  void abort() override { c_->close(); }
  void complete() override { complete_ = true; }
  void arm_deadline(int64_t at_ns) override { c_->arm_deadline(at_ns); }
  void disarm_deadline() override { c_->disarm_deadline(); }
  bool deadline_expired() const override { return c_->deadline_expired(); }

 private:
  EndpointPool& pool_;
  std::unique_ptr<Connection> c_;
  std::string head_;
  std::array<asio::const_buffer, 2> bufs_;
  bool reused_;
  bool complete_ = false;
};

}  // namespace

EndpointPool::EndpointPool(asio::any_io_executor ex, Target target, std::shared_ptr<asio::ssl::context> tls,
                           size_t max_idle, Health* health)
    : ex_(std::move(ex)), target_(std::move(target)), tls_(std::move(tls)), max_idle_(max_idle), health_(health) {}

EndpointPool::~EndpointPool() {
  for (auto& c : h2_) c->close(Status(Errc::kCancelled, "shutting down"));
}

std::unique_ptr<Call> EndpointPool::open_call() {
  if (target_.protocol == Protocol::kHttp1) {
    if (auto c = take_idle()) return std::make_unique<H1Call>(*this, std::move(c), true);
    return std::make_unique<H1Call>(*this, create(), false);
  }
  // Connections that ended, or that go away and carry nothing more, leave.
  std::erase_if(h2_, [](const std::shared_ptr<H2Connection>& c) {
    if (c->usable()) return false;
    if (c->attached() == 0) c->close(Status::ok());
    return c->state() == H2Connection::State::kClosed;
  });
  H2Connection* pick = nullptr;
  for (auto& c : h2_)
    if (c->accepts_streams()) {
      pick = c.get();  // fill one connection before opening the next
      break;
    }
  if (!pick && h2_.size() >= target_.h2.max_connections) {
    for (auto& c : h2_)
      if (c->usable() && (!pick || c->attached() < pick->attached())) pick = c.get();
  }
  if (!pick) {
    h2_.push_back(std::make_shared<H2Connection>(ex_, tls_.get(), target_.tls ? target_.sni : std::string(),
                                                 target_.h2));
    pick = h2_.back().get();
  }
  return std::make_unique<H2Call>(pick->shared_from_this(), *this);
}

// A connection idle for less than this is reused without first checking
// (one syscall) that the upstream has not closed it: a keep-alive timeout is
// never that short, and the forwarder retries a reused connection that turns
// out closed before any response byte.
constexpr int64_t kTrustIdleNs = 1'000'000'000;

std::unique_ptr<Connection> EndpointPool::take_idle() {
  const int64_t now = SteadyClock::mono_ns();
  while (!idle_.empty()) {
    Idle it = std::move(idle_.back());
    idle_.pop_back();
    if (now - it.since_ns < kTrustIdleNs || it.conn->still_alive()) return std::move(it.conn);
  }
  return nullptr;
}

void EndpointPool::trim_idle(size_t keep) {
  if (idle_.size() <= keep) return;
  idle_.erase(idle_.begin(), idle_.end() - static_cast<ptrdiff_t>(keep));  // oldest first
}

std::unique_ptr<Connection> EndpointPool::create() {
  return std::make_unique<Connection>(ex_, tls_.get(), target_.tls ? target_.sni : std::string());
}

void EndpointPool::give_back(std::unique_ptr<Connection> c) {
  if (!c || !c->reusable() || idle_.size() >= max_idle_) return;
  c->release_buffer();  // an idle connection holds no read buffer
  idle_.push_back({std::move(c), SteadyClock::mono_ns()});
}

asio::awaitable<Result<tcp::endpoint>> EndpointPool::resolve() {
  int64_t now = SteadyClock::mono_ns();
  if (resolved_ && (now - resolved_at_ns_ < 30'000'000'000LL || resolved_at_ns_ == 0)) co_return *resolved_;
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(target_.host, ec);
  if (!ec) {
    resolved_ = tcp::endpoint(ip, target_.port);
    resolved_at_ns_ = 0;  // literal: never expires
    co_return *resolved_;
  }
  tcp::resolver resolver(ex_);
  auto [rec, results] = co_await resolver.async_resolve(target_.host, std::to_string(target_.port),
                                                        asio::as_tuple(asio::use_awaitable));
  if (rec || results.empty()) {
    if (resolved_) co_return *resolved_;  // keep using the last good answer
    co_return Status(Errc::kUnavailable, "cannot resolve the endpoint's host name: " + rec.message());
  }
  resolved_ = results.begin()->endpoint();
  resolved_at_ns_ = now;
  co_return *resolved_;
}

int pick_endpoint(const std::vector<EndpointPool*>& pools, int64_t now_ns, uint64_t& rr_state,
                  const std::vector<int>& exclude) {
  const int n = static_cast<int>(pools.size());
  if (n == 0) return -1;
  auto excluded = [&](int i) { return std::find(exclude.begin(), exclude.end(), i) != exclude.end(); };
  // The first two eligible endpoints from a rotating start are the two
  // choices. Two passes: healthy endpoints first; if none, any not yet tried.
  for (int pass = 0; pass < 2; ++pass) {
    int best = -1;
    int seen = 0;
    uint64_t start = rr_state++;
    for (int k = 0; k < n && seen < 2; ++k) {
      int i = static_cast<int>((start + static_cast<uint64_t>(k)) % static_cast<uint64_t>(n));
      if (excluded(i)) continue;
      if (pass == 0 && !pools[i]->health().up(now_ns)) continue;
      ++seen;
      if (best < 0 || pools[i]->in_flight < pools[best]->in_flight) best = i;
    }
    if (best >= 0) return best;
  }
  return -1;
}

}  // namespace sluice::upstream
