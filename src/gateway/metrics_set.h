#pragma once

#include <string_view>

#include "obs/metrics.h"

namespace sluice::gateway {

// The gateway's metric families, declared once at start-up.
struct GatewayMetrics {
  explicit GatewayMetrics(obs::Registry& r);

  obs::CounterFamily requests;         // {model, status}
  obs::HistogramFamily duration;       // {model}
  obs::HistogramFamily ttft;           // {model}: request start -> first body byte to the client
  obs::HistogramFamily upstream_ttft;  // {upstream}: request sent -> first response body byte from it
  obs::HistogramFamily overhead;       // total minus time waiting on the upstream
  obs::HistogramFamily inter_event;    // gap between forwarded SSE events
  obs::CounterFamily tokens;           // {model, direction}
  obs::CounterFamily usage_source;     // {source}: upstream | estimated
  obs::CounterFamily stream_events;    // SSE events forwarded
  obs::CounterFamily usage_stripped;   // usage-only chunks the client did not ask for
  obs::GaugeFamily connections;        // open client connections
  obs::GaugeFamily streams;            // exchanges in progress
  obs::CounterFamily upstream_errors;  // {upstream, kind}
  obs::CounterFamily upstream_connects;  // {upstream, protocol}: connections opened
  obs::CounterFamily rejected;         // {reason}: local error replies and codec rejections
  obs::CounterFamily timeouts;         // {kind}
  obs::CounterFamily client_aborts;    // client went away before the response ended
  obs::CounterFamily connections_total;  // {protocol}: accepted client connections
  obs::CounterFamily protocol_limits;    // {protocol, limit}: connection limits and attack defences that fired
  obs::CounterFamily tls_handshake_errors;
  obs::GaugeFamily build_info;         // {version, commit, mode}: always 1
  obs::GaugeFamily endpoint_up;        // {upstream, endpoint}: 1 takes traffic, 0 marked down
  obs::CounterFamily header_rejections;  // {rule}: requests refused by a header rule
  obs::CounterFamily key_requests;     // {key, team, status}: by API key id (auth.keys)
  obs::CounterFamily key_tokens;       // {key, team, direction}
  obs::CounterFamily limits_breaker;   // {state}: the Redis limits' circuit breaker opened / closed
  obs::CounterFamily limits_unavailable;  // {mode}: requests decided by limits.redis.on_failure
  obs::GaugeFamily memory_state;       // 0 admitting, 1 shedding
  obs::GaugeFamily memory_level;       // bytes held (sampled RSS)
  obs::GaugeFamily memory_buffered;    // of which the gateway's own buffers (accounted per worker)
  obs::GaugeFamily memory_limit;       // bytes (0: no limit known)
  obs::CounterFamily memory_transitions;  // {to}: shedding | admitting
  obs::GaugeFamily concurrency_active;  // {scope}: global, upstream:<name>, model:<name>
  obs::GaugeFamily concurrency_queued;  // {scope}
  obs::CounterFamily accept_errors;    // {error}: EMFILE, ENFILE, ...
  obs::CounterFamily connections_shed;  // {reason}: idle_evicted | over_capacity
  obs::CounterFamily config_reloads;    // {result}: ok | rejected
  obs::GaugeFamily config_generation;
  obs::GaugeFamily config_reload_time;
  obs::CounterFamily upgrades;          // {result}: ok | failed
  obs::CounterFamily log_reopens;       // {result}: ok | failed
};

// The kinds of sluice_upstream_errors_total, each present at 0 from start so
// that rate() and alerts work before the first failure.
inline constexpr std::string_view kUpstreamErrorKinds[] = {
    "connect", "connect_timeout", "reset", "bad_response", "dead_connection",
    "ttft_timeout", "total_timeout", "timeout", "http_4xx", "http_5xx"};

}  // namespace sluice::gateway
