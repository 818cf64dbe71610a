// The immutable configuration snapshot the gateway runs with.
//
// Plain data with every default resolved: control/config_loader.h builds it from
// YAML and validates it; the gateway only reads it (through a
// shared_ptr<const Settings> that in-flight requests keep across a reload).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http/h2/codec.h"
#include "policy/api_keys.h"
#include "policy/header_rules.h"

namespace sluice::gateway {

using Millis = std::chrono::milliseconds;

// Streaming-aware timeouts of one upstream request.
struct Timeouts {
  Millis connect{5000};        // TCP (+TLS) connect to an endpoint
  Millis ttft{60000};          // request sent -> first response byte (time to first token)
  Millis idle{30000};          // longest gap between two response chunks
  Millis total{600000};        // the whole upstream exchange
  Millis client_stall{30000};  // a client that reads nothing for this long is dropped

  bool operator==(const Timeouts&) const = default;
};

// A concurrency limit with a bounded wait queue (policy::ConcurrencyLimit).
struct Concurrency {
  uint32_t max = 0;  // 0: no limit
  uint32_t queue = 0;
  Millis queue_timeout{2000};
  int status = 503;  // the answer when the queue is full or the wait times out: 503 or 429

  bool enabled() const { return max > 0; }
};

struct TlsClient {
  bool verify = true;
  std::string ca_file;  // empty = the system trust store
  std::string sni;      // empty = use the endpoint host
};

struct Endpoint {
  std::string url;            // as written
  bool builtin_mock = false;  // url == "builtin:mock": the mock model embedded in sluice
  bool tls = false;           // https
  std::string host;           // hostname or IP literal (IPv6 without brackets)
  uint16_t port = 0;          // default 80/443
  std::string path_prefix;    // URL path without trailing '/', e.g. "" or "/openai";
                              // prepended to the request path
};

// Upstream HTTP/2 connections (see upstream::H2Settings).
struct UpstreamHttp2 {
  Millis ping_interval{5000};  // a connection quiet this long is pinged
  Millis ping_timeout{3000};   // unanswered this long: the connection is dead
  uint32_t max_streams = 100;  // per connection (and never above the upstream's own limit)
  uint32_t max_connections = 4;  // per endpoint and worker
};

struct Upstream {
  std::string name;
  std::vector<Endpoint> endpoints;
  std::string api_key;  // resolved (literal `api_key` or the value of env var `api_key_env`);
                        // sent as "Authorization: Bearer <key>"; empty = none
  std::string authorization;  // "Bearer <api_key>" (built once at load), empty = none
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers added to each
                                                             // upstream request; names lowercase
  TlsClient tls;
  uint32_t max_idle_per_endpoint = 64;  // per worker (HTTP/1.1)
  bool http2 = false;  // protocol "h2": h2 by ALPN over https, h2c with prior knowledge over http
  UpstreamHttp2 h2;
  Timeouts timeouts;                    // fully resolved (defaults <- upstream)
  Concurrency concurrency;
};

struct ModelRoute {
  std::string name;  // exact model name, or "*" = catch-all
  std::vector<std::string> aliases;
  // The model name the upstream is asked for: `upstream_model` when set, else
  // `name`; empty for the catch-all without one (the client's name passes).
  // The request body's "model" value is rewritten to it when it differs.
  std::string upstream_model;
  size_t upstream = 0;  // index into Settings::upstreams
  Timeouts timeouts;    // fully resolved (defaults <- upstream <- model)
  std::optional<policy::AllowHeaders> allow_headers;
  Concurrency concurrency;
};

// The TLS listener (HTTP/1.1 and HTTP/2 by ALPN).
struct ServerTls {
  std::string listen;  // empty: no TLS listener
  std::vector<std::pair<std::string, std::string>> certificates;  // (cert_file, key_file); first is the default
  bool tls12 = true;                                              // min_version "1.2" (else "1.3")
  bool session_tickets = true;
  Millis reload_check{2000};  // how often certificate files are checked for changes (0: only on SIGHUP)
};

struct Server {
  std::string listen = "0.0.0.0:8080";  // host:port, [v6]:port; host is an IP literal (HTTP/1.1 and h2c)
  std::string admin_listen = "127.0.0.1:9901";
  uint32_t workers = 0;  // worker threads (per process with `processes`); 0 = one per core (/ processes)
  // 0: one process (today's threads). N: a supervisor owns the listening
  // sockets and runs N worker processes, restarted when they die.
  uint32_t processes = 0;
  uint64_t max_header_bytes = 64 * 1024;
  uint32_t max_headers = 128;
  uint64_t max_body_bytes = 16ull << 20;
  Millis header_timeout{10000};       // whole request head must arrive within this (slowloris)
  Millis idle_timeout{60000};         // keep-alive idle
  Millis drain_timeout{30000};        // graceful shutdown deadline
  std::string access_log = "stdout";  // stdout | stderr | off | a file path
  uint64_t max_header_value_bytes = 8 * 1024;  // any one header value (-> 431 naming the header)
  Millis body_timeout{30000};         // the whole request body must arrive within this
  // A body slower than this on average, once `grace` has passed, is cut (a
  // "slow POST"): 408 and close. 0 bytes/s turns the check off.
  uint64_t min_body_rate = 1024;      // bytes per second
  Millis min_body_rate_grace{5000};
  // Open client connections (all workers together; each worker gets its share).
  // Near the cap the oldest idle keep-alive connections are closed first.
  uint32_t max_connections = 10000;
  ServerTls tls;
  bool http2 = true;  // h2c (prior knowledge) on `listen`, "h2" by ALPN on the TLS listener
  http::h2::Options h2;
};

// Memory-watermark shedding (policy::MemoryWatermark).
struct MemoryShedding {
  uint64_t limit = 0;    // bytes; 0: the cgroup's memory.max when there is one, else off
  double high = 0.75;    // stop admitting at this fraction of the limit
  double low = 0.30;     // admit again below this fraction
  Millis sample{100};
  bool stop_accepting = false;  // also stop accepting new connections while shedding
  Millis retry_after{1000};     // Retry-After of the 503 (rounded up to seconds)
};

// What is admitted at all: header rules (with an audit trail), memory
// shedding, the global concurrency limit.
struct Admission {
  policy::HeaderRules header_rules;  // also holds server.max_header_value_bytes
  std::string audit_log = "stderr";  // stderr | stdout | off | a file path
  MemoryShedding memory;
  Concurrency concurrency;
};

// Limits of a key or a team; absent = unlimited. (Enforced by the limit
// stage; see policy/.)
struct Limits {
  std::optional<uint64_t> rpm, tpm, max_concurrent, tokens_per_day, tokens_per_month;
  std::optional<double> usd_per_day, usd_per_month;
};

struct Team {
  std::string name;
  Limits limits;
};

// One API key: who it is (id, team), never the key itself.
struct ApiKey {
  std::string id;                   // shown in logs, metrics and errors instead of the key
  std::string team;                 // empty: none
  size_t team_index = static_cast<size_t>(-1);  // into Auth::teams, resolved at load; -1: no team
  std::vector<std::string> models;  // allowed model names, aliases or '*' patterns; empty: all
  Limits limits;
};

// Prices per million tokens, for USD budgets (`pricing:`); `model` is a
// route name or a '*' pattern.
struct Price {
  std::string model;
  double input_per_mtok = 0, output_per_mtok = 0, cached_input_per_mtok = 0;
};

// `auth`: with no keys the gateway is open (as with no auth section at all).
struct Auth {
  std::vector<ApiKey> keys;
  std::vector<Team> teams;
  policy::KeyIndex index;  // presented key -> index into keys
  bool enabled() const { return !keys.empty(); }
};

struct Settings {
  Server server;
  Admission admission;
  Auth auth;
  std::vector<Price> pricing;
  // Output tokens reserved for a request that sets no max_tokens (token
  // limits are charged before forwarding, then settled with real usage).
  uint64_t default_max_tokens = 1024;
  // Where budget spend is kept across restarts (limits.state_file); empty: not kept.
  std::string limits_state_file;
  // The length of the rpm/tpm sliding window (limits.window; a minute, shorter for tests).
  Millis limits_window{60000};
  // limits.backend: redis shares every key's and team's limits between replicas.
  struct RedisBackend {
    bool enabled = false;
    std::string host = "127.0.0.1";
    uint16_t port = 6379;
    Millis timeout{20};
    enum class OnFailure { kFailOpen, kFailClosed, kLocalFallback } on_failure = OnFailure::kLocalFallback;
    uint32_t expected_replicas = 1;  // local_fallback enforces limit / expected_replicas per replica
  } redis;
  // The price of `model` (a route name), or null.
  const Price* price(std::string_view model) const;
  Timeouts default_timeouts;
  std::vector<Upstream> upstreams;
  std::vector<ModelRoute> models;
  // Where requests without a model go (pass-through paths such as /v1/files)
  // when there is no "*" route: set by `default_upstream`.
  std::optional<ModelRoute> default_route;
  std::string source;  // file path or "<embedded default>"
  // Problems that do not stop `--check-config` but would stop a start-up
  // (an unset api_key_env variable); empty unless loaded for checking only.
  std::vector<std::string> warnings;

  // Lookup: exact name or alias, else the "*" route, else nullptr. Uses the
  // index built by index_models(); falls back to a linear scan when `models`
  // changed size since, so hand-built Settings (tests) work without it.
  const ModelRoute* find_model(std::string_view model) const;
  // Whether an endpoint is the embedded mock model (builtin:mock).
  bool uses_builtin_mock() const;
  // The route of a request that names no model: the "*" route, else the
  // default_upstream route, else nullptr.
  const ModelRoute* route_without_model() const;

  // (Re)builds the lookup index. The loader calls it after validation; call it
  // again after editing `models` by hand. On duplicate names the first wins.
  void index_models();

 private:
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  static constexpr size_t kNone = static_cast<size_t>(-1);

  std::unordered_map<std::string, size_t, NameHash, std::equal_to<>> model_index_;
  size_t wildcard_ = kNone;
  size_t indexed_models_ = 0;  // models.size() when the index was built
};

}  // namespace sluice::gateway
