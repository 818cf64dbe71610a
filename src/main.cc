// Wiring only: command line -> settings -> gateway (+ the embedded mock model).
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "control/config_loader.h"
#include "gateway/gateway.h"
#include "mock/mock_handler.h"

namespace {

boost::asio::awaitable<void> serve_mock(const sluice::mock::MockOptions* opts, sluice::http::Exchange& ex) {
  co_await sluice::mock::handle(ex, *opts);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice: an OpenAI-compatible LLM gateway"};
  std::string config_file, check_file, listen, admin, port_file, access_log;
  int workers = -1;
  app.add_option("--config,-c", config_file, "YAML configuration (default: embedded, routes every model to the built-in mock)");
  app.add_option("--check-config", check_file, "validate a configuration file and exit");
  app.add_option("--listen", listen, "override server.listen (host:port)");
  app.add_option("--admin", admin, "override server.admin_listen (host:port)");
  app.add_option("--workers", workers, "override server.workers (0 = one per core)");
  app.add_option("--access-log", access_log, "override server.access_log (stdout|stderr|off|PATH)");
  app.add_option("--port-file", port_file, "write {\"api\":PORT,\"admin\":PORT} here once listening");
  CLI11_PARSE(app, argc, argv);

  if (!check_file.empty()) {
    auto s = sluice::control::load_config_file(check_file);
    if (!s) {
      std::fprintf(stderr, "%s\n", s.status().message().c_str());
      return 1;
    }
    std::printf("%s: OK (%zu upstreams, %zu models)\n", check_file.c_str(), s->upstreams.size(), s->models.size());
    return 0;
  }

  sluice::gateway::Settings settings;
  if (config_file.empty()) {
    settings = sluice::control::embedded_default_settings();
  } else {
    auto s = sluice::control::load_config_file(config_file);
    if (!s) {
      std::fprintf(stderr, "%s\n", s.status().message().c_str());
      return 1;
    }
    settings = std::move(*s);
  }
  if (!listen.empty()) settings.server.listen = listen;
  if (!admin.empty()) settings.server.admin_listen = admin;
  if (workers >= 0) settings.server.workers = static_cast<uint32_t>(workers);
  if (!access_log.empty()) settings.server.access_log = access_log;
  settings.index_models();

  static const sluice::mock::MockOptions mock_options;
  sluice::gateway::GatewayOptions opts;
  opts.port_file = port_file;
  opts.builtin_backend = [](sluice::http::Exchange& ex) { return serve_mock(&mock_options, ex); };

  sluice::gateway::Gateway gw(std::make_shared<const sluice::gateway::Settings>(std::move(settings)), std::move(opts));
  sluice::Status st = gw.start();
  if (!st) {
    std::fprintf(stderr, "sluice: %s\n", st.message().c_str());
    return 1;
  }
  return gw.run();
}
