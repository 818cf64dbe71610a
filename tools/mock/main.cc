// sluice-mock: the OpenAI-compatible mock model server, standalone.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "http/listener.h"
#include "mock/mock_handler.h"
#include "net/listener.h"
#include "net/worker_pool.h"

namespace {

boost::asio::awaitable<void> serve(const sluice::mock::MockOptions* opts, sluice::http::Exchange& ex) {
  co_await sluice::mock::handle(ex, *opts);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-mock: a deterministic OpenAI-compatible model server for tests and benchmarks"};
  sluice::mock::MockOptions opts;
  std::string listen = "127.0.0.1:8000", port_file;
  unsigned workers = 1;
  app.add_option("--listen", listen, "host:port (port 0 picks one)");
  app.add_option("--workers", workers, "event-loop threads (0 = one per core)");
  app.add_option("--port-file", port_file, "write {\"api\":PORT} here once listening");
  app.add_option("--ttft-ms", opts.ttft_ms, "delay before the first token (x-mock-ttft-ms overrides)");
  app.add_option("--itl-ms", opts.itl_ms, "gap between tokens (x-mock-itl-ms overrides)");
  app.add_option("--tokens", opts.default_tokens, "output length without max_tokens (x-mock-tokens overrides)");
  app.add_option("--max-tokens-cap", opts.max_tokens_cap, "upper bound on any output length");
  app.add_option("--embedding-dim", opts.embedding_dim, "embedding vector size");
  app.add_option("--models", opts.models, "model names listed by GET /v1/models (any name is accepted)");
  CLI11_PARSE(app, argc, argv);

  auto ep = sluice::net::parse_listen_address(listen);
  if (!ep) {
    std::fprintf(stderr, "sluice-mock: %s\n", ep.status().message().c_str());
    return 1;
  }
  sluice::net::WorkerPool pool(workers);
  std::vector<boost::asio::io_context*> ctxs;
  for (size_t i = 0; i < pool.size(); ++i) ctxs.push_back(&pool.at(i).ctx());
  auto l = sluice::http::HttpListener::open(ctxs, *ep);
  if (!l) {
    std::fprintf(stderr, "sluice-mock: %s\n", l.status().message().c_str());
    return 1;
  }
  auto& listener = **l;
  sluice::http::Handler handler = [&opts](sluice::http::Exchange& ex) { return serve(&opts, ex); };
  sluice::http::ServerOptions sopts;
  sopts.idle_timeout_ms = 300'000;
  sopts.write_stall_ms = 300'000;
  std::vector<sluice::http::ConnectionSet> sets(pool.size());
  for (size_t i = 0; i < pool.size(); ++i) listener.start(i, {&handler, &sopts, nullptr, &sets[i]});
  pool.start();
  if (!port_file.empty()) {
    std::ofstream(port_file + ".tmp") << "{\"api\":" << listener.port() << "}\n";
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }
  std::fprintf(stderr, "sluice-mock: listening on port %u with %zu workers\n", listener.port(), pool.size());

  boost::asio::io_context main_ctx;
  boost::asio::signal_set signals(main_ctx, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { main_ctx.stop(); });
  main_ctx.run();
  pool.stop();
  pool.join();
  return 0;
}
