#include "gateway/shared_policy.h"

#include <algorithm>
#include <unordered_map>

namespace sluice::gateway {

namespace {

using LimitPtr = SharedPolicy::LimitPtr;
using OldLimits = std::unordered_map<std::string, LimitPtr>;

// A limit for `scope`: the previous snapshot's, reconfigured, when it had one.
LimitPtr make_limit(const Concurrency& c, const OldLimits& old, const std::string& scope, uint32_t processes) {
  if (!c.enabled()) return nullptr;
  auto share = [processes](uint32_t v) { return (v + processes - 1) / processes; };
  const policy::ConcurrencyLimit::Options o{share(c.max), share(c.queue), c.queue_timeout.count()};
  if (auto it = old.find(scope); it != old.end()) {
    it->second->reconfigure(o);
    return it->second;
  }
  return std::make_shared<policy::ConcurrencyLimit>(o);
}

// The index of `route` in s.models, or -1 (the default_upstream route).
ptrdiff_t route_index(const Settings& s, const ModelRoute* route) {
  if (s.models.empty() || route < s.models.data() || route >= s.models.data() + s.models.size()) return -1;
  return route - s.models.data();
}

}  // namespace

SharedPolicy::SharedPolicy(const Settings& s, std::atomic<bool>* shedding_flag, const SharedPolicy* previous,
                           const Settings* previous_settings, uint32_t processes)
    : shedding(shedding_flag ? shedding_flag : &own_shedding_) {
  processes = std::max<uint32_t>(1, processes);
  OldLimits old;
  if (previous && previous_settings)
    for (auto& [scope, l] : previous->scopes(*previous_settings)) old.emplace(std::move(scope), std::move(l));
  global = make_limit(s.admission.concurrency, old, "global", processes);
  for (const Upstream& u : s.upstreams)
    per_upstream.push_back(make_limit(u.concurrency, old, "upstream:" + u.name, processes));
  for (const ModelRoute& m : s.models) per_model.push_back(make_limit(m.concurrency, old, "model:" + m.name, processes));
  auto caller = [](const Limits& l) {
    return l.max_concurrent ? Concurrency{.max = static_cast<uint32_t>(*l.max_concurrent), .queue = 0, .status = 429}
                            : Concurrency{};
  };
  for (const ApiKey& k : s.auth.keys) key_configs.push_back(caller(k.limits));
  for (const Team& t : s.auth.teams) team_configs.push_back(caller(t.limits));
  for (size_t k = 0; k < key_configs.size(); ++k)
    per_key.push_back(make_limit(key_configs[k], old, "key:" + s.auth.keys[k].id, processes));
  for (size_t t = 0; t < team_configs.size(); ++t)
    per_team.push_back(make_limit(team_configs[t], old, "team:" + s.auth.teams[t].name, processes));
  auto some = [](const auto& v) { return std::any_of(v.begin(), v.end(), [](const auto& l) { return l != nullptr; }); };
  any_limit = global || some(per_upstream) || some(per_model) || some(per_key) || some(per_team);
}

std::vector<std::pair<std::string, LimitPtr>> SharedPolicy::scopes(const Settings& s) const {
  std::vector<std::pair<std::string, LimitPtr>> out;
  if (global) out.emplace_back("global", global);
  auto add = [&](const std::vector<LimitPtr>& v, const char* kind, auto name_of) {
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i]) out.emplace_back(std::string(kind) + ":" + name_of(i), v[i]);
  };
  add(per_upstream, "upstream", [&](size_t i) { return s.upstreams[i].name; });
  add(per_model, "model", [&](size_t i) { return s.models[i].name; });
  add(per_key, "key", [&](size_t i) { return s.auth.keys[i].id; });
  add(per_team, "team", [&](size_t i) { return s.auth.teams[i].name; });
  return out;
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
