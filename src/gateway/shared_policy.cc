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
  auto caller = [](const Limits& l) {
    return l.max_concurrent ? Concurrency{.max = static_cast<uint32_t>(*l.max_concurrent), .queue = 0, .status = 429}
                            : Concurrency{};
  };
  for (const ApiKey& k : s.auth.keys) key_configs.push_back(caller(k.limits));
  for (const Team& t : s.auth.teams) team_configs.push_back(caller(t.limits));
  for (const Concurrency& c : key_configs) per_key.push_back(make_limit(c));
  for (const Concurrency& c : team_configs) per_team.push_back(make_limit(c));
  auto some = [](const auto& v) { return std::any_of(v.begin(), v.end(), [](const auto& l) { return l != nullptr; }); };
  any_limit = global || some(per_upstream) || some(per_model) || some(per_key) || some(per_team);
}

std::array<SharedPolicy::Gate, SharedPolicy::kGates> SharedPolicy::gates_for(const Settings& s,
                                                                             const ModelRoute* route,
                                                                             const ApiKey* key) const {
  std::array<Gate, kGates> out{Gate{global.get(), &s.admission.concurrency}};
  if (key) {
    const size_t k = static_cast<size_t>(key - s.auth.keys.data());
    if (k < per_key.size()) out[3] = {per_key[k].get(), &key_configs[k]};
    if (key->team_index < per_team.size()) out[4] = {per_team[key->team_index].get(), &team_configs[key->team_index]};
  }
  if (!route) return out;
  if (route->upstream < per_upstream.size())
    out[1] = {per_upstream[route->upstream].get(), &s.upstreams[route->upstream].concurrency};
  if (ptrdiff_t i = route_index(s, route); i >= 0 && static_cast<size_t>(i) < per_model.size())
    out[2] = {per_model[i].get(), &route->concurrency};
  return out;
}

}  // namespace sluice::gateway
