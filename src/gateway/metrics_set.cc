#include "gateway/metrics_set.h"

namespace sluice::gateway {

GatewayMetrics::GatewayMetrics(obs::Registry& r)
    : requests(r.counter("sluice_requests_total", "Requests answered, by model and HTTP status.", {"model", "status"})),
      duration(r.histogram("sluice_request_duration_seconds", "Time from request head to the end of the response.",
                           obs::latency_buckets(), {"model"})),
      ttft(r.histogram("sluice_ttft_seconds", "Time from request head to the first response body byte sent to the client.",
                       obs::latency_buckets(), {"model"})),
      upstream_ttft(r.histogram("sluice_upstream_ttft_seconds",
                                "Time from sending the request upstream to its first response body byte.",
                                obs::latency_buckets(), {"upstream"})),
      overhead(r.histogram("sluice_gateway_overhead_seconds",
                           "Request duration minus the time spent waiting on the upstream.", obs::latency_buckets())),
      inter_event(r.histogram("sluice_stream_inter_event_seconds", "Gap between successive SSE deliveries to a client (events that arrive together count once).",
                              obs::latency_buckets())),
      tokens(r.counter("sluice_tokens_total", "Tokens accounted, by model and direction (input|output).",
                       {"model", "direction"})),
      usage_source(r.counter("sluice_usage_source_total",
                             "Requests whose token usage came from the upstream or was estimated.", {"source"})),
      stream_events(r.counter("sluice_stream_events_total", "SSE events forwarded to clients.")),
      usage_stripped(r.counter("sluice_stream_usage_chunks_stripped_total",
                               "Usage-only chunks requested by the gateway and withheld from the client.")),
      connections(r.gauge("sluice_active_connections", "Open client connections.")),
      streams(r.gauge("sluice_active_requests", "Requests in progress.")),
      upstream_errors(r.counter("sluice_upstream_errors_total", "Upstream failures by upstream and kind.",
                                {"upstream", "kind"})),
      upstream_connects(r.counter("sluice_upstream_connections_total",
                                  "Connections opened to upstream endpoints, by upstream and protocol.",
                                  {"upstream", "protocol"})),
      rejected(r.counter("sluice_rejected_requests_total", "Requests answered locally with an error, by reason.",
                         {"reason"})),
      timeouts(r.counter("sluice_timeouts_total", "Timeouts by kind.", {"kind"})),
      client_aborts(r.counter("sluice_client_aborts_total", "Clients that went away before their response ended.")),
      connections_total(r.counter("sluice_connections_total", "Client connections served, by protocol.", {"protocol"})),
      protocol_limits(r.counter("sluice_protocol_limits_total",
                                "Connection limits and attack defences that fired (e.g. HTTP/2 rapid_reset), by protocol.",
                                {"protocol", "limit"})),
      tls_handshake_errors(r.counter("sluice_tls_handshake_errors_total", "TLS handshakes that failed or timed out.")) {}

}  // namespace sluice::gateway
