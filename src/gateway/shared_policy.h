// Admission state every worker shares: the memory-shedding flag the sampler
// sets, and the concurrency limits (global, per upstream, per model route).
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <vector>

#include "gateway/settings.h"
#include "policy/concurrency.h"

namespace sluice::gateway {

struct SharedPolicy {
  // Set by the memory sampler (main thread); read by each request's admit stage.
  std::atomic<bool> shedding{false};
  std::unique_ptr<policy::ConcurrencyLimit> global;                   // null: no limit
  std::vector<std::unique_ptr<policy::ConcurrencyLimit>> per_upstream;  // by upstream index
  std::vector<std::unique_ptr<policy::ConcurrencyLimit>> per_model;     // by route index
  // max_concurrent of API keys and teams (no queue: 429 at once).
  std::vector<std::unique_ptr<policy::ConcurrencyLimit>> per_key, per_team;  // by index in auth
  std::vector<Concurrency> key_configs, team_configs;
  bool any_limit = false;  // false: the limit stage has nothing to do

  explicit SharedPolicy(const Settings& s);

  struct Gate {
    policy::ConcurrencyLimit* limit = nullptr;  // null: unlimited
    const Concurrency* config = nullptr;
  };
  static constexpr size_t kGates = 5;
  // The limits a request passes, in the order they are taken: global,
  // upstream, model route, then its API key's and team's max_concurrent.
  std::array<Gate, kGates> gates_for(const Settings& s, const ModelRoute* route, const ApiKey* key) const;
};

}  // namespace sluice::gateway
