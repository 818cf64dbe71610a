#include "control/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "core/clock.h"
#include "core/json_escape.h"
#include "http/error_body.h"
#include "http/listener.h"
#include "net/deadline.h"
#include "net/listener.h"
#include "net/sleep.h"
#include "obs/metrics_merge.h"

namespace sluice::control {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using net::sleep_for;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr auto kScrapeEvery = 1000ms;
constexpr auto kScrapeTimeout = 1000ms;
// Crash loop: more than kCrashBurst deaths of one slot within kCrashWindow
// and its restarts back off (doubling, up to kMaxBackoff).
constexpr int kCrashBurst = 3;
constexpr int64_t kCrashWindowNs = 10'000'000'000;
constexpr int64_t kMaxBackoffMs = 5000;

std::string json_string(std::string_view v) {
  std::string out = "\"";
  json_escape_append(out, v);
  return out + "\"";
}

struct Slot {
  size_t index = 0;
  pid_t pid = 0;
  bool ready = false;
  uint16_t admin_port = 0;
  uint64_t restarts = 0;
  int64_t started_ns = 0;
  int64_t died_ns = 0;               // when the last one died (0: never)
  double last_restart_ms = -1;       // death -> replacement ready
  std::vector<int64_t> crashes_ns;   // recent deaths
};

class Supervisor {
 public:
  Supervisor(std::shared_ptr<const gateway::Settings> s, SupervisorOptions o)
      : settings_(std::move(s)), options_(std::move(o)), merger_(settings_->server.processes) {}

  Status start();
  int run();

  asio::awaitable<void> admin_handle(http::Exchange& ex);
  asio::awaitable<void> watch_ready(size_t slot, pid_t pid, int fd);
  asio::awaitable<void> restart_later(size_t slot, std::chrono::milliseconds delay);
  asio::awaitable<void> handle_signals();
  asio::awaitable<void> reap_children();
  asio::awaitable<void> scrape_periodically();
  asio::awaitable<void> scrape_all();
  asio::awaitable<void> drain_and_exit(const char* why);
  asio::awaitable<std::string> upgrade(const char* why);  // "" when it worked, else the reason

 private:
  Status open_sockets();
  void spawn(size_t slot);
  void child_exited(pid_t pid, int status);
  bool reload(const char* why, std::string& error);
  void forward(int sig);
  void maybe_report_ready();
  std::string own_metrics() const;

  std::shared_ptr<const gateway::Settings> settings_;
  SupervisorOptions options_;
  asio::io_context ctx_{1};
  uint32_t threads_ = 1;  // worker threads per worker process
  std::vector<int> api_fds_, tls_fds_;
  std::unique_ptr<http::HttpListener> admin_;
  http::ConnectionSet admin_connections_;
  http::ServerOptions admin_opts_;
  http::Handler admin_handler_;
  std::vector<Slot> slots_;
  obs::MetricsMerger merger_;
  std::string dir_;  // the workers' port files
  bool draining_ = false;
  bool reported_ready_ = false;
  uint16_t api_port_ = 0, tls_port_ = 0;
  uint64_t reloads_ok_ = 0, reloads_rejected_ = 0, upgrades_ok_ = 0, upgrades_failed_ = 0;
};

asio::awaitable<void> call_admin(Supervisor* s, http::Exchange& ex) { co_await s->admin_handle(ex); }

// N*W sockets on one address (SO_REUSEPORT), or the ones handed over.
Result<std::vector<int>> listening_sockets(const std::string& listen, size_t count, std::vector<int>& handed,
                                           uint16_t& port) {
  std::vector<int> fds;
  auto ep = net::parse_listen_address(listen);
  if (!ep) return ep.status();
  if (!handed.empty()) {
    fds = std::move(handed);
    handed.clear();
  } else if (ep->port() != 0) {
    if (Status s = net::check_port_free(*ep); !s) return s;
  }
  asio::io_context scratch;
  asio::ip::tcp::endpoint bind_ep = *ep;
  if (!fds.empty())
    if (auto have = net::bound_endpoint(fds.front())) bind_ep = *have;
  while (fds.size() < count) {
    auto acc = net::open_listener(scratch, bind_ep, /*reuse_port=*/true);
    if (!acc) return acc.status();
    if (bind_ep.port() == 0) bind_ep.port(acc->local_endpoint().port());
    fds.push_back(acc->release());
  }
  for (int fd : fds) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  port = bind_ep.port();
  return fds;
}

Status Supervisor::open_sockets() {
  const auto& sv = settings_->server;
  const size_t n = sv.processes;
  threads_ = sv.workers ? sv.workers : std::max<uint32_t>(1, std::thread::hardware_concurrency() / sv.processes);
  auto api = listening_sockets(sv.listen, n * threads_, options_.handed.api, api_port_);
  if (!api) return api.status();
  api_fds_ = std::move(*api);
  if (!sv.tls.listen.empty()) {
    auto tls = listening_sockets(sv.tls.listen, n * threads_, options_.handed.tls, tls_port_);
    if (!tls) return tls.status();
    tls_fds_ = std::move(*tls);
  }
  Result<std::unique_ptr<http::HttpListener>> admin = Status(Errc::kInvalid, "");
  if (!options_.handed.admin.empty()) {
    admin = http::HttpListener::adopt({&ctx_}, options_.handed.admin);
  } else {
    auto ep = net::parse_listen_address(sv.admin_listen);
    if (!ep) return ep.status();
    admin = http::HttpListener::open({&ctx_}, *ep);
  }
  if (!admin) return admin.status();
  admin_ = std::move(*admin);
  return Status::ok();
}

Status Supervisor::start() {
  if (Status s = open_sockets(); !s) return s;
  char tmpl[] = "/tmp/sluice-supervisor-XXXXXX";
  if (!::mkdtemp(tmpl)) return Status(Errc::kIo, std::string("mkdtemp: ") + std::strerror(errno));
  dir_ = tmpl;
  admin_opts_.idle_timeout_ms = 30'000;
  admin_handler_ = [this](http::Exchange& ex) { return call_admin(this, ex); };
  admin_->start(0, {&admin_handler_, &admin_opts_, nullptr, &admin_connections_});
  slots_.resize(settings_->server.processes);
  for (size_t i = 0; i < slots_.size(); ++i) {
    slots_[i].index = i;
    spawn(i);
  }
  std::fprintf(stderr, "sluice: supervisor (pid %d): %zu worker processes x %u threads on %s (port %u), admin on port %u\n",
               static_cast<int>(::getpid()), slots_.size(), threads_, settings_->server.listen.c_str(), api_port_,
               admin_->port());
  return Status::ok();
}

void Supervisor::spawn(size_t i) {
  Slot& s = slots_[i];
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "sluice: supervisor: pipe: %s\n", std::strerror(errno));
    return;
  }
  net::HandedSockets h;
  for (size_t j = i; j < api_fds_.size(); j += slots_.size()) h.api.push_back(api_fds_[j]);
  for (size_t j = i; j < tls_fds_.size(); j += slots_.size()) h.tls.push_back(tls_fds_[j]);
  h.ready_fd = p[1];
  std::vector<std::string> argv = options_.argv;
  argv.push_back(kWorkerProcessFlag);
  argv.push_back(std::to_string(i) + "," + std::to_string(slots_.size()) + "," + std::to_string(threads_) + "," + dir_);
  auto pid = net::spawn_successor(options_.executable, argv, h);
  ::close(p[1]);
  if (!pid) {
    ::close(p[0]);
    std::fprintf(stderr, "sluice: supervisor: cannot start worker process %zu: %s\n", i, pid.status().message().c_str());
    asio::co_spawn(ctx_, restart_later(i, 1000ms), asio::detached);
    return;
  }
  s.pid = *pid;
  s.ready = false;
  s.admin_port = 0;
  s.started_ns = SteadyClock::mono_ns();
  asio::co_spawn(ctx_, watch_ready(i, *pid, p[0]), asio::detached);
}

asio::awaitable<void> Supervisor::watch_ready(size_t i, pid_t pid, int fd) {
  asio::posix::stream_descriptor pipe(ctx_, fd);
  std::string got;
  char buf[16];
  while (got.find('\n') == std::string::npos) {
    auto [ec, n] = co_await pipe.async_read_some(asio::buffer(buf), kNoThrow);
    if (ec || n == 0) co_return;  // it died first: child_exited() handles it
    got.append(buf, n);
  }
  Slot& s = slots_[i];
  if (s.pid != pid) co_return;
  std::ifstream pf(dir_ + "/worker-" + std::to_string(i) + ".json");
  std::stringstream ss;
  ss << pf.rdbuf();
  const std::string text = ss.str();
  if (const size_t at = text.find("\"admin\":"); at != std::string::npos)
    s.admin_port = static_cast<uint16_t>(std::atoi(text.c_str() + at + 8));
  s.ready = true;
  if (s.died_ns) {
    s.last_restart_ms = static_cast<double>(SteadyClock::mono_ns() - s.died_ns) / 1e6;
    std::fprintf(stderr, "sluice: supervisor: worker process %zu is back (pid %d), %.1f ms after its predecessor died\n",
                 i, static_cast<int>(pid), s.last_restart_ms);
  }
  maybe_report_ready();
}

// Once every worker process serves for the first time: the port file, and a
// predecessor supervisor (an upgrade) is told.
void Supervisor::maybe_report_ready() {
  if (reported_ready_) return;
  for (const Slot& s : slots_)
    if (!s.ready) return;
  reported_ready_ = true;
  if (!options_.port_file.empty()) {
    const std::string tmp = options_.port_file + ".tmp";
    {
      std::ofstream f(tmp);
      f << "{\"api\":" << api_port_ << ",\"admin\":" << admin_->port() << ",\"tls\":" << tls_port_
        << ",\"pid\":" << ::getpid() << "}\n";
    }
    std::rename(tmp.c_str(), options_.port_file.c_str());
  }
  if (options_.handed.ready_fd >= 0) {
    net::report_ready(options_.handed.ready_fd);
    options_.handed.ready_fd = -1;
  }
  std::fprintf(stderr, "sluice: supervisor: all %zu worker processes serve\n", slots_.size());
}

void Supervisor::child_exited(pid_t pid, int status) {
  auto it = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& s) { return s.pid == pid; });
  if (it == slots_.end()) return;  // a successor supervisor that failed (upgrade() reports it)
  Slot& s = *it;
  const int64_t now = SteadyClock::mono_ns();
  s.pid = 0;
  s.ready = false;
  merger_.retire(s.index);  // its counters stay in the sum
  if (draining_) {
    bool all = std::all_of(slots_.begin(), slots_.end(), [](const Slot& x) { return x.pid == 0; });
    if (all) ctx_.stop();
    return;
  }
  s.died_ns = now;
  std::erase_if(s.crashes_ns, [&](int64_t t) { return now - t > kCrashWindowNs; });
  s.crashes_ns.push_back(now);
  ++s.restarts;
  const std::string how = WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                              : "exited with code " + std::to_string(WEXITSTATUS(status));
  const int burst = static_cast<int>(s.crashes_ns.size());
  const int64_t delay = burst <= kCrashBurst ? 0 : std::min<int64_t>(kMaxBackoffMs, 100LL << std::min(burst - kCrashBurst - 1, 10));
  std::fprintf(stderr, "sluice: supervisor: worker process %zu (pid %d) %s; restarting%s\n", s.index,
               static_cast<int>(pid), how.c_str(),
               delay ? (" in " + std::to_string(delay) + " ms (crash loop: " + std::to_string(burst) +
                        " deaths in 10 s)").c_str()
                     : "");
  if (delay == 0) spawn(s.index);
  else asio::co_spawn(ctx_, restart_later(s.index, std::chrono::milliseconds(delay)), asio::detached);
}

asio::awaitable<void> Supervisor::restart_later(size_t i, std::chrono::milliseconds delay) {
  co_await sleep_for(delay);
  if (!draining_ && slots_[i].pid == 0) spawn(i);
}

asio::awaitable<void> Supervisor::reap_children() {
  asio::signal_set sigchld(ctx_, SIGCHLD);
  for (;;) {
    // Reap first: a child may have died before the handler was installed.
    int status = 0;
    for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) child_exited(pid, status);
    auto [ec, sig] = co_await sigchld.async_wait(kNoThrow);
    if (ec) co_return;
  }
}

void Supervisor::forward(int sig) {
  for (const Slot& s : slots_)
    if (s.pid > 0) ::kill(s.pid, sig);
}

bool Supervisor::reload(const char* why, std::string& error) {
  auto loaded = options_.load_config ? options_.load_config() : Result<gateway::Settings>(Status(Errc::kInvalid, "no configuration to reload"));
  if (!loaded) {
    error = loaded.status().message();
    ++reloads_rejected_;
    std::fprintf(stderr, "sluice: supervisor: configuration reload (%s) rejected; no worker process reloads: %s\n", why,
                 error.c_str());
    return false;
  }
  ++reloads_ok_;
  std::fprintf(stderr, "sluice: supervisor: configuration reload (%s): valid; reloading %zu worker processes\n", why,
               slots_.size());
  forward(SIGHUP);
  return true;
}

asio::awaitable<void> Supervisor::drain_and_exit(const char* why) {
  if (draining_) co_return;
  draining_ = true;
  std::fprintf(stderr, "sluice: supervisor: %s: draining %zu worker processes\n", why, slots_.size());
  forward(SIGTERM);
  const auto deadline = settings_->server.drain_timeout + 5s;
  co_await sleep_for(std::chrono::duration_cast<std::chrono::milliseconds>(deadline));
  std::fprintf(stderr, "sluice: supervisor: worker processes still running after the drain: killing them\n");
  forward(SIGKILL);
  co_await sleep_for(500ms);
  ctx_.stop();
}

asio::awaitable<std::string> Supervisor::upgrade(const char* why) {
  if (draining_) co_return "the gateway is draining";
  net::HandedSockets h;
  h.api = api_fds_;
  h.tls = tls_fds_;
  h.admin = admin_->native_handles();
  std::fprintf(stderr, "sluice: supervisor: upgrade (%s): starting %s with the listening sockets\n", why,
               options_.executable.c_str());
  // The new supervisor reports ready once all its worker processes serve.
  const net::SuccessorOutcome started = co_await net::start_successor(options_.executable, options_.argv, std::move(h), 60s);
  if (!started.ready) {
    ++upgrades_failed_;
    std::fprintf(stderr, "sluice: supervisor: upgrade (%s) failed; this tree keeps serving: %s\n", why,
                 started.error.c_str());
    co_return started.error;
  }
  ++upgrades_ok_;
  admin_->close(0);
  asio::co_spawn(ctx_, drain_and_exit("upgraded: the new supervisor serves"), asio::detached);
  co_return "";
}

asio::awaitable<void> Supervisor::handle_signals() {
  asio::signal_set signals(ctx_, SIGHUP, SIGUSR1, SIGUSR2);
  signals.add(SIGTERM);
  signals.add(SIGINT);
  for (;;) {
    auto [ec, sig] = co_await signals.async_wait(kNoThrow);
    if (ec) co_return;
    std::string error;
    if (sig == SIGHUP) (void)reload("SIGHUP", error);
    else if (sig == SIGUSR1) forward(SIGUSR1);
    else if (sig == SIGUSR2) (void)co_await upgrade("SIGUSR2");
    else asio::co_spawn(ctx_, drain_and_exit(sig == SIGTERM ? "SIGTERM" : "SIGINT"), asio::detached);
  }
}

// One worker's /metrics over loopback (HTTP/1.1, connection: close).
asio::awaitable<std::string> fetch_metrics(asio::io_context& ctx, uint16_t port) {
  asio::ip::tcp::socket sock(ctx);
  net::Deadline deadline(ctx.get_executor(), [&sock] {
    boost::system::error_code ec;
    sock.close(ec);
  });
  deadline.arm_ms(std::chrono::duration_cast<std::chrono::milliseconds>(kScrapeTimeout).count());
  auto [cec] = co_await sock.async_connect({asio::ip::make_address("127.0.0.1"), port}, kNoThrow);
  if (cec) co_return "";
  static constexpr std::string_view kReq = "GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
  auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(kReq), kNoThrow);
  if (wec) co_return "";
  std::string data;
  char buf[16384];
  for (;;) {
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), kNoThrow);
    data.append(buf, n);
    if (ec) break;
  }
  const size_t body = data.find("\r\n\r\n");
  if (!data.starts_with("HTTP/1.1 200") || body == std::string::npos) co_return "";
  co_return data.substr(body + 4);
}

asio::awaitable<void> Supervisor::scrape_all() {
  for (Slot& s : slots_) {
    if (!s.ready || s.admin_port == 0) continue;
    const pid_t pid = s.pid;
    std::string text = co_await fetch_metrics(ctx_, s.admin_port);
    if (!text.empty() && s.pid == pid) merger_.update(s.index, text);
  }
}

asio::awaitable<void> Supervisor::scrape_periodically() {
  for (;;) {
    co_await sleep_for(std::chrono::duration_cast<std::chrono::milliseconds>(kScrapeEvery));
    co_await scrape_all();
  }
}

std::string Supervisor::own_metrics() const {
  std::string out;
  size_t live = 0;
  for (const Slot& s : slots_) live += s.ready;
  out += "# HELP sluice_worker_processes Worker processes serving (server.processes).\n"
         "# TYPE sluice_worker_processes gauge\nsluice_worker_processes " + std::to_string(live) + "\n";
  out += "# HELP sluice_worker_process_restarts_total Worker processes that died and were restarted, by slot.\n"
         "# TYPE sluice_worker_process_restarts_total counter\n";
  for (const Slot& s : slots_)
    out += "sluice_worker_process_restarts_total{slot=\"" + std::to_string(s.index) + "\"} " +
           std::to_string(s.restarts) + "\n";
  out += "# HELP sluice_supervisor_config_reloads_total Reloads the supervisor validated, by result.\n"
         "# TYPE sluice_supervisor_config_reloads_total counter\n"
         "sluice_supervisor_config_reloads_total{result=\"ok\"} " + std::to_string(reloads_ok_) + "\n"
         "sluice_supervisor_config_reloads_total{result=\"rejected\"} " + std::to_string(reloads_rejected_) + "\n";
  out += "# HELP sluice_supervisor_upgrades_total Upgrades of the whole process tree, by result.\n"
         "# TYPE sluice_supervisor_upgrades_total counter\n"
         "sluice_supervisor_upgrades_total{result=\"ok\"} " + std::to_string(upgrades_ok_) + "\n"
         "sluice_supervisor_upgrades_total{result=\"failed\"} " + std::to_string(upgrades_failed_) + "\n";
  return out;
}

asio::awaitable<void> Supervisor::admin_handle(http::Exchange& ex) {
  const std::string_view path = ex.request().path();
  const std::string_view method = ex.request().method;
  std::array<http::Header, 1> json{{{"content-type", "application/json"}}};
  bool any_ready = false;
  for (const Slot& s : slots_) any_ready = any_ready || s.ready;
  if (path == "/healthz") {
    (void)co_await ex.respond(200, json, "{\"status\":\"ok\"}\n");
  } else if (path == "/readyz") {
    const bool ok = any_ready && !draining_;
    (void)co_await ex.respond(ok ? 200 : 503, json,
                              ok ? "{\"status\":\"ready\"}\n"
                                 : draining_ ? "{\"status\":\"draining\"}\n" : "{\"status\":\"no worker process serves\"}\n");
  } else if (path == "/metrics") {
    co_await scrape_all();
    std::string body = merger_.render() + own_metrics();
    std::array<http::Header, 1> text{{{"content-type", "text/plain; version=0.0.4; charset=utf-8"}}};
    (void)co_await ex.respond(200, text, body);
  } else if (path == "/admin/workers") {
    std::string body = "{\"supervisor\":" + std::to_string(::getpid()) + ",\"threads\":" + std::to_string(threads_) +
                       ",\"workers\":[";
    for (const Slot& s : slots_) {
      body += (s.index ? "," : "") + std::string("{\"slot\":") + std::to_string(s.index) +
              ",\"pid\":" + std::to_string(s.pid) + ",\"ready\":" + (s.ready ? "true" : "false") +
              ",\"restarts\":" + std::to_string(s.restarts) + ",\"last_restart_ms\":" +
              (s.last_restart_ms < 0 ? std::string("null") : std::to_string(s.last_restart_ms)) + "}";
    }
    body += "]}\n";
    (void)co_await ex.respond(200, json, body);
  } else if (path == "/admin/reload" || path == "/admin/upgrade") {
    if (method != "POST") {
      std::array<http::Header, 2> allow{{{"content-type", "application/json"}, {"allow", "POST"}}};
      (void)co_await ex.respond(405, allow, http::error_body("use POST", "invalid_request_error", "method_not_allowed"));
      co_return;
    }
    if (path == "/admin/reload") {
      std::string error;
      const bool ok = reload("POST /admin/reload", error);
      // (Bodies are built before co_await: GCC 12 miscompiles temporaries of ?: there.)
      std::string body;
      if (ok) body = "{\"status\":\"reloaded\",\"workers\":" + std::to_string(slots_.size()) + "}\n";
      else body = "{\"status\":\"rejected\",\"error\":" + json_string(error) + "}\n";
      (void)co_await ex.respond(ok ? 200 : 400, json, body);
    } else {
      const std::string error = co_await upgrade("POST /admin/upgrade");
      std::string body = "{\"status\":\"upgraded\"}\n";
      if (!error.empty()) body = "{\"status\":\"failed\",\"error\":" + json_string(error) + "}\n";
      (void)co_await ex.respond(error.empty() ? 200 : 500, json, body);
    }
  } else {
    (void)co_await ex.respond(404, json, http::error_body("unknown admin path", "invalid_request_error", "not_found"));
  }
}

int Supervisor::run() {
  asio::co_spawn(ctx_, reap_children(), asio::detached);
  asio::co_spawn(ctx_, handle_signals(), asio::detached);
  asio::co_spawn(ctx_, scrape_periodically(), asio::detached);
  ctx_.run();
  // Workers gone (or killed): their port files go too.
  for (const Slot& s : slots_) std::remove((dir_ + "/worker-" + std::to_string(s.index) + ".json").c_str());
  ::rmdir(dir_.c_str());
  std::fprintf(stderr, "sluice: supervisor: stopped\n");
  return 0;
}

}  // namespace

int run_supervisor(std::shared_ptr<const gateway::Settings> settings, SupervisorOptions options) {
  // SIGCHLD and the forwarded signals are taken by the io_context's signal_set.
  Supervisor sup(std::move(settings), std::move(options));
  if (Status s = sup.start(); !s) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return 1;
  }
  return sup.run();
}

}  // namespace sluice::control
