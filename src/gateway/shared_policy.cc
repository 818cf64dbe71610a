#include "gateway/shared_policy.h"

#include <algorithm>

namespace sluice::gateway {

namespace {

std::unique_ptr<policy::ConcurrencyLimit> make_limit(const Concurrency& c) {
  if (!c.enabled()) return nullptr;
  return std::make_unique<policy::ConcurrencyLimit>(
      policy::ConcurrencyLimit::Options{c.max, c.queue, c.queue_timeout.count()});
}

// The index of `route` in s.models, or -1 (the default_upstream route).
ptrdiff_t route_index(const Settings& s, const ModelRoute* route) {
  if (s.models.empty() || route < s.models.data() || route >= s.models.data() + s.models.size()) return -1;
  return route - s.models.data();
}

}  // namespace

SharedPolicy::SharedPolicy(const Settings& s) : global(make_limit(s.admission.concurrency)) {
  for (const Upstream& u : s.upstreams) per_upstream.push_back(make_limit(u.concurrency));
  for (const ModelRoute& m : s.models) per_model.push_back(make_limit(m.concurrency));
  any_limit = global || std::any_of(per_upstream.begin(), per_upstream.end(), [](const auto& l) { return l != nullptr; }) ||
              std::any_of(per_model.begin(), per_model.end(), [](const auto& l) { return l != nullptr; });
}

std::array<SharedPolicy::Gate, 3> SharedPolicy::gates_for(const Settings& s, const ModelRoute* route) const {
  std::array<Gate, 3> out{Gate{global.get(), &s.admission.concurrency}};
  if (!route) return out;
  if (route->upstream < per_upstream.size())
    out[1] = {per_upstream[route->upstream].get(), &s.upstreams[route->upstream].concurrency};
  if (ptrdiff_t i = route_index(s, route); i >= 0 && static_cast<size_t>(i) < per_model.size())
    out[2] = {per_model[i].get(), &route->concurrency};
  return out;
}

}  // namespace sluice::gateway
