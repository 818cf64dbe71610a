// Presents a BenchResult: a table for people, JSON for scripts.
#pragma once

#include <string>
#include <string_view>

#include "bench/options.h"
#include "bench/runner.h"

namespace sluice::bench {

std::string format_table(const BenchOptions& o, const BenchResult& r);

// Every figure of the table and the configuration it came from, plus the
// command line (header values that look like credentials redacted by the
// caller), the seed and the start time. Schema (version 1; durations in
// microseconds, each histogram as {count, mean, min, p50, p90, p99, p99_9,
// max, saturated}):
//   tool, schema_version, command_line, start_time (ISO 8601 UTC),
//   start_time_unix_us,
//   config {url, mode: closed_loop|open_loop, protocol: HTTP/1.1|HTTP/2,
//           streams_per_connection (HTTP/1.1: 1), concurrency (closed loop:
//           requests in flight), rate, connections, threads, duration_s,
//           requests, warmup_s, timeout_s, connect_timeout_s, seed,
//           input_tokens|output_tokens {distribution: lognormal, mean, sigma, max},
//           stream_share, model, body_file, headers [..], insecure, cacert},
//   elapsed_s (measurement window), interrupted, connections_opened,
//   requests {completed, qps, streams, body_bytes},
//   latency_us, ttft_us, gap_us, wait_us (open loop: intended -> actual send),
//   events {received, content},
//   fidelity {streams_checked, expected, received, ratio|null,
//             streams_missing_events, streams_extra_events},
//   errors {total, connect, reset, timeout, non_2xx, bad_response},
//   status_counts {"<status>": n} for non-2xx answers.
std::string format_json(const BenchOptions& o, const BenchResult& r, std::string_view command_line);

// Replaces the value of a "name: value" header argument whose name carries
// credentials (authorization, api keys, cookies) with "<redacted>".
std::string redact_header_arg(std::string_view arg);

}  // namespace sluice::bench
