#include "gateway/settings.h"

namespace sluice::gateway {

void Settings::index_models() {
  model_index_.clear();
  wildcard_ = kNone;
  for (size_t i = 0; i < models.size(); ++i) {
    const ModelRoute& m = models[i];
    if (m.name == "*") {
      if (wildcard_ == kNone) wildcard_ = i;
      continue;
    }
    model_index_.try_emplace(m.name, i);
    for (const std::string& alias : m.aliases) model_index_.try_emplace(alias, i);
  }
  indexed_models_ = models.size();
}

const ModelRoute* Settings::find_model(std::string_view model) const {
  if (indexed_models_ != models.size()) {
    const ModelRoute* wildcard = nullptr;
    for (const ModelRoute& m : models) {
      if (m.name == "*") {
        if (!wildcard) wildcard = &m;
        continue;
      }
      if (m.name == model) return &m;
      for (const std::string& alias : m.aliases)
        if (alias == model) return &m;
    }
    return wildcard;
  }
  if (auto it = model_index_.find(model); it != model_index_.end()) return &models[it->second];
  return wildcard_ == kNone ? nullptr : &models[wildcard_];
}

const Price* Settings::price(std::string_view model) const {
  for (const Price& p : pricing)
    if (policy::model_allowed({p.model}, model)) return &p;
  return nullptr;
}

bool Settings::uses_builtin_mock() const {
  for (const auto& u : upstreams)
    for (const auto& e : u.endpoints)
      if (e.builtin_mock) return true;
  return false;
}

const ModelRoute* Settings::route_without_model() const {
  if (const ModelRoute* r = find_model(""); r && r->name == "*") return r;
  return default_route ? &*default_route : nullptr;
}

}  // namespace sluice::gateway
