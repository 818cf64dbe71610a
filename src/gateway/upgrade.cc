// Binary upgrade with zero downtime (SIGUSR2, POST /admin/upgrade): the old
// process hands its listening sockets to the new binary, waits until it
// serves, then drains. See net/handover.h.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gateway/gateway.h"

namespace sluice::gateway {

namespace asio = boost::asio;
using namespace std::chrono_literals;

Result<std::unique_ptr<http::HttpListener>> Gateway::open_listener(const std::vector<asio::io_context*>& ctxs,
                                                                   const asio::ip::tcp::endpoint& ep,
                                                                   std::vector<int>& handed) {
  if (!handed.empty()) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    asio::ip::tcp::endpoint have;
    if (::getsockname(handed.front(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      have.resize(len);
      std::memcpy(have.data(), &ss, len);
    }
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

namespace {

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

enum class Heard { kReady, kGone, kTimedOut };

// Waits for "ready" on `fd` (the successor's pipe), up to `timeout`.
asio::awaitable<Heard> wait_ready(int fd, std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  auto ex = co_await asio::this_coro::executor;
  asio::posix::stream_descriptor pipe(ex, fd);
  asio::steady_timer timer(ex, timeout);
  char buf[16];
  std::string got;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (got.find('\n') == std::string::npos) {
    timer.expires_at(until);
    auto r = co_await (pipe.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable)) ||
                       timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (r.index() == 1) co_return Heard::kTimedOut;
    auto [ec, n] = std::get<0>(r);
    if (ec || n == 0) co_return Heard::kGone;  // the new process went away
    got.append(buf, n);
  }
  co_return got.starts_with("ready") ? Heard::kReady : Heard::kGone;
}

}  // namespace

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

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) co_return fail(std::string("pipe: ") + std::strerror(errno));
  net::HandedSockets handed;
  handed.api = api_->native_handles();
  if (tls_listener_) handed.tls = tls_listener_->native_handles();
  handed.admin = admin_->native_handles();
  handed.ready_fd = pipefd[1];
  std::fprintf(stderr, "sluice: upgrade (%s): starting %s with the listening sockets\n", why,
               options_.executable.c_str());
  auto pid = net::spawn_successor(options_.executable, options_.argv, handed);
  ::close(pipefd[1]);
  if (!pid) {
    ::close(pipefd[0]);
    co_return fail(pid.status().message());
  }
  out.pid = *pid;
  const Heard heard = co_await wait_ready(pipefd[0], options_.upgrade_timeout);  // closes pipefd[0]
  if (heard != Heard::kReady) {
    // Gone, or not ready in time: it must not serve beside us half-started.
    int status = 0;
    bool reaped = false;
    // One that closed the pipe is on its way out: a moment to exit by itself.
    for (int i = 0; i < (heard == Heard::kGone ? 100 : 0) && !reaped; ++i) {
      reaped = ::waitpid(*pid, &status, WNOHANG) == *pid;
      if (!reaped) co_await sleep_for(10ms);
    }
    const bool exited_by_itself = reaped;
    if (!reaped) ::kill(*pid, SIGKILL);
    for (int i = 0; i < 100 && !reaped; ++i) {
      reaped = ::waitpid(*pid, &status, WNOHANG) == *pid;
      if (!reaped) co_await sleep_for(10ms);
    }
    std::string what = "the new process (pid " + std::to_string(*pid) + ") ";
    if (exited_by_itself && WIFEXITED(status)) what += "exited with code " + std::to_string(WEXITSTATUS(status));
    else if (exited_by_itself && WIFSIGNALED(status)) what += "was killed by signal " + std::to_string(WTERMSIG(status));
    else if (heard == Heard::kGone) what += "closed its pipe without serving";
    else what += "did not report ready within " + std::to_string(options_.upgrade_timeout.count()) + " ms";
    co_return fail(what + " before it served");
  }
  main_metrics_->counter(fam_->upgrades, {"ok"}).inc();
  hand_over(("upgrade (" + std::string(why) + "): pid " + std::to_string(*pid) + " serves now").c_str());
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
