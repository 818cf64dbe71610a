// tools/bench/: sluice-bench, the LLM-aware load generator. The library
// (sluice_benchlib) holds everything but main.cc, so tests drive it directly.
//   options.h            what a run is configured by; target.h parses its URL
//   request_mix.h        seeded request shapes: prompt/output lengths, streaming
//   schedule.h           which request to send next and when (closed/open loop)
//   request_builder.h    OpenAI chat requests built into reused buffers
//   client_connection.h  the protocol seam: h1_connection.cc (HTTP/1.1, + TLS),
//                        h2_connection.cc (HTTP/2: h2c, TLS + ALPN h2);
//                        client_transport.h opens TCP (+ TLS) for both
//   response_meter.h     per-request measurement: status, SSE events, TTFT, gaps
//   histogram.h, stats.h what is measured, mergeable across threads
//   runner.h             this file: threads and connection loops
//   report.h             the table and the JSON
//
// A run: T threads, each with its own io_context, its own share of the
// connections and its own Stats. Connections are opened first; then all
// threads start at one t0 and one coroutine per lane loops
// claim slot -> (wait for its intended time) -> send -> read -> record.
// A lane carries one request at a time: HTTP/1.1 has one lane per
// connection, HTTP/2 up to --streams lanes share one, each on its own stream.
// The Stats are merged when every thread is done. Nothing is allocated per
// request once buffers have grown (HTTP/2: but inside nghttp2 and for the
// response header fields the codec copies).
#pragma once

#include <cstdint>

#include "bench/options.h"
#include "bench/stats.h"
#include "core/status.h"

namespace sluice::bench {

struct BenchResult {
  Stats stats;               // measured requests only
  double elapsed_s = 0;      // the measurement window: warm-up end -> end of run
  int64_t start_wall_us = 0; // wall clock when load started (before warm-up)
  uint64_t connects = 0;     // connections opened (initial + reconnects)
  bool interrupted = false;  // stopped early by SIGINT/SIGTERM
};

struct RunControl {
  bool handle_signals = false;  // SIGINT/SIGTERM end the run early and still report
};

// Setup failures (unresolvable host, unreadable --body-file, TLS context)
// are errors; request failures are counted in the result, never returned.
// `o` must have passed validate_options().
Result<BenchResult> run_bench(const BenchOptions& o, RunControl control = {});

}  // namespace sluice::bench
