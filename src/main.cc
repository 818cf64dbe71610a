// Wiring only: command line -> settings -> gateway (+ the embedded mock model).
#include <sys/prctl.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "control/config_loader.h"
#include "control/keys_command.h"
#include "control/supervisor.h"
#include "control/version.h"
#include "gateway/gateway.h"
#include "mock/mock_handler.h"
#include "net/handover.h"
#include "net/listener.h"

namespace {

boost::asio::awaitable<void> serve_mock(const sluice::mock::MockOptions* opts, sluice::http::Exchange& ex) {
  co_await sluice::mock::handle(ex, *opts);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice: an OpenAI-compatible LLM gateway"};
  std::string config_file, check_file, port_file;
  sluice::control::LoadOptions load;
  // Overrides are taken as text and checked by the config loader, with the
  // same rules as the keys they replace.
  auto override_option = [&](const char* flag, std::optional<std::string>& into, const char* help) {
    app.add_option_function<std::string>(flag, [&into](const std::string& v) { into = v; }, help);
  };
  app.add_option("--config,-c", config_file, "YAML configuration (default: embedded, routes every model to the built-in mock)");
  app.add_option("--check-config", check_file,
                 "validate a configuration file (with any overrides) and exit; unset api_key_env variables are warnings");
  override_option("--listen", load.listen, "override server.listen (IP:port)");
  override_option("--admin", load.admin_listen, "override server.admin_listen (IP:port)");
  override_option("--workers", load.workers, "override server.workers (0 = one per core)");
  override_option("--access-log", load.access_log, "override server.access_log (stdout|stderr|off|PATH)");
  pid_t upgrade_from = 0;
  app.add_option("--upgrade-from", upgrade_from,
                 "take over the listening sockets of the running sluice PID (a new binary at another path; "
                 "needs fixed ports and the right to ptrace it), then tell it to drain");
  app.add_option("--port-file", port_file, "write {\"api\":PORT,\"admin\":PORT} here once listening");
  // Set by the supervisor (server.processes) for the processes it runs.
  std::string worker_process;
  app.add_option(sluice::control::kWorkerProcessFlag, worker_process, "(internal) SLOT,PROCESSES,THREADS,DIR")->group("");
  bool version = false;
  app.add_flag("--version,-V", version, "print version, git commit, build mode and library versions, and exit");

  // sluice keys new [--prefix P] | sluice keys hash (key on stdin)
  CLI::App* keys = app.add_subcommand("keys", "make API keys and their stored (hashed) form");
  keys->require_subcommand(1);
  CLI::App* keys_new = keys->add_subcommand("new", "print a new random key and the config line that stores its hash");
  std::string key_prefix = "sk-sluice-";
  std::string key_id = "my-key";
  keys_new->add_option("--prefix", key_prefix, "the key's prefix (default sk-sluice-)");
  keys_new->add_option("--id", key_id, "the id in the printed config line");
  CLI::App* keys_hash = keys->add_subcommand("hash", "read a key from stdin and print only its sha256:... hash");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::fputs(sluice::control::version_text().c_str(), stdout);
    return 0;
  }
  if (*keys_new) return sluice::control::keys_new(key_prefix, key_id);
  if (*keys_hash) return sluice::control::keys_hash();

  if (!check_file.empty()) {
    load.check_only = true;
    auto s = sluice::control::load_config_file(check_file, load);
    if (!s) {
      std::fprintf(stderr, "%s\n", s.status().message().c_str());
      return 1;
    }
    for (const std::string& w : s->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    std::printf("%s: OK (%zu upstreams, %zu models%s)\n", check_file.c_str(), s->upstreams.size(), s->models.size(),
                s->warnings.empty() ? "" : ", with warnings");
    return 0;
  }

  const bool is_worker = !worker_process.empty();
  uint32_t worker_slot = 0, worker_processes = 1;
  if (is_worker) {
    // A worker process: the supervisor's sockets, an admin port of its own
    // for the supervisor to scrape, and it ends when the supervisor does.
    unsigned slot = 0, processes = 0, threads = 0;
    char dir[4096] = {};
    if (std::sscanf(worker_process.c_str(), "%u,%u,%u,%4095s", &slot, &processes, &threads, dir) != 4 ||
        processes == 0 || slot >= processes) {
      std::fprintf(stderr, "sluice: bad %s value\n", sluice::control::kWorkerProcessFlag);
      return 1;
    }
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    load.admin_listen = "127.0.0.1:0";
    load.workers = std::to_string(threads);
    port_file = std::string(dir) + "/worker-" + std::to_string(slot) + ".json";
    worker_slot = slot;
    worker_processes = processes;
  }
  auto loaded = config_file.empty() ? sluice::control::load_embedded_default(load)
                                    : sluice::control::load_config_file(config_file, load);
  if (!loaded) {
    std::fprintf(stderr, "%s\n", loaded.status().message().c_str());
    return 1;
  }

  // A successor of a binary upgrade takes over the sockets it was handed.
  auto handed = sluice::net::take_handed_sockets();
  if (!handed) {
    std::fprintf(stderr, "sluice: %s\n", handed.status().message().c_str());
    return 1;
  }
  auto load_again = [config_file, load]() {
    return config_file.empty() ? sluice::control::load_embedded_default(load)
                               : sluice::control::load_config_file(config_file, load);
  };
  if (!is_worker && loaded->server.processes > 0) {
    if (upgrade_from > 0) {
      std::fprintf(stderr, "sluice: --upgrade-from is for a single process (server.processes: 0); "
                           "upgrade a supervisor with SIGUSR2\n");
      return 1;
    }
    sluice::control::SupervisorOptions so{.executable = sluice::net::current_executable(),
                                          .argv = std::vector<std::string>(argv, argv + argc),
                                          .port_file = port_file,
                                          .load_config = load_again,
                                          .handed = std::move(*handed)};
    return sluice::control::run_supervisor(std::make_shared<const sluice::gateway::Settings>(std::move(*loaded)),
                                           std::move(so));
  }
  static const sluice::mock::MockOptions mock_options;
  sluice::gateway::GatewayOptions opts;
  opts.port_file = port_file;
  opts.builtin_backend = [](sluice::http::Exchange& ex) { return serve_mock(&mock_options, ex); };
  // A reload reads the same file with the same command-line overrides.
  opts.config_path = config_file;
  opts.handed = std::move(*handed);
  if (upgrade_from > 0) {
    const sluice::gateway::Settings& s = *loaded;
    auto api = sluice::net::parse_listen_address(s.server.listen);
    auto admin = sluice::net::parse_listen_address(s.server.admin_listen);
    std::optional<boost::asio::ip::tcp::endpoint> tls;
    if (!s.server.tls.listen.empty())
      if (auto t = sluice::net::parse_listen_address(s.server.tls.listen)) tls = *t;
    auto taken = api && admin ? sluice::net::take_sockets_from(upgrade_from, *api, tls, *admin)
                              : sluice::Result<sluice::net::HandedSockets>(api ? admin.status() : api.status());
    if (!taken) {
      std::fprintf(stderr, "sluice: %s\n", taken.status().message().c_str());
      return 1;
    }
    opts.handed = std::move(*taken);
    opts.predecessor = upgrade_from;
  }
  if (!is_worker) opts.executable = sluice::net::current_executable();  // a worker is upgraded by its supervisor
  opts.argv.assign(argv, argv + argc);
  opts.load_config = load_again;
  opts.fixed_listeners = is_worker;
  opts.process_slot = worker_slot;
  opts.process_count = worker_processes;

  sluice::gateway::Gateway gw(std::make_shared<const sluice::gateway::Settings>(std::move(*loaded)), std::move(opts));
  sluice::Status st = gw.start();
  if (!st) {
    std::fprintf(stderr, "sluice: %s\n", st.message().c_str());
    return 1;
  }
  return gw.run();
}
