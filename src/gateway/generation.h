// One configuration snapshot with the state built for it (DESIGN.md §4).
//
// A Generation is what every worker shares for one Settings: the upstream
// endpoints (targets, health), TLS client contexts and the admission policy.
// A reload builds the next one from the new Settings and the previous
// Generation, carrying over by name what must survive a reload (endpoint
// health, the TLS context of an upstream whose TLS settings did not change,
// concurrency limits with their slots), and publishes it; each worker then
// adopts it (WorkerContext::adopt). Requests in flight keep the generation
// they started with until they end.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "core/status.h"
#include "gateway/settings.h"
#include "gateway/shared_policy.h"
#include "upstream/pool.h"

namespace sluice::gateway {

struct GenerationEndpoint {
  upstream::Target target;
  std::shared_ptr<upstream::Health> health;  // shared by the workers (and kept over reloads)
  // Identity of the endpoint's connection pools: a worker keeps its pool
  // (and the connections in it) over a reload when this is unchanged.
  std::string pool_key;
};

struct Generation {
  uint64_t id = 0;  // 1 for the configuration started with, +1 per reload
  std::shared_ptr<const Settings> settings;
  std::vector<std::shared_ptr<boost::asio::ssl::context>> tls;  // per upstream (null: plain)
  std::vector<std::vector<GenerationEndpoint>> endpoints;        // per upstream, per endpoint
  std::shared_ptr<SharedPolicy> policy;
  uint32_t processes = 1;  // worker processes sharing the limits
};

// Builds the generation for `settings`. `mock_port` is where the embedded
// mock listens (0 when it does not run: a builtin:mock endpoint is then an
// error). `previous` is the generation running now, if any. `processes`:
// the worker processes that split the limits (server.processes; 1 alone).
Result<std::shared_ptr<const Generation>> make_generation(std::shared_ptr<const Settings> settings,
                                                          const Generation* previous, uint16_t mock_port,
                                                          std::atomic<bool>* shedding, uint32_t processes = 1);

}  // namespace sluice::gateway
