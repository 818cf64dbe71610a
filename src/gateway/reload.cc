// Configuration reload (SIGHUP, a change of the file, POST /admin/reload) and
// log reopening (SIGUSR1): the parts of the gateway that change what runs
// without a restart.
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/clock.h"
#include "gateway/gateway.h"
#include "net/listener.h"

namespace sluice::gateway {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

bool tls_options_changed(const Settings& a, const Settings& b) {
  const ServerTls &ta = a.server.tls, &tb = b.server.tls;
  return ta.certificates != tb.certificates || ta.tls12 != tb.tls12 || ta.session_tickets != tb.session_tickets ||
         a.server.http2 != b.server.http2;
}

// Changes a reload notes but does not apply: they need a restart (or an
// upgrade, which is one without downtime).
std::vector<std::string> restart_only_changes(const Settings& a, const Settings& b) {
  std::vector<std::string> out;
  auto note = [&](bool changed, const char* key) {
    if (changed) out.push_back(std::string(key) + " changed: takes effect at the next restart or upgrade");
  };
  const ServerTls &ta = a.server.tls, &tb = b.server.tls;
  note(a.server.workers != b.server.workers, "server.workers");
  note(a.server.admin_listen != b.server.admin_listen, "server.admin_listen");
  note(a.server.access_log != b.server.access_log, "server.access_log");
  note(a.server.max_connections != b.server.max_connections, "server.max_connections");
  // The TLS listener moves, comes and goes with a reload; new options on the
  // same address need new sockets there, hence a restart.
  note(ta.listen == tb.listen && !ta.listen.empty() && tls_options_changed(a, b), "server.tls (on the same address)");
  note(ta.reload_check != tb.reload_check, "server.tls.reload_check");
  note(a.admission.audit_log != b.admission.audit_log, "admission.audit_log");
  note(a.admission.memory.sample != b.admission.memory.sample, "admission.memory.sample");
  note(a.admission.memory.stop_accepting != b.admission.memory.stop_accepting, "admission.memory.stop_accepting");
  note(a.limits_state_file != b.limits_state_file, "limits.state_file");
  return out;
}

asio::awaitable<void> adopt_on_worker(WorkerContext* w, std::shared_ptr<const Generation> g) {
  w->adopt(std::move(g));
  co_return;
}

}  // namespace

size_t Gateway::file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return 0;
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::hash<std::string>{}(ss.str()) | 1;  // 0 means "could not read"
}

// The embedded mock model's listener (127.0.0.1, a port of its own), on
// every worker; started when a configuration first routes to builtin:mock.
Status Gateway::start_mock() {
  if (!options_.builtin_backend) return Status(Errc::kInvalid, "builtin:mock is not available in this build");
  auto m = http::HttpListener::open(worker_ctxs(), asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  if (!m) return m.status();
  mock_ = std::move(*m);
  mock_opts_.idle_timeout_ms = 300'000;
  mock_opts_.write_stall_ms = 300'000;
  for (size_t i = 0; i < workers_.size(); ++i) {
    mock_connections_.push_back(std::make_unique<http::ConnectionSet>());
    const http::ServeContext sc{&options_.builtin_backend, &mock_opts_, nullptr, mock_connections_.back().get()};
    if (started_) asio::post(workers_.at(i).ctx(), [l = mock_.get(), i, sc] { l->start(i, sc); });
    else mock_->start(i, sc);
  }
  return Status::ok();
}

std::vector<asio::io_context*> Gateway::worker_ctxs() {
  std::vector<asio::io_context*> ctxs;
  for (size_t i = 0; i < workers_.size(); ++i) ctxs.push_back(&workers_.at(i).ctx());
  return ctxs;
}

Result<std::unique_ptr<http::HttpListener>> Gateway::open_worker_listener(const std::string& listen) {
  auto ep = net::parse_listen_address(listen);
  if (!ep) return ep.status();
  return http::HttpListener::open(worker_ctxs(), *ep);
}

// On each worker: accepting on the new listener first, then no longer on the
// old one (either may be null); connections already open stay where they are.
void Gateway::switch_listener(http::HttpListener* next, http::HttpListener* old, const net::TlsServer* tls) {
  for (size_t i = 0; i < workers_.size(); ++i) {
    WorkerContext& w = *contexts_[i];
    const http::ServeContext sc{&w.handler, &w.server_opts, &w, &w.connections, tls};
    asio::post(workers_.at(i).ctx(), [next, old, i, sc] {
      if (next) next->start(i, sc);
      if (old) old->close(i);
    });
  }
}

ReloadOutcome Gateway::reload(const char* why) {
  ReloadOutcome out;
  out.generation = gen_->id;
  auto reject = [&](std::string error) {
    out.error = std::move(error);
    main_metrics_->counter(fam_->config_reloads, {"rejected"}).inc();
    std::fprintf(stderr, "sluice: configuration reload (%s) rejected; generation %llu keeps running: %s\n", why,
                 static_cast<unsigned long long>(gen_->id), out.error.c_str());
    return out;
  };
  if (draining_) return reject("the gateway is draining");
  if (!options_.load_config) return reject("this gateway has no configuration source to reload");
  if (!options_.config_path.empty()) config_hash_ = file_hash(options_.config_path);
  auto loaded = options_.load_config();
  if (!loaded) return reject(loaded.status().message());
  auto next = std::make_shared<const Settings>(std::move(*loaded));
  // Held: once published, the workers may drop the old snapshot at any time.
  const std::shared_ptr<const Settings> old_settings = settings_;
  const Settings& old = *old_settings;
  out.notes = restart_only_changes(old, *next);

  if (next->uses_builtin_mock() && !mock_)
    if (Status st = start_mock(); !st) return reject(st.message());
  auto gen = make_generation(next, gen_.get(), mock_ ? mock_->port() : 0, &shedding_, options_.process_count);
  if (!gen) return reject(gen.status().message());

  // A new address is bound before anything changes: a port in use rejects
  // the whole reload.
  std::unique_ptr<http::HttpListener> moved_api;
  if (next->server.listen != old.server.listen && options_.fixed_listeners) {
    out.notes.push_back("server.listen changed: takes effect when the supervisor restarts or upgrades "
                        "(worker processes serve its sockets)");
  } else if (next->server.listen != old.server.listen) {
    auto l = open_worker_listener(next->server.listen);
    if (!l) return reject("server.listen: " + l.status().message());
    moved_api = std::move(*l);
  }

  // The TLS listener added, removed or moved (with a new TLS server when its
  // options changed too).
  std::unique_ptr<http::HttpListener> moved_tls;
  std::unique_ptr<net::TlsServer> new_tls_server;
  const bool tls_moves = next->server.tls.listen != old.server.tls.listen && !options_.fixed_listeners;
  if (next->server.tls.listen != old.server.tls.listen && options_.fixed_listeners)
    out.notes.push_back("server.tls.listen changed: takes effect when the supervisor restarts or upgrades");
  if (tls_moves && !next->server.tls.listen.empty()) {
    if (!tls_ || tls_options_changed(old, *next)) {
      auto t = make_tls_server(*next);
      if (!t) return reject("server.tls: " + t.status().message());
      new_tls_server = std::move(*t);
    }
    auto l = open_worker_listener(next->server.tls.listen);
    if (!l) return reject("server.tls.listen: " + l.status().message());
    moved_tls = std::move(*l);
  }

  // Published: new requests take the new generation as each worker adopts
  // it; running ones finish on theirs.
  gen_ = std::move(*gen);
  settings_ = next;
  for (size_t i = 0; i < workers_.size(); ++i)
    asio::co_spawn(workers_.at(i).ctx(), adopt_on_worker(contexts_[i].get(), gen_), asio::detached);
  if (moved_api) {
    switch_listener(moved_api.get(), api_.get(), nullptr);
    retired_listeners_.push_back(std::move(api_));
    api_ = std::move(moved_api);
    out.notes.push_back("now listening on " + next->server.listen + " (port " + std::to_string(api_->port()) + ")");
    if (!options_.port_file.empty()) (void)write_port_file();
  }
  if (tls_moves) {
    if (new_tls_server) {
      if (tls_) retired_tls_.push_back(std::move(tls_));
      tls_ = std::move(new_tls_server);
    }
    switch_listener(moved_tls.get(), tls_listener_.get(), tls_.get());
    if (tls_listener_) retired_listeners_.push_back(std::move(tls_listener_));
    tls_listener_ = std::move(moved_tls);
    out.notes.push_back(tls_listener_ ? "TLS now on " + next->server.tls.listen + " (port " +
                                            std::to_string(tls_listener_->port()) + ")"
                                      : std::string("the TLS listener is closed"));
    if (!options_.port_file.empty()) (void)write_port_file();
  } else if (tls_) {
    reload_certificates(why);
  }
  const MemoryShedding &ma = old.admission.memory, &mb = next->admission.memory;
  if (ma.limit != mb.limit || ma.high != mb.high || ma.low != mb.low) (void)start_memory_watermark();

  main_metrics_->counter(fam_->config_reloads, {"ok"}).inc();
  main_metrics_->gauge(fam_->config_generation).set(static_cast<int64_t>(gen_->id));
  main_metrics_->gauge(fam_->config_reload_time).set(wall_us() / 1'000'000);
  std::fprintf(stderr, "sluice: configuration reloaded (%s): generation %llu, %zu upstreams, %zu models, from %s\n", why,
               static_cast<unsigned long long>(gen_->id), next->upstreams.size(), next->models.size(),
               next->source.c_str());
  for (const std::string& n : out.notes) std::fprintf(stderr, "sluice:   %s\n", n.c_str());
  out.ok = true;
  out.generation = gen_->id;
  return out;
}

void Gateway::config_file_changed() {
  const size_t h = file_hash(options_.config_path);
  // Unreadable for a moment (a file being replaced), or the same content
  // (an editor's temporary file, a touch): nothing to do.
  if (h == 0 || h == config_hash_) return;
  (void)reload("the file changed");
}

void Gateway::reopen_logs() {
  bool ok = true;
  for (obs::AccessLog* log : {access_log_.get(), audit_log_.get()}) {
    if (!log) continue;
    if (Status st = log->reopen(); !st) {
      ok = false;
      std::fprintf(stderr, "sluice: SIGUSR1: cannot reopen a log file: %s\n", st.message().c_str());
    }
  }
  main_metrics_->counter(fam_->log_reopens, {ok ? "ok" : "failed"}).inc();
  if (ok) std::fprintf(stderr, "sluice: SIGUSR1: log files reopened\n");
}

namespace {

// Drains the inotify queue; true if anything was read.
bool drain_events(int fd) {
  alignas(inotify_event) char buf[4096];
  bool any = false;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return any;
    any = true;
  }
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

// Watches the directory of the configuration file (and of the file a symlink
// points to): a Kubernetes ConfigMap is updated by swapping a "..data"
// symlink in that directory, editors replace the file by a rename, and
// `cp`/`>` write it in place; each shows there. Events are debounced, and a
// reload happens only when the content changed.
asio::awaitable<void> watch_config_file(Gateway* g, std::string path) {
  constexpr auto kDebounce = 200ms;
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "sluice: cannot watch %s for changes (inotify: %s); reload with SIGHUP\n", path.c_str(),
                 std::strerror(errno));
    co_return;
  }
  asio::posix::stream_descriptor sd(co_await asio::this_coro::executor, fd);
  std::vector<std::string> dirs{dir_of(path)};
  if (char resolved[PATH_MAX]; ::realpath(path.c_str(), resolved) && dir_of(resolved) != dirs[0])
    dirs.push_back(dir_of(resolved));
  for (const std::string& d : dirs)
    if (::inotify_add_watch(fd, d.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0)
      std::fprintf(stderr, "sluice: cannot watch %s: %s\n", d.c_str(), std::strerror(errno));
  asio::steady_timer debounce(sd.get_executor());
  for (;;) {
    auto [ec] = co_await sd.async_wait(asio::posix::stream_descriptor::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    drain_events(fd);
    // Let a burst of events (a ConfigMap swap, an editor's save) settle.
    do {
      debounce.expires_after(kDebounce);
      co_await debounce.async_wait(asio::as_tuple(asio::use_awaitable));
    } while (drain_events(fd));
    g->config_file_changed();
  }
}

}  // namespace sluice::gateway
