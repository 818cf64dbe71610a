#include "upstream/pool.h"

#include <algorithm>

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

EndpointPool::EndpointPool(asio::any_io_executor ex, Target target, std::shared_ptr<asio::ssl::context> tls,
                           size_t max_idle, Health* health)
    : ex_(std::move(ex)), target_(std::move(target)), tls_(std::move(tls)), max_idle_(max_idle), health_(health) {}

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

std::unique_ptr<Connection> EndpointPool::create() {
  return std::make_unique<Connection>(ex_, tls_.get(), target_.tls ? target_.sni : std::string());
}

void EndpointPool::give_back(std::unique_ptr<Connection> c) {
  if (c && c->reusable() && idle_.size() < max_idle_) idle_.push_back({std::move(c), SteadyClock::mono_ns()});
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
    co_return Status(Errc::kUnavailable, "cannot resolve " + target_.host + ": " + rec.message());
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
