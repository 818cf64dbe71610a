#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "core/status.h"
#include "gateway/generation.h"
#include "gateway/settings.h"
#include "gateway/shared_policy.h"
#include "policy/memory_watermark.h"
#include "gateway/worker_context.h"
#include "http/exchange.h"
#include "http/listener.h"
#include "net/handover.h"
#include "net/tls_server.h"
#include "net/worker_pool.h"
#include "obs/access_log.h"
#include "obs/metrics.h"

namespace sluice::gateway {

struct GatewayOptions {
  // Serves endpoints written "builtin:mock" (the embedded mock model). It is
  // called on every worker thread: it must be safe to share.
  http::Handler builtin_backend;
  // When set, {"api":PORT,"admin":PORT} is written here once listening (tests bind port 0).
  std::string port_file;
  // Loads the configuration again, with the same file and command-line
  // overrides (a reload). Unset: the configuration cannot be reloaded.
  std::function<Result<Settings>()> load_config;
  // The configuration file, watched for changes (empty: nothing to watch).
  std::string config_path;
  // A binary upgrade: the listening sockets the previous process handed over.
  net::HandedSockets handed;
  // A worker process of a supervisor (server.processes): its listening
  // sockets are the supervisor's, so a reload does not move them; the
  // limits, the memory limit and the budgets state file are split between
  // the processes (slot i of process_count).
  bool fixed_listeners = false;
  uint32_t process_slot = 0, process_count = 1;
  // `--upgrade-from PID`: the process whose sockets these are; told to drain
  // (SIGWINCH) once this one serves.
  pid_t predecessor = 0;
  // What a successor is started as: this binary's path and arguments.
  std::string executable;
  std::vector<std::string> argv;
  // How long a successor has to report ready before the upgrade is abandoned.
  std::chrono::milliseconds upgrade_timeout{30000};
};

struct UpgradeOutcome {
  bool ok = false;
  pid_t pid = 0;  // the new process
  std::string error;
};

// What a configuration reload did (POST /admin/reload answers with it).
struct ReloadOutcome {
  bool ok = false;
  uint64_t generation = 0;  // the generation running afterwards
  std::string error;        // why it was rejected (file:line:col: ... for a bad file)
  std::vector<std::string> notes;  // changes that wait for a restart, listeners moved, ...
};

// The whole process: workers with their listeners, the admin endpoint, the
// embedded mock, graceful drain on SIGTERM/SIGINT.
class Gateway {
 public:
  Gateway(std::shared_ptr<const Settings> settings, GatewayOptions options);
  ~Gateway();

  // Binds every listener and starts the workers. Errors (a port in use, a bad
  // trust store) come back as a Status before anything runs.
  Status start();
  // Runs the admin endpoint and waits for a signal; drains; returns the exit code.
  int run();

  uint16_t api_port() const { return api_ ? api_->port() : 0; }
  uint16_t admin_port() const { return admin_ ? admin_->port() : 0; }
  uint16_t tls_port() const { return tls_listener_ ? tls_listener_->port() : 0; }
  const net::TlsServer* tls_server() const { return tls_.get(); }
  bool ready() const;
  // /healthz, /readyz, /metrics.
  boost::asio::awaitable<void> admin_handle(http::Exchange& ex);
  // Loads the certificate files again (SIGHUP, or a change the watcher saw).
  // Live connections keep the certificates they started with.
  void reload_certificates(const char* why);
  // Loads, validates and publishes the configuration again (SIGHUP, a change
  // of the file, POST /admin/reload). A bad file changes nothing. Main thread.
  ReloadOutcome reload(const char* why);
  // SIGUSR2, POST /admin/upgrade: starts the binary now at our path with the
  // listening sockets, waits until it serves, then drains this process (and
  // stops it). If the new one fails to start, this one goes on serving.
  boost::asio::awaitable<UpgradeOutcome> upgrade(const char* why);
  bool draining() const { return draining_; }
  // A successor serves our sockets now (its upgrade succeeded, or SIGWINCH
  // from `sluice --upgrade-from`): stop accepting, admin included, and drain.
  void hand_over(const char* why);
  // SIGUSR1: the access and audit log files are opened again (logrotate).
  void reopen_logs();
  // The configuration file changed on disk (the watcher): reloads when its
  // content differs from what was last loaded.
  void config_file_changed();

  // Drain (SIGTERM): listeners close, connections finish their requests.
  void begin_drain();
  bool drained() const;
  size_t live_requests() const;
  // The drain deadline: each worker ends its remaining requests (see
  // WorkerContext::cut_live_requests).
  void cut_live_requests(bool force);
  // One memory-watermark sample (main thread, every admission.memory.sample).
  void sample_memory();
  // limits.state_file: budget spend is read at start and written every few
  // seconds and at exit (main thread), so a restart does not reset a day's spend.
  void save_budgets(bool workers_stopped);

 private:
  static size_t file_hash(const std::string& path);  // of the file's content; 0: unreadable
  Status write_port_file() const;
  Status start_mock();
  // Takes over handed-over sockets for `ep` when there are (and they are on
  // that address), else binds new ones.
  Result<std::unique_ptr<http::HttpListener>> open_listener(const std::vector<boost::asio::io_context*>& ctxs,
                                                            const boost::asio::ip::tcp::endpoint& ep,
                                                            std::vector<int>& handed);
  std::vector<boost::asio::io_context*> worker_ctxs();
  // A listener on `listen` with an acceptor per worker (not started).
  Result<std::unique_ptr<http::HttpListener>> open_worker_listener(const std::string& listen);
  void switch_listener(http::HttpListener* next, http::HttpListener* old, const net::TlsServer* tls);
  void update_scrape_gauges();
  Status start_memory_watermark();
  void restore_budgets();
  std::string state_file() const;  // limits.state_file, per process with server.processes
  void give_back_memory();

  std::shared_ptr<const Settings> settings_;  // the current snapshot's (gen_->settings)
  std::shared_ptr<const Generation> gen_;
  GatewayOptions options_;
  size_t config_hash_ = 0;  // of the file as last loaded (the watcher skips unchanged content)
  // Listeners replaced by a reload; they stop accepting but are kept (their
  // accept loops may still be finishing on the workers).
  std::vector<std::unique_ptr<http::HttpListener>> retired_listeners_;
  std::vector<std::unique_ptr<net::TlsServer>> retired_tls_;  // replaced by a reload; connections may use them
  obs::Registry registry_;
  std::unique_ptr<GatewayMetrics> fam_;
  obs::Shard* main_metrics_ = nullptr;  // written by the main thread only
  std::unique_ptr<obs::AccessLog> access_log_;
  std::unique_ptr<obs::AccessLog> audit_log_;  // admission.audit_log
  std::atomic<bool> shedding_{false};  // memory shedding (SharedPolicy::shedding)
  std::unique_ptr<policy::MemoryWatermark> watermark_;
  net::WorkerPool workers_;
  std::vector<std::unique_ptr<WorkerContext>> contexts_;
  std::unique_ptr<http::HttpListener> api_;
  std::unique_ptr<net::TlsServer> tls_;
  std::unique_ptr<http::HttpListener> tls_listener_;
  std::unique_ptr<http::HttpListener> mock_;
  std::vector<std::unique_ptr<http::ConnectionSet>> mock_connections_;
  http::ServerOptions mock_opts_;

  boost::asio::io_context main_ctx_{1};
  std::unique_ptr<http::HttpListener> admin_;
  http::ConnectionSet admin_connections_;
  http::ServerOptions admin_opts_;
  http::Handler admin_handler_;
  std::atomic<bool> draining_{false};
  bool upgrading_ = false;  // main thread
  std::atomic<bool> started_{false};
  std::atomic<size_t> drained_workers_{0};
};

// The TLS server for server.tls (certificates, versions, tickets, ALPN).
Result<std::unique_ptr<net::TlsServer>> make_tls_server(const Settings& s);

// Drains `g` (up to `deadline`, then cuts what is left) and stops `ctx`.
boost::asio::awaitable<void> drain_then_stop(Gateway* g, boost::asio::io_context* ctx,
                                             std::chrono::milliseconds deadline);

// Reloads `g` when the configuration file at `path` changes (inotify on its
// directory, debounced). Runs on the main thread's context.
boost::asio::awaitable<void> watch_config_file(Gateway* g, std::string path);

}  // namespace sluice::gateway
