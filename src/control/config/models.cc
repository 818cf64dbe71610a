// The `models` section and `default_upstream`: which route a request's model
// name takes, to which upstream, under which name and timeouts.
#include <algorithm>
#include <cctype>
#include <unordered_map>
#include <utility>
#include <vector>

#include "control/config/builder.h"

namespace sluice::control::config {
namespace {

// {mode: drop|reject, names: [...]}: the request headers a route forwards.
policy::AllowHeaders read_allow_headers(const Reader& r, const Field& f) {
  Mapping m = r.mapping(f, {"mode", "names"});
  policy::AllowHeaders a;
  if (const Field* v = m.find("mode")) {
    std::string mode = r.text(*v, "drop or reject");
    if (mode != "drop" && mode != "reject") r.fail(*v, "mode must be drop or reject, got " + in_quotes(mode));
    a.mode = mode == "drop" ? policy::AllowHeaders::Mode::kDrop : policy::AllowHeaders::Mode::kReject;
  }
  for (const Field& n : r.sequence(r.require(m, "names"))) {
    std::string name = r.text(n, "a header name");
    if (!is_http_token(name)) r.fail(n, in_quotes(name) + " is not a valid header name (expected an HTTP token)");
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    a.names.push_back(std::move(name));
  }
  return a;
}

// Each route name and alias -> the key path and line that claimed it.
using ModelNames = std::unordered_map<std::string, std::pair<std::string, int>>;

// The index of the upstream named by `f`, or a config error listing the known ones.
size_t upstream_named(const Builder& b, const Field& f) {
  std::string up = b.r.text(f, "an upstream name");
  auto it = b.upstream_index.find(up);
  if (it == b.upstream_index.end()) {
    std::vector<std::string_view> known;
    for (const gateway::Upstream& u : b.s.upstreams) known.push_back(u.name);
    std::string list;
    for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    b.r.fail(f, "unknown upstream " + in_quotes(up) +
                    (known.empty() ? " (no upstreams are defined)" : " (defined: " + list + ")") +
                    suggestion(up, known));
  }
  return it->second;
}

std::string model_name(const Reader& r, const Field& f) {
  std::string name = r.text(f, "a model name");
  if (std::any_of(name.begin(), name.end(), [](unsigned char c) { return std::isspace(c); }))
    r.fail(f, "model names must not contain spaces, got " + in_quotes(name));
  if (name != "*" && name.find('*') != std::string::npos)
    r.fail(f, "patterns are not supported: a name is exact, or '*' alone for the catch-all");
  return name;
}

// Names and aliases share one namespace: a request's model must match one route.
void claim_model_name(const Reader& r, ModelNames& names, const Field& f, const std::string& name) {
  auto [it, added] = names.try_emplace(name, f.path, f.mark.line);
  if (!added)
    r.fail(f, "duplicate model name " + in_quotes(name) + " (already used by " + it->second.first +
                  " at line " + std::to_string(it->second.second + 1) + ")");
}

void read_model(Builder& b, ModelNames& names, const Field& f) {
  const Reader& r = b.r;
  Mapping m = r.mapping(f, {"name", "aliases", "upstream", "upstream_model", "timeouts", "allow_headers", "concurrency"});
  gateway::ModelRoute route;
  const Field& name = r.require(m, "name");
  route.name = model_name(r, name);
  claim_model_name(r, names, name, route.name);
  if (const Field* a = m.find("aliases")) {
    if (route.name == "*" && !r.sequence(*a).empty())
      r.fail(*a, "the catch-all route '*' cannot have aliases");
    for (const Field& alias : r.sequence(*a)) {
      route.aliases.push_back(model_name(r, alias));
      if (route.aliases.back() == "*")
        r.fail(alias, "'*' cannot be an alias: use it as a route name");
      claim_model_name(r, names, alias, route.aliases.back());
    }
  }
  route.upstream = upstream_named(b, r.require(m, "upstream"));
  route.upstream_model = route.name == "*" ? "" : route.name;
  if (const Field* v = m.find("upstream_model")) route.upstream_model = model_name(r, *v);
  if (route.upstream_model == "*") r.fail(*m.find("upstream_model"), "upstream_model must be a model name, not '*'");
  route.timeouts = b.s.upstreams[route.upstream].timeouts;
  if (const Field* t = m.find("timeouts")) read_timeouts(r, *t, route.timeouts);
  if (const Field* v = m.find("allow_headers")) route.allow_headers = read_allow_headers(r, *v);
  if (const Field* v = m.find("concurrency")) read_concurrency(r, *v, route.concurrency);
  b.s.models.push_back(std::move(route));
}

}  // namespace

void read_models(Builder& b, const Field& f) {
  ModelNames names;
  for (const Field& route : b.r.sequence(f)) read_model(b, names, route);
}

void read_default_upstream(Builder& b, const Field& f) {
  gateway::ModelRoute route;
  route.upstream = upstream_named(b, f);
  route.timeouts = b.s.upstreams[route.upstream].timeouts;
  b.s.default_route = std::move(route);
}

}  // namespace sluice::control::config
