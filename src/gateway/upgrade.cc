// Binary upgrade with zero downtime (SIGUSR2, POST /admin/upgrade): the old
// process hands its listening sockets to the new binary, waits until it
// serves, then drains. See net/handover.h.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "gateway/gateway.h"
#include "net/listener.h"

namespace sluice::gateway {

namespace asio = boost::asio;
using namespace std::chrono_literals;

Result<std::unique_ptr<http::HttpListener>> Gateway::open_listener(const std::vector<asio::io_context*>& ctxs,
                                                                   const asio::ip::tcp::endpoint& ep,
                                                                   std::vector<int>& handed) {
  if (!handed.empty()) {
    const asio::ip::tcp::endpoint have = net::bound_endpoint(handed.front()).value_or(asio::ip::tcp::endpoint{});
    // The configuration may have moved the address meanwhile: then the old
    // sockets are not ours to serve (the old process drains them).
    if (have.address() == ep.address() && (ep.port() == 0 || have.port() == ep.port())) {
      auto l = http::HttpListener::adopt(ctxs, handed);
      handed.clear();
      return l;
    }
    for (int fd : handed) ::close(fd);
    handed.clear();
  }
  return http::HttpListener::open(ctxs, ep);
}

asio::awaitable<UpgradeOutcome> Gateway::upgrade(const char* why) {
  UpgradeOutcome out;
  auto fail = [&](std::string error) {
    out.error = std::move(error);
    main_metrics_->counter(fam_->upgrades, {"failed"}).inc();
    std::fprintf(stderr, "sluice: upgrade (%s) failed; this process keeps serving: %s\n", why, out.error.c_str());
    return out;
  };
  if (draining_) co_return fail("the gateway is draining");
  if (upgrading_) co_return fail("an upgrade is already under way");
  if (options_.executable.empty() || options_.argv.empty()) co_return fail("the binary's path is unknown");
  upgrading_ = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done{upgrading_};

  net::HandedSockets handed;
  handed.api = api_->native_handles();
  if (tls_listener_) handed.tls = tls_listener_->native_handles();
  handed.admin = admin_->native_handles();
  std::fprintf(stderr, "sluice: upgrade (%s): starting %s with the listening sockets\n", why,
               options_.executable.c_str());
  const net::SuccessorOutcome started =
      co_await net::start_successor(options_.executable, options_.argv, std::move(handed), options_.upgrade_timeout);
  out.pid = started.pid;
  if (!started.ready) co_return fail(started.error);
  main_metrics_->counter(fam_->upgrades, {"ok"}).inc();
  hand_over(("upgrade (" + std::string(why) + "): pid " + std::to_string(started.pid) + " serves now").c_str());
  out.ok = true;
  co_return out;
}

void Gateway::hand_over(const char* why) {
  if (draining_) return;
  std::fprintf(stderr, "sluice: %s; this process stops accepting and drains (up to %lld ms)\n", why,
               static_cast<long long>(settings_->server.drain_timeout.count()));
  // The admin socket is the new process's now too: probes and scrapes go there.
  admin_->close(0);
  asio::co_spawn(main_ctx_, drain_then_stop(this, &main_ctx_, settings_->server.drain_timeout), asio::detached);
}

}  // namespace sluice::gateway
