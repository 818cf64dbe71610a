#include "gateway/generation.h"

#include <algorithm>
#include <unordered_map>

#include "upstream/connection.h"

namespace sluice::gateway {

namespace {

std::string host_header(const std::string& host, uint16_t port, bool tls) {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

// What the TLS client context of an upstream is made from.
std::string tls_key(const Upstream& u) {
  return std::to_string(u.tls.verify) + '|' + u.tls.ca_file + '|' + std::to_string(u.http2);
}

// Everything a worker's pool for this endpoint was built from.
std::string pool_key(const Upstream& u, const upstream::Target& t) {
  std::string k = u.name;
  for (const std::string* part : {&t.host, &t.sni, &t.host_header, &t.path_prefix}) (k += '\n') += *part;
  k += '\n' + std::to_string(t.port) + '|' + std::to_string(t.tls) + '|' + std::to_string(static_cast<int>(t.protocol));
  k += '|' + std::to_string(t.h2.ping_interval_ms) + '|' + std::to_string(t.h2.ping_timeout_ms) + '|' +
       std::to_string(t.h2.max_streams) + '|' + std::to_string(t.h2.max_connections);
  k += '|' + std::to_string(u.max_idle_per_endpoint) + '|' + tls_key(u);
  return k;
}

}  // namespace

Result<std::shared_ptr<const Generation>> make_generation(std::shared_ptr<const Settings> settings,
                                                          const Generation* previous, uint16_t mock_port,
                                                          std::atomic<bool>* shedding, uint32_t processes) {
  auto g = std::make_shared<Generation>();
  g->processes = std::max<uint32_t>(1, processes);
  g->id = previous ? previous->id + 1 : 1;
  g->settings = std::move(settings);
  const Settings& s = *g->settings;

  // What carries over: TLS contexts by upstream, health by endpoint.
  std::unordered_map<std::string, std::shared_ptr<boost::asio::ssl::context>> old_tls;
  std::unordered_map<std::string, std::shared_ptr<upstream::Health>> old_health;
  if (previous) {
    const Settings& ps = *previous->settings;
    for (size_t u = 0; u < ps.upstreams.size(); ++u) {
      if (previous->tls[u]) old_tls[ps.upstreams[u].name + '\n' + tls_key(ps.upstreams[u])] = previous->tls[u];
      for (size_t e = 0; e < ps.upstreams[u].endpoints.size(); ++e)
        old_health[ps.upstreams[u].name + '\n' + ps.upstreams[u].endpoints[e].url] = previous->endpoints[u][e].health;
    }
  }

  for (const auto& u : s.upstreams) {
    bool tls = false;
    for (const auto& e : u.endpoints) tls = tls || e.tls;
    std::shared_ptr<boost::asio::ssl::context> ctx;
    if (tls) {
      if (auto it = old_tls.find(u.name + '\n' + tls_key(u)); it != old_tls.end()) {
        ctx = it->second;
      } else {
        auto c = upstream::make_client_tls_context(u.tls.verify, u.tls.ca_file, u.http2);
        if (!c) return Status(Errc::kInvalid, "upstream " + u.name + ": " + c.status().message());
        ctx = *c;
      }
    }
    g->tls.push_back(std::move(ctx));
    auto& eps = g->endpoints.emplace_back();
    for (const auto& e : u.endpoints) {
      GenerationEndpoint ge;
      upstream::Target& t = ge.target;
      if (e.builtin_mock) {
        if (mock_port == 0) return Status(Errc::kInvalid, "builtin:mock is not available in this build");
        t.host = "127.0.0.1";
        t.port = mock_port;
      } else {
        t.host = e.host;
        t.port = e.port;
        t.tls = e.tls;
        t.sni = u.tls.sni.empty() ? e.host : u.tls.sni;
        t.path_prefix = e.path_prefix;
      }
      t.host_header = host_header(t.host, t.port, t.tls);
      if (u.http2) {
        t.protocol = upstream::Protocol::kHttp2;
        t.h2 = {.ping_interval_ms = u.h2.ping_interval.count(),
                .ping_timeout_ms = u.h2.ping_timeout.count(),
                .max_streams = u.h2.max_streams,
                .max_connections = u.h2.max_connections};
      }
      ge.pool_key = pool_key(u, t);
      if (auto it = old_health.find(u.name + '\n' + e.url); it != old_health.end()) ge.health = it->second;
      else ge.health = std::make_shared<upstream::Health>();
      eps.push_back(std::move(ge));
    }
  }
  g->policy = std::make_shared<SharedPolicy>(s, shedding, previous ? previous->policy.get() : nullptr,
                                             previous ? previous->settings.get() : nullptr, g->processes);
  return std::shared_ptr<const Generation>(std::move(g));
}

}  // namespace sluice::gateway
