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
  bool any_limit = false;  // false: the limit stage has nothing to do

  explicit SharedPolicy(const Settings& s);

  struct Gate {
    policy::ConcurrencyLimit* limit = nullptr;  // null: unlimited
    const Concurrency* config = nullptr;
  };
  // The limits a request on `route` passes, in the order they are taken:
  // global, upstream, model route.
  std::array<Gate, 3> gates_for(const Settings& s, const ModelRoute* route) const;
};

}  // namespace sluice::gateway
