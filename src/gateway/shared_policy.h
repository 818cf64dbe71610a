// Admission state every worker shares: the memory-shedding flag the sampler
// sets, and the concurrency limits (global, per upstream, per model route,
// per API key and team). One per configuration snapshot; a reload carries
// each limit that is still configured over by name (the same object, with
// its slots and queue, reconfigured), so a reload never resets a count.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/settings.h"
#include "policy/concurrency.h"

namespace sluice::gateway {

struct SharedPolicy {
  using LimitPtr = std::shared_ptr<policy::ConcurrencyLimit>;
  // Set by the memory sampler (main thread); read by each request's admit
  // stage. Owned by the gateway (it outlives every snapshot); a policy built
  // without one (tests) uses its own.
  std::atomic<bool>* shedding;
  LimitPtr global;                     // null: no limit
  std::vector<LimitPtr> per_upstream;  // by upstream index
  std::vector<LimitPtr> per_model;     // by route index
  // max_concurrent of API keys and teams (no queue: 429 at once).
  std::vector<LimitPtr> per_key, per_team;  // by index in auth
  std::vector<Concurrency> key_configs, team_configs;
  bool any_limit = false;  // false: the limit stage has nothing to do

  // `processes`: worker processes (server.processes) the limits are split
  // between; each process enforces its share (rounded up) of each limit.
  explicit SharedPolicy(const Settings& s, std::atomic<bool>* shedding_flag = nullptr,
                        const SharedPolicy* previous = nullptr, const Settings* previous_settings = nullptr,
                        uint32_t processes = 1);
  SharedPolicy(const SharedPolicy&) = delete;
  SharedPolicy& operator=(const SharedPolicy&) = delete;

  // Every limit by scope ("global", "upstream:NAME", "model:NAME", "key:ID",
  // "team:NAME"), for the gauges and for carrying limits over a reload.
  std::vector<std::pair<std::string, LimitPtr>> scopes(const Settings& s) const;

  struct Gate {
    policy::ConcurrencyLimit* limit = nullptr;  // null: unlimited
    const Concurrency* config = nullptr;
  };
  static constexpr size_t kGates = 5;
  // The limits a request passes, in the order they are taken: global,
  // upstream, model route, then its API key's and team's max_concurrent.
  std::array<Gate, kGates> gates_for(const Settings& s, const ModelRoute* route, const ApiKey* key) const;

 private:
  std::atomic<bool> own_shedding_{false};
};

}  // namespace sluice::gateway
