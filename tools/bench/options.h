// Everything a run is configured by; main.cc fills it from the command line,
// tests fill it directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/request_mix.h"
#include "core/status.h"

namespace sluice::bench {

struct BenchOptions {
  std::string url;

  // Load shape: closed loop (concurrency) or open loop (rate).
  uint32_t concurrency = 0;  // closed loop: requests in flight, each sending the next when it completes
  double rate = 0;           // open loop: requests/s over all threads
  uint32_t connections = 0;  // open loop: connection pool size (default 64)
  uint32_t threads = 1;      // event-loop threads; connections are split between them

  // Protocol. HTTP/1.1 carries one request at a time per connection; HTTP/2
  // (h2c prior knowledge for http://, ALPN h2 for https://) up to
  // streams_per_connection (like h2load -m): closed loop opens
  // ceil(concurrency / streams) connections, open loop `connections`.
  bool http2 = false;
  uint32_t streams_per_connection = 1;

  double duration_s = 0;  // measured time after warm-up; 0 with requests = 0 means 10 s
  uint64_t requests = 0;  // stop after this many measured requests (0 = no limit)
  double warmup_s = 0;    // sent but not measured
  double timeout_s = 60;  // per request, from send to last byte
  double connect_timeout_s = 5;

  // Request mix.
  uint64_t seed = 1;
  LengthSpec input{128, 0.8, 8192};
  LengthSpec output{256, 0.6, 2048};
  double stream_share = 0;
  std::string model = "mock-1";
  std::vector<std::string> headers;  // "name: value"
  std::string body_file;             // send this body instead of generated ones

  bool insecure = false;  // https: skip certificate verification
  std::string ca_file;    // https: trust these CAs (PEM) instead of the system store

  bool closed_loop() const { return rate <= 0; }
  // Connections over all threads.
  uint32_t total_connections() const {
    if (!closed_loop()) return connections;
    const uint64_t per = streams_per_connection ? streams_per_connection : 1;
    return static_cast<uint32_t>((uint64_t{concurrency} + per - 1) / per);
  }
};

// Checks ranges and combinations and fills defaults (concurrency 1, 64
// open-loop connections, 10 s). Errors are usage errors.
Status validate_options(BenchOptions& o);

}  // namespace sluice::bench
