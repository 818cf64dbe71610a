// The `auth` section: API keys stored as salted hashes (policy/api_keys.h),
// their teams, allowed models and limits.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <unordered_map>

#include "control/config/builder.h"

namespace sluice::control::config {
namespace {

bool valid_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '@';
  });
}

gateway::Limits read_limits(const Reader& r, const Field& f) {
  Mapping m = r.mapping(f, {"rpm", "tpm", "max_concurrent", "tokens_per_day", "tokens_per_month", "usd_per_day",
                            "usd_per_month"});
  gateway::Limits l;
  constexpr uint64_t kMax = uint64_t{1} << 50;
  auto count = [&](const char* key, std::optional<uint64_t>& out) {
    if (const Field* v = m.find(key)) out = r.integer(*v, 0, kMax);
  };
  auto usd = [&](const char* key, std::optional<double>& out) {
    if (const Field* v = m.find(key)) {
      const std::string& text = r.scalar(*v, "an amount in USD, e.g. 100 or 12.5");
      double x = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
      if (ec != std::errc() || p != text.data() + text.size() || !std::isfinite(x) || x < 0)
        r.fail(*v, "expected a non-negative amount in USD, e.g. 100 or 12.5, got " + in_quotes(text));
      out = x;
    }
  };
  count("rpm", l.rpm);
  count("tpm", l.tpm);
  count("max_concurrent", l.max_concurrent);
  count("tokens_per_day", l.tokens_per_day);
  count("tokens_per_month", l.tokens_per_month);
  usd("usd_per_day", l.usd_per_day);
  usd("usd_per_month", l.usd_per_month);
  return l;
}

}  // namespace

void read_auth(Builder& b, const Field& f) {
  const Reader& r = b.r;
  gateway::Auth& a = b.s.auth;
  Mapping m = r.mapping(f, {"keys", "teams"});
  std::unordered_map<std::string, int> team_lines;
  if (const Field* teams = m.find("teams")) {
    for (const Field& t : r.sequence(*teams)) {
      Mapping tm = r.mapping(t, {"name", "limits"});
      const Field& name = r.require(tm, "name");
      gateway::Team team;
      team.name = r.text(name, "a team name");
      if (!valid_name(team.name)) r.fail(name, "team names may contain letters, digits and -_.:@, got " + in_quotes(team.name));
      if (auto [it, added] = team_lines.try_emplace(team.name, name.mark.line); !added)
        r.fail(name, "duplicate team " + in_quotes(team.name) + " (first at line " + std::to_string(it->second + 1) + ")");
      if (const Field* v = tm.find("limits")) team.limits = read_limits(r, *v);
      a.teams.push_back(std::move(team));
    }
  }
  std::unordered_map<std::string, int> id_lines;
  std::unordered_map<std::string, int> hash_lines;
  if (const Field* keys = m.find("keys")) {
    for (const Field& k : r.sequence(*keys)) {
      Mapping km = r.mapping(k, {"id", "hash", "team", "models", "limits"});
      gateway::ApiKey key;
      const Field& id = r.require(km, "id");
      key.id = r.text(id, "a key id");
      if (!valid_name(key.id)) r.fail(id, "key ids may contain letters, digits and -_.:@, got " + in_quotes(key.id));
      if (auto [it, added] = id_lines.try_emplace(key.id, id.mark.line); !added)
        r.fail(id, "duplicate key id " + in_quotes(key.id) + " (first at line " + std::to_string(it->second + 1) + ")");
      const Field& hash = r.require(km, "hash");
      const std::string& text = r.scalar(hash, "\"sha256:<salt>:<hex>\"");
      auto h = policy::parse_key_hash(text);
      if (!h) r.fail(hash, "malformed key hash: " + h.status().message());
      if (auto [it, added] = hash_lines.try_emplace(text, hash.mark.line); !added)
        r.fail(hash, "the same key hash is given twice (first at line " + std::to_string(it->second + 1) + ")");
      if (const Field* v = km.find("team")) {
        key.team = r.text(*v, "a team name");
        std::vector<std::string_view> known;
        for (const auto& t : a.teams) known.push_back(t.name);
        auto it = std::find(known.begin(), known.end(), key.team);
        if (it == known.end())
          r.fail(*v, "unknown team " + in_quotes(key.team) + " (define it under auth.teams)" + suggestion(key.team, known));
        key.team_index = static_cast<size_t>(it - known.begin());
      }
      if (const Field* v = km.find("models")) {
        for (const Field& p : r.sequence(*v)) key.models.push_back(r.text(p, "a model name or pattern"));
        if (key.models.empty()) r.fail(*v, "an empty models list allows nothing: leave models out to allow all");
      }
      if (const Field* v = km.find("limits")) key.limits = read_limits(r, *v);
      a.index.add(std::move(*h), a.keys.size());
      a.keys.push_back(std::move(key));
    }
  }
}

}  // namespace sluice::control::config

namespace sluice::control::config {

void read_pricing(Builder& b, const Field& f) {
  const Reader& r = b.r;
  for (const Field& item : r.sequence(f)) {
    Mapping m = r.mapping(item, {"model", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok"});
    gateway::Price p;
    p.model = r.text(r.require(m, "model"), "a model name or '*' pattern");
    auto price = [&](const char* key, double& out, bool required) {
      const Field* v = required ? &r.require(m, key) : m.find(key);
      if (!v) return;
      const std::string& text = r.scalar(*v, "a price in USD per million tokens");
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
      if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(out) || out < 0)
        r.fail(*v, "expected a non-negative price in USD per million tokens, got " + in_quotes(text));
    };
    price("input_per_mtok", p.input_per_mtok, true);
    price("output_per_mtok", p.output_per_mtok, true);
    p.cached_input_per_mtok = p.input_per_mtok;
    price("cached_input_per_mtok", p.cached_input_per_mtok, false);
    b.s.pricing.push_back(std::move(p));
  }
}

void read_limits_section(Builder& b, const Field& f) {
  const Reader& r = b.r;
  Mapping m = r.mapping(f, {"backend", "redis", "default_max_tokens", "state_file", "window"});
  auto& redis = b.s.redis;
  if (const Field* v = m.find("backend")) {
    const std::string backend = r.text(*v, "local or redis");
    if (backend != "local" && backend != "redis") r.fail(*v, "backend must be local or redis, got " + in_quotes(backend));
    redis.enabled = backend == "redis";
  }
  if (const Field* v = m.find("redis")) {
    if (!redis.enabled) r.fail(*v, "redis settings need backend: redis");
    Mapping rm = r.mapping(*v, {"address", "timeout", "on_failure", "expected_replicas"});
    if (const Field* a = rm.find("address")) {
      std::string addr = r.text(*a, "host:port, e.g. 127.0.0.1:6379");
      std::string host;
      std::string_view port;
      bool has_port = false, bracketed = false;
      if (std::string why = split_host_port(addr, host, port, has_port, bracketed); !why.empty()) r.fail(*a, why);
      std::optional<uint64_t> p = has_port ? parse_u64(port) : std::optional<uint64_t>(6379);
      if (!p || *p == 0 || *p > 65535) r.fail(*a, "port must be 1-65535");
      redis.host = host;
      redis.port = static_cast<uint16_t>(*p);
    }
    if (const Field* t = rm.find("timeout")) redis.timeout = r.duration(*t);
    if (const Field* o = rm.find("on_failure")) {
      const std::string mode = r.text(*o, "fail_open, fail_closed or local_fallback");
      using F = gateway::Settings::RedisBackend::OnFailure;
      if (mode == "fail_open") redis.on_failure = F::kFailOpen;
      else if (mode == "fail_closed") redis.on_failure = F::kFailClosed;
      else if (mode == "local_fallback") redis.on_failure = F::kLocalFallback;
      else r.fail(*o, "on_failure must be fail_open, fail_closed or local_fallback, got " + in_quotes(mode));
    }
    if (const Field* e = rm.find("expected_replicas"))
      redis.expected_replicas = static_cast<uint32_t>(r.integer(*e, 1, 10'000));
  }
  if (const Field* v = m.find("window")) b.s.limits_window = r.duration(*v);
  if (const Field* v = m.find("default_max_tokens")) b.s.default_max_tokens = r.integer(*v, 1, 10'000'000);
  if (const Field* v = m.find("state_file")) {
    b.s.limits_state_file = r.text(*v, "a file path");
    if (std::string why = check_log_destination(b.s.limits_state_file, "state file"); !why.empty() ||
        b.s.limits_state_file == "stdout" || b.s.limits_state_file == "stderr" || b.s.limits_state_file == "off")
      r.fail(*v, why.empty() ? "expected a file path" : why);
  }
}

}  // namespace sluice::control::config
