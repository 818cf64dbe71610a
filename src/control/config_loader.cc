#include "control/config_loader.h"

#include <arpa/inet.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <vector>

namespace sluice::control {
namespace {

using gateway::Millis;

constexpr std::string_view kEmbeddedSource = "<embedded default>";

// Kept minimal on purpose: everything not written here takes the defaults in
// gateway/settings.h, so the two cannot drift apart.
constexpr std::string_view kEmbeddedYaml =
    R"(# Sluice with no --config: the embedded mock model answers every model name.
server:
  listen: "0.0.0.0:8080"
  admin_listen: "127.0.0.1:9901"
upstreams:
  - name: mock
    endpoints: ["builtin:mock"]
models:
  - name: mock-1            # the mock's own model, listed by GET /v1/models
    upstream: mock
  - name: "*"               # any other name reaches the mock too
    upstream: mock
)";

// Longest accepted duration. Far beyond any sensible timeout, and small enough
// that now() + timeout cannot overflow a nanosecond steady_clock.
constexpr int64_t kMaxDurationMs = int64_t{8760} * 3600 * 1000;

// A config error unwinds to the API boundary as this exception (exceptions are
// fine at config load, DESIGN.md section 5), which keeps each check one line.
struct ConfigError {
  std::string message;
};

// A YAML value together with where it is: its dotted key path and the position
// to report (the value's, or its key's when the value is empty).
struct Field {
  YAML::Node node;
  std::string path;
  YAML::Mark mark;
  YAML::Mark key_mark;  // of its key in a mapping; else the same as mark
};

bool is_empty(const YAML::Node& n) { return n.IsNull() || !n.IsDefined(); }

std::string describe(const YAML::Node& n) {
  if (is_empty(n)) return "nothing";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  const std::string& v = n.Scalar();
  return v.size() <= 80 ? "'" + v + "'" : "'" + v.substr(0, 80) + "...'";
}

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string join(std::initializer_list<std::string_view> items) {
  std::string out;
  for (std::string_view s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "; did you mean 'x'?" for the closest candidate within a typo's reach, else "".
template <class Names>
std::string suggestion(std::string_view got, const Names& candidates) {
  std::string_view best;
  size_t best_d = 3;
  for (std::string_view c : candidates) {
    size_t d = edit_distance(got, c);
    if (d < best_d && d * 2 < c.size()) best = c, best_d = d;
  }
  return best.empty() ? "" : "; did you mean " + in_quotes(best) + "?";
}

bool has_control_chars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

bool is_tchar(unsigned char c) {  // RFC 9110 token
  return std::isalnum(c) || (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

bool is_http_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return is_tchar(c); });
}

bool is_ipv4(const std::string& s) {
  in_addr a;
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool is_ipv6(const std::string& s) {
  in6_addr a;
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

// DNS name (labels of letters, digits, '-' and '_') that is not a malformed IPv4 literal.
bool is_hostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  if (std::all_of(s.begin(), s.end(),
                  [](char c) { return std::isdigit((unsigned char)c) || c == '.'; }))
    return false;  // all digits: only a valid IPv4 literal would do, checked separately
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('.', start);
    if (end == std::string_view::npos) end = s.size();
    std::string_view label = s.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (unsigned char c : label)
      if (!std::isalnum(c) && c != '-' && c != '_') return false;
    start = end + 1;
  }
  return true;
}

std::optional<uint64_t> parse_u64(std::string_view digits) {
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || p != digits.data() + digits.size()) return std::nullopt;
  return v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace((unsigned char)s.front())) s.remove_prefix(1);
  while (!s.empty() && std::isspace((unsigned char)s.back())) s.remove_suffix(1);
  return s;
}

// "host:port" or "[v6]:port". Fills host (without brackets) and the port text;
// returns what is wrong, or "" when the shape is right.
std::string split_host_port(std::string_view in, std::string& host, std::string_view& port,
                            bool& has_port, bool& bracketed) {
  bracketed = !in.empty() && in.front() == '[';
  std::string_view rest;
  if (bracketed) {
    size_t close = in.find(']');
    if (close == std::string_view::npos) return "missing ']' after the IPv6 address";
    host = std::string(in.substr(1, close - 1));
    rest = in.substr(close + 1);
  } else {
    size_t colon = in.find(':');
    if (colon != std::string_view::npos && in.find(':', colon + 1) != std::string_view::npos)
      return "IPv6 addresses must be written in brackets, e.g. [::1]:8080";
    host = std::string(in.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : in.substr(colon);
  }
  has_port = !rest.empty();
  if (has_port && rest.front() != ':') return "unexpected " + in_quotes(rest) + " after the host";
  port = has_port ? rest.substr(1) : std::string_view();
  if (host.empty()) return "missing host";
  if (bracketed && !is_ipv6(host)) return "invalid IPv6 address " + in_quotes(host);
  return "";
}

// The parsed form of a listen address, for the overlap check.
struct ListenAddr {
  std::string host;
  uint32_t port = 0;
};

std::string parse_listen(std::string_view text, ListenAddr& out) {
  const std::string expected = "expected IP:port, e.g. 0.0.0.0:8080, 127.0.0.1:0 or [::]:8080";
  std::string_view port;
  bool has_port = false, bracketed = false;
  std::string why = split_host_port(text, out.host, port, has_port, bracketed);
  if (!why.empty()) return why + " (" + expected + ")";
  if (!has_port) return "missing port (" + expected + ")";
  if (!bracketed && out.host == "localhost") out.host = "127.0.0.1";  // as the listener reads it
  if (!bracketed && !is_ipv4(out.host))
    return "host " + in_quotes(out.host) + " is not an IP address (" + expected + ")";
  std::optional<uint64_t> p = parse_u64(port);
  if (!p || *p > 65535) return "port must be 0-65535 (0 picks a free port), got " + in_quotes(port);
  out.port = static_cast<uint32_t>(*p);
  return "";
}

std::string parse_endpoint(std::string_view url, gateway::Endpoint& ep) {
  const std::string expected =
      "expected a URL like http://host:port, https://host/prefix or builtin:mock";
  ep.url = std::string(url);
  if (url.starts_with("builtin:")) {
    if (url != "builtin:mock")
      return "unknown builtin endpoint " + in_quotes(url) + " (expected builtin:mock)";
    ep.builtin_mock = true;
    return "";
  }
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return expected + ", got " + in_quotes(url);
  std::string scheme(url.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (scheme != "http" && scheme != "https")
    return "unsupported scheme " + in_quotes(scheme) + " (expected http or https)";
  ep.tls = scheme == "https";
  std::string_view rest = url.substr(sep + 3);
  if (rest.find_first_of("?#") != std::string_view::npos)
    return "query strings and fragments are not allowed in an endpoint URL";
  if (has_control_chars(rest) || rest.find(' ') != std::string_view::npos)
    return "spaces and control characters are not allowed in an endpoint URL";
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos)
    return "credentials in the URL are not allowed: use api_key, api_key_env or headers";
  std::string_view port;
  bool has_port = false, bracketed = false;
  std::string why = split_host_port(authority, ep.host, port, has_port, bracketed);
  if (!why.empty()) return why + " (" + expected + ")";
  if (!bracketed && !is_ipv4(ep.host) && !is_hostname(ep.host))
    return "invalid host " + in_quotes(ep.host) + " (expected a DNS name or an IP address)";
  ep.port = ep.tls ? 443 : 80;
  if (has_port) {
    std::optional<uint64_t> p = parse_u64(port);
    if (!p || *p == 0 || *p > 65535) return "port must be 1-65535, got " + in_quotes(port);
    ep.port = static_cast<uint16_t>(*p);
  }
  // RFC 3986 path characters only: the prefix is copied verbatim into request lines.
  for (unsigned char c : path)
    if (!std::isalnum(c) && (c == 0 || !std::strchr("/-._~!$&'()*+,;=:@%", c)))
      return "invalid character " + in_quotes(std::string(1, static_cast<char>(c))) +
             " in the URL path";
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  // SDK base URLs end in /v1, and request paths already start with it: a
  // trailing /v1 is the API root, not a prefix (http://h:8000/v1 == http://h:8000).
  if (path.ends_with("/v1")) path.remove_suffix(3);
  ep.path_prefix = std::string(path);
  return "";
}

// Headers the gateway itself owns on the upstream connection: setting them from
// config would break message framing or routing.
constexpr std::string_view kReservedHeaders[] = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
    "te",   "trailer",        "proxy-connection"};

// A mapping read and checked once: known keys only, each at most once.
class Mapping {
 public:
  std::vector<std::pair<std::string, Field>> entries;
  Field self;

  const Field* find(std::string_view key) const {
    for (const auto& [k, f] : entries)
      if (k == key) return &f;
    return nullptr;
  }
};

// Reads typed values out of YAML nodes; each failure becomes one ConfigError
// naming the source, position and key path.
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  [[noreturn]] void fail(const YAML::Mark& mark, std::string_view path,
                         std::string_view what) const {
    int line = mark.is_null() ? 0 : mark.line, col = mark.is_null() ? 0 : mark.column;
    std::string msg =
        source_ + ":" + std::to_string(line + 1) + ":" + std::to_string(col + 1) + ": ";
    if (!path.empty()) msg.append(path).append(": ");
    msg.append(what);
    throw ConfigError{std::move(msg)};
  }
  [[noreturn]] void fail(const Field& f, std::string_view what) const {
    fail(f.mark, f.path, what);
  }
  // "FILE:LINE:COL: path: " for a message that is not an error (a warning).
  std::string where(const Field& f) const {
    int line = f.mark.is_null() ? 0 : f.mark.line, col = f.mark.is_null() ? 0 : f.mark.column;
    return source_ + ":" + std::to_string(line + 1) + ":" + std::to_string(col + 1) + ": " + f.path + ": ";
  }
  // A command-line override, checked by the same rules as the key it replaces.
  [[noreturn]] void fail_flag(std::string_view flag, std::string_view what) const {
    throw ConfigError{std::string(flag) + ": " + std::string(what)};
  }

  // `allowed` empty = any key (e.g. header names).
  Mapping mapping(const Field& f, std::initializer_list<std::string_view> allowed = {}) const {
    Mapping m{{}, f};
    if (is_empty(f.node)) return m;
    if (!f.node.IsMap()) fail(f, "expected a mapping (key: value), got " + describe(f.node));
    for (auto it = f.node.begin(); it != f.node.end(); ++it) {
      // Copies on purpose: `it->` yields a temporary proxy that references would outlive.
      YAML::Node key = it->first, value = it->second;
      if (!key.IsScalar()) fail(key.Mark(), f.path, "expected a string key, got " + describe(key));
      std::string name = key.Scalar();
      std::string path = f.path.empty() ? name : f.path + "." + name;
      if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), name) == allowed.end())
        fail(key.Mark(), path,
             "unknown key " + in_quotes(name) + " (expected one of: " + join(allowed) + ")" +
                 suggestion(name, allowed));
      if (const Field* first = m.find(name))
        fail(key.Mark(), path,
             "duplicate key " + in_quotes(name) + " (first set at line " +
                 std::to_string(first->key_mark.line + 1) + ")");
      YAML::Mark mark = is_empty(value) ? key.Mark() : value.Mark();
      m.entries.emplace_back(std::move(name), Field{value, std::move(path), mark, key.Mark()});
    }
    return m;
  }

  const Field& require(const Mapping& m, std::string_view key) const {
    const Field* f = m.find(key);
    if (f && !is_empty(f->node)) return *f;
    if (f) fail(*f, "missing required key " + in_quotes(key) + " (it has no value)");
    std::string path =
        m.self.path.empty() ? std::string(key) : m.self.path + "." + std::string(key);
    fail(m.self.mark, path, "missing required key " + in_quotes(key));
  }

  std::vector<Field> sequence(const Field& f) const {
    std::vector<Field> out;
    if (is_empty(f.node)) return out;
    if (!f.node.IsSequence()) fail(f, "expected a list, got " + describe(f.node));
    for (size_t i = 0; i < f.node.size(); ++i) {
      YAML::Node item = f.node[i];
      YAML::Mark mark = item.Mark().is_null() ? f.mark : item.Mark();
      out.push_back(Field{item, f.path + "[" + std::to_string(i) + "]", mark, mark});
    }
    return out;
  }

  const std::string& scalar(const Field& f, std::string_view expected) const {
    if (!f.node.IsScalar())
      fail(f, "expected " + std::string(expected) + ", got " + describe(f.node));
    return f.node.Scalar();
  }

  // A non-empty single-line string.
  std::string text(const Field& f, std::string_view expected = "a string") const {
    std::string s = scalar(f, expected);
    if (s.empty()) fail(f, "expected " + std::string(expected) + ", got an empty string");
    if (has_control_chars(s)) fail(f, "control characters (CR, LF, NUL, ...) are not allowed");
    return s;
  }

  bool boolean(const Field& f) const {
    bool b = false;
    if (!f.node.IsScalar() || !YAML::convert<bool>::decode(f.node, b))
      fail(f, "expected true or false, got " + describe(f.node));
    return b;
  }

  uint64_t integer(const Field& f, uint64_t min, uint64_t max) const {
    std::string expected = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
    std::optional<uint64_t> v = parse_u64(trim(scalar(f, expected)));
    if (!v || *v < min || *v > max) fail(f, "expected " + expected + ", got " + describe(f.node));
    return *v;
  }

  Millis duration(const Field& f) const {
    static constexpr std::pair<std::string_view, int64_t> kUnits[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
    const std::string expected =
        "a duration: integer milliseconds or a string like 250ms, 10s, 2m, 1h";
    auto [n, unit] = number_and_unit(f, expected, "e.g. 1500ms");
    int64_t mult = 0;
    if (unit.empty()) mult = 1;
    for (const auto& [name, ms] : kUnits)
      if (unit == name) mult = ms;
    if (mult == 0)
      fail(f, "unknown duration unit " + in_quotes(unit) + " (expected ms, s, m or h)");
    if (n == 0) fail(f, "must be greater than zero");
    if (n > static_cast<uint64_t>(kMaxDurationMs / mult))
      fail(f, "is too long (at most 8760h, one year)");
    return Millis(static_cast<int64_t>(n) * mult);
  }

  uint64_t size(const Field& f) const {
    static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {{"B", 1},
                                                                       {"KB", 1000},
                                                                       {"MB", 1000'000},
                                                                       {"GB", 1000'000'000},
                                                                       {"KiB", 1ull << 10},
                                                                       {"MiB", 1ull << 20},
                                                                       {"GiB", 1ull << 30}};
    const std::string expected = "a size: integer bytes or a string like 512KiB, 16MiB, 1GB";
    auto [n, unit] = number_and_unit(f, expected, "e.g. 1536KiB");
    uint64_t mult = 0;
    if (unit.empty()) mult = 1;
    for (const auto& [name, bytes] : kUnits)
      if (unit == name) mult = bytes;
    if (mult == 0)
      fail(f,
           "unknown size unit " + in_quotes(unit) + " (expected B, KB, MB, GB, KiB, MiB or GiB)");
    if (n == 0) fail(f, "must be greater than zero");
    if (n > std::numeric_limits<uint64_t>::max() / mult)
      fail(f, "is too large (does not fit in 64 bits)");
    return n * mult;
  }

 private:
  // "16MiB" -> {16, "MiB"}; "5000" -> {5000, ""}. Whitespace between is allowed.
  std::pair<uint64_t, std::string_view> number_and_unit(
      const Field& f, const std::string& expected, std::string_view smaller_unit_example) const {
    std::string_view s = trim(scalar(f, expected));
    if (s.starts_with('-')) fail(f, "must not be negative, got " + describe(f.node));
    size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    if (digits == 0) fail(f, "expected " + expected + ", got " + describe(f.node));
    if (digits < s.size() && s[digits] == '.')
      fail(f, "expected a whole number, got " + describe(f.node) + " (use a smaller unit, " +
                  std::string(smaller_unit_example) + ")");
    std::optional<uint64_t> n = parse_u64(s.substr(0, digits));
    if (!n) fail(f, "is too large (does not fit in 64 bits)");
    return {*n, trim(s.substr(digits))};
  }

  std::string source_;
};

// Builds Settings from the document root, validating as it goes.
class SettingsBuilder {
 public:
  SettingsBuilder(const Reader& r, std::string_view source, const LoadOptions& options)
      : r_(r), options_(options) {
    s_.source = std::string(source);
  }

  gateway::Settings build(const YAML::Node& root) {
    Field top{root, "", root.Mark(), root.Mark()};
    if (is_empty(root))
      r_.fail(top, "the config is empty: expected a mapping with 'upstreams' and 'models'");
    Mapping m = r_.mapping(top, {"server", "timeouts", "upstreams", "models", "default_upstream"});
    if (const Field* f = m.find("server")) read_server(*f);
    apply_overrides(m.find("server"));
    if (const Field* f = m.find("timeouts")) read_timeouts(*f, s_.default_timeouts);
    if (const Field* f = m.find("upstreams"))
      for (const Field& u : r_.sequence(*f)) read_upstream(u);
    const Field* models = m.find("models");
    if (models)
      for (const Field& route : r_.sequence(*models)) read_model(route);
    if (s_.models.empty())
      r_.fail(models ? models->mark : root.Mark(), "models", "no models: add at least one route");
    if (const Field* f = m.find("default_upstream")) {
      gateway::ModelRoute route;
      route.upstream = upstream_named(*f);
      route.timeouts = s_.upstreams[route.upstream].timeouts;
      s_.default_route = std::move(route);
    }
    s_.index_models();
    return std::move(s_);
  }

 private:
  void read_server(const Field& f) {
    Mapping m = r_.mapping(
        f, {"listen", "admin_listen", "workers", "max_header_bytes", "max_headers", "max_body_bytes",
            "header_timeout", "idle_timeout", "drain_timeout", "access_log", "tls", "http2"});
    gateway::Server& sv = s_.server;
    const Field* listen = m.find("listen");
    const Field* admin = m.find("admin_listen");
    ListenAddr a;
    if (listen) {
      sv.listen = r_.text(*listen, "an address like 0.0.0.0:8080");
      if (std::string why = parse_listen(sv.listen, a); !why.empty()) r_.fail(*listen, why);
    }
    if (admin) {
      sv.admin_listen = r_.text(*admin, "an address like 127.0.0.1:9901");
      if (std::string why = parse_listen(sv.admin_listen, a); !why.empty()) r_.fail(*admin, why);
    }
    if (const Field* v = m.find("workers"))
      sv.workers = static_cast<uint32_t>(r_.integer(*v, 0, kMaxWorkers));
    if (const Field* v = m.find("max_header_bytes")) sv.max_header_bytes = r_.size(*v);
    if (const Field* v = m.find("max_headers"))
      sv.max_headers =
          static_cast<uint32_t>(r_.integer(*v, 1, std::numeric_limits<uint32_t>::max()));
    if (const Field* v = m.find("max_body_bytes")) sv.max_body_bytes = r_.size(*v);
    if (const Field* v = m.find("header_timeout")) sv.header_timeout = r_.duration(*v);
    if (const Field* v = m.find("idle_timeout")) sv.idle_timeout = r_.duration(*v);
    if (const Field* v = m.find("drain_timeout")) sv.drain_timeout = r_.duration(*v);
    if (const Field* v = m.find("access_log")) {
      sv.access_log = r_.text(*v, "stdout, stderr, off or a file path");
      if (std::string why = check_access_log(sv.access_log); !why.empty()) r_.fail(*v, why);
    }
    sv.h2.max_header_list_bytes = static_cast<uint32_t>(std::min<uint64_t>(sv.max_header_bytes, 1u << 30));
    sv.h2.max_headers = sv.max_headers;
    if (const Field* v = m.find("http2")) read_http2(*v, sv);
    if (const Field* v = m.find("tls")) read_server_tls(*v, sv);
  }

  void read_http2(const Field& f, gateway::Server& sv) {
    Mapping m = r_.mapping(f, {"enabled", "max_concurrent_streams", "max_header_list_bytes", "header_table_bytes",
                               "stream_window_bytes", "connection_window_bytes", "stream_buffer_bytes",
                               "max_continuations", "max_connection_memory", "max_resets_per_second",
                               "max_control_frames_per_second", "max_empty_frames_per_second"});
    http::h2::Options& o = sv.h2;
    constexpr uint64_t kMaxWindow = (1u << 31) - 1;
    auto u32 = [&](const char* key, uint32_t& out, uint64_t lo, uint64_t hi, bool size) {
      if (const Field* v = m.find(key)) {
        uint64_t x = size ? r_.size(*v) : r_.integer(*v, lo, hi);
        if (x < lo || x > hi)
          r_.fail(*v, std::string(key) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi));
        out = static_cast<uint32_t>(x);
      }
    };
    auto rate = [&](const char* key, http::h2::RateLimit& out) {
      if (const Field* v = m.find(key)) {
        out.per_second = static_cast<double>(r_.integer(*v, 1, 1'000'000));
        out.burst = out.per_second * 2;
      }
    };
    if (const Field* v = m.find("enabled")) sv.http2 = r_.boolean(*v);
    u32("max_concurrent_streams", o.max_concurrent_streams, 1, 10'000, false);
    u32("max_header_list_bytes", o.max_header_list_bytes, 1024, 1u << 30, true);
    u32("header_table_bytes", o.header_table_bytes, 0, 1u << 20, true);
    u32("stream_window_bytes", o.stream_window_bytes, 65'535, kMaxWindow, true);
    u32("connection_window_bytes", o.connection_window_bytes, 65'535, kMaxWindow, true);
    u32("stream_buffer_bytes", o.stream_buffer_bytes, 1024, 1u << 30, true);
    u32("max_continuations", o.max_continuations, 1, 1000, false);
    if (const Field* v = m.find("max_connection_memory")) o.max_connection_memory = r_.size(*v);
    rate("max_resets_per_second", o.resets);
    rate("max_control_frames_per_second", o.control_frames);
    rate("max_empty_frames_per_second", o.empty_frames);
  }

  void read_server_tls(const Field& f, gateway::Server& sv) {
    Mapping m = r_.mapping(f, {"listen", "certificates", "min_version", "session_tickets", "reload_check"});
    gateway::ServerTls& t = sv.tls;
    const Field& listen = r_.require(m, "listen");
    t.listen = r_.text(listen, "an address like 0.0.0.0:8443");
    ListenAddr a;
    if (std::string why = parse_listen(t.listen, a); !why.empty()) r_.fail(listen, why);
    tls_listen_field_ = listen;  // checked against the other listeners after the overrides
    const Field& certs = r_.require(m, "certificates");
    for (const Field& c : r_.sequence(certs)) {
      Mapping cm = r_.mapping(c, {"cert_file", "key_file"});
      auto readable = [&](const Field& v) {
        std::string path = r_.text(v, "a file path");
        if (access(path.c_str(), R_OK) != 0)
          r_.fail(v, "cannot read " + in_quotes(path) + ": " + std::strerror(errno));
        return path;
      };
      std::string cert = readable(r_.require(cm, "cert_file"));
      std::string key = readable(r_.require(cm, "key_file"));
      t.certificates.emplace_back(std::move(cert), std::move(key));
    }
    if (t.certificates.empty()) r_.fail(certs, "no certificates: add at least one cert_file/key_file pair");
    if (const Field* v = m.find("min_version")) {
      std::string mv = r_.text(*v, "\"1.2\" or \"1.3\"");
      if (mv != "1.2" && mv != "1.3") r_.fail(*v, "min_version must be \"1.2\" or \"1.3\", got " + in_quotes(mv));
      t.tls12 = mv == "1.2";
    }
    if (const Field* v = m.find("session_tickets")) t.session_tickets = r_.boolean(*v);
    if (const Field* v = m.find("reload_check")) t.reload_check = r_.duration(*v);
  }

  // Command-line overrides replace the config's values and pass the same
  // checks; then the listeners are checked against each other, wherever
  // their addresses came from.
  void apply_overrides(const Field* server) {
    gateway::Server& sv = s_.server;
    ListenAddr a;
    auto address = [&](const std::optional<std::string>& flag_value, const char* flag, std::string& out) {
      if (!flag_value) return;
      if (std::string why = parse_listen(*flag_value, a); !why.empty()) r_.fail_flag(flag, why);
      out = *flag_value;
    };
    address(options_.listen, "--listen", sv.listen);
    address(options_.admin_listen, "--admin", sv.admin_listen);
    if (options_.workers) {
      std::optional<uint64_t> n = parse_u64(trim(*options_.workers));
      if (!n || *n > kMaxWorkers)
        r_.fail_flag("--workers", "expected an integer from 0 to " + std::to_string(kMaxWorkers) +
                                      " (0 = one per core), got " + in_quotes(*options_.workers));
      sv.workers = static_cast<uint32_t>(*n);
    }
    if (options_.access_log) {
      if (options_.access_log->empty()) r_.fail_flag("--access-log", "expected stdout, stderr, off or a file path");
      if (std::string why = check_access_log(*options_.access_log); !why.empty()) r_.fail_flag("--access-log", why);
      sv.access_log = *options_.access_log;
    }

    ListenAddr api, admin;
    (void)parse_listen(sv.listen, api);
    (void)parse_listen(sv.admin_listen, admin);
    auto wildcard = [](const std::string& h) { return h == "0.0.0.0" || h == "::"; };
    if (api.port != 0 && api.port == admin.port &&
        (api.host == admin.host || wildcard(api.host) || wildcard(admin.host))) {
      std::string why = "admin_listen " + in_quotes(sv.admin_listen) + " overlaps listen " + in_quotes(sv.listen) +
                        ": give the admin endpoint its own port";
      if (options_.admin_listen || options_.listen) r_.fail_flag(options_.admin_listen ? "--admin" : "--listen", why);
      Field where = server ? *server : Field{};
      if (server) {
        Mapping m = r_.mapping(*server);
        if (const Field* f = m.find("admin_listen")) where = *f;
        else if (const Field* f = m.find("listen")) where = *f;
      }
      r_.fail(where, why);
    }
    if (!sv.tls.listen.empty() && (sv.tls.listen == sv.listen || sv.tls.listen == sv.admin_listen)) {
      ListenAddr t;
      (void)parse_listen(sv.tls.listen, t);
      if (t.port != 0) {
        std::string why = "tls.listen " + in_quotes(sv.tls.listen) + " must differ from listen and admin_listen";
        if (options_.admin_listen || options_.listen) r_.fail_flag(options_.listen ? "--listen" : "--admin", why);
        r_.fail(tls_listen_field_, why);
      }
    }
  }

  // Why `log` cannot be an access log destination, or "".
  static std::string check_access_log(const std::string& log) {
    if (log == "stdout" || log == "stderr" || log == "off") return "";
    namespace fs = std::filesystem;
    std::error_code ec;
    if (log.back() == '/' || fs::is_directory(log, ec))
      return in_quotes(log) + " is a directory (expected stdout, stderr, off or a file path)";
    fs::path dir = fs::path(log).parent_path();
    if (!dir.empty() && !fs::is_directory(dir, ec))
      return "directory " + in_quotes(dir.string()) + " of the access log does not exist";
    return "";
  }

  // Overrides the fields present in `f`, leaving the others as inherited.
  void read_timeouts(const Field& f, gateway::Timeouts& t) {
    static constexpr std::pair<std::string_view, Millis gateway::Timeouts::*> kFields[] = {
        {"connect", &gateway::Timeouts::connect},
        {"ttft", &gateway::Timeouts::ttft},
        {"idle", &gateway::Timeouts::idle},
        {"total", &gateway::Timeouts::total},
        {"client_stall", &gateway::Timeouts::client_stall}};
    Mapping m = r_.mapping(f, {"connect", "ttft", "idle", "total", "client_stall"});
    for (const auto& [name, member] : kFields)
      if (const Field* v = m.find(name)) t.*member = r_.duration(*v);
  }

  void read_upstream(const Field& f) {
    Mapping m = r_.mapping(f, {"name", "endpoints", "api_key", "api_key_env", "headers", "tls",
                               "max_idle_per_endpoint", "protocol", "http2", "timeouts"});
    gateway::Upstream up;
    const Field& name = r_.require(m, "name");
    up.name = r_.text(name, "an upstream name");
    if (!std::all_of(up.name.begin(), up.name.end(), [](unsigned char c) {
          return std::isalnum(c) || c == '-' || c == '_' || c == '.';
        }))
      r_.fail(name, "upstream names may contain only letters, digits, '-', '_' and '.', got " +
                        in_quotes(up.name));
    if (auto [it, added] = upstream_index_.try_emplace(up.name, s_.upstreams.size()); !added)
      r_.fail(name, "duplicate upstream name " + in_quotes(up.name) + " (first defined at line " +
                        std::to_string(upstream_lines_[it->second] + 1) + ")");

    const Field& endpoints = r_.require(m, "endpoints");
    for (const Field& e : r_.sequence(endpoints)) {
      gateway::Endpoint ep;
      if (std::string why = parse_endpoint(r_.text(e, "an endpoint URL"), ep); !why.empty())
        r_.fail(e, why);
      for (const gateway::Endpoint& other : up.endpoints)
        if (other.url == ep.url) r_.fail(e, "duplicate endpoint " + in_quotes(ep.url));
      up.endpoints.push_back(std::move(ep));
    }
    if (up.endpoints.empty()) r_.fail(endpoints, "no endpoints: add at least one URL");

    read_api_key(m, up);
    if (!up.api_key.empty()) up.authorization = "Bearer " + up.api_key;
    if (const Field* h = m.find("headers")) read_headers(*h, up);
    if (const Field* t = m.find("tls")) read_tls(*t, up.tls);
    if (const Field* v = m.find("max_idle_per_endpoint"))
      up.max_idle_per_endpoint =
          static_cast<uint32_t>(r_.integer(*v, 0, std::numeric_limits<uint32_t>::max()));
    if (const Field* v = m.find("protocol")) {
      std::string p = r_.text(*v, "\"http1\" or \"h2\"");
      if (p != "http1" && p != "h2") r_.fail(*v, "protocol must be \"http1\" or \"h2\", got " + in_quotes(p));
      up.http2 = p == "h2";
    }
    if (const Field* v = m.find("http2")) {
      if (!up.http2) r_.fail(*v, "http2 settings need protocol: h2");
      read_upstream_http2(*v, up.h2);
    }
    up.timeouts = s_.default_timeouts;
    if (const Field* t = m.find("timeouts")) read_timeouts(*t, up.timeouts);

    upstream_lines_.push_back(name.mark.line);
    s_.upstreams.push_back(std::move(up));
  }

  void read_upstream_http2(const Field& f, gateway::UpstreamHttp2& h) {
    Mapping m = r_.mapping(f, {"ping_interval", "ping_timeout", "max_streams_per_connection",
                               "max_connections_per_endpoint"});
    auto positive = [&](const char* key, gateway::Millis& out) {
      if (const Field* v = m.find(key)) {
        out = r_.duration(*v);
        if (out.count() <= 0) r_.fail(*v, "must be greater than zero");
      }
    };
    positive("ping_interval", h.ping_interval);
    positive("ping_timeout", h.ping_timeout);
    if (const Field* v = m.find("max_streams_per_connection"))
      h.max_streams = static_cast<uint32_t>(r_.integer(*v, 1, 10'000));
    if (const Field* v = m.find("max_connections_per_endpoint"))
      h.max_connections = static_cast<uint32_t>(r_.integer(*v, 1, 1'000));
  }

  // Never echoes the key itself into a message: config errors end up in logs.
  void read_api_key(const Mapping& m, gateway::Upstream& up) {
    const Field* key = m.find("api_key");
    const Field* env = m.find("api_key_env");
    if (key && env) r_.fail(*env, "set either api_key or api_key_env, not both");
    if (key) {
      const std::string& v = r_.scalar(*key, "a string");
      if (v.empty()) r_.fail(*key, "the API key is empty (leave api_key out to send none)");
      if (has_control_chars(v))
        r_.fail(*key, "the API key contains control characters (CR, LF, NUL, ...)");
      up.api_key = v;
    }
    if (env) {
      std::string var = r_.text(*env, "an environment variable name");
      bool valid = (std::isalpha((unsigned char)var[0]) || var[0] == '_') &&
                   std::all_of(var.begin(), var.end(),
                               [](unsigned char c) { return std::isalnum(c) || c == '_'; });
      if (!valid)
        r_.fail(*env,
                in_quotes(var) + " is not an environment variable name (letters, digits, '_')");
      const char* v = std::getenv(var.c_str());
      if (!v && options_.check_only) {
        // Configs are checked where the secrets are not (CI): a warning here,
        // an error at start-up.
        s_.warnings.push_back(r_.where(*env) + "environment variable " + var +
                              " is not set (it must hold the upstream's API key when sluice starts)");
        return;
      }
      if (!v)
        r_.fail(*env, "environment variable " + var +
                          " is not set (it should hold the upstream's API key)");
      if (!*v)
        r_.fail(*env, "environment variable " + var +
                          " is empty (it should hold the upstream's API key)");
      if (has_control_chars(v))
        r_.fail(*env, "environment variable " + var + " contains control characters");
      up.api_key = v;
    }
  }

  void read_headers(const Field& f, gateway::Upstream& up) {
    for (const auto& [raw, value] : r_.mapping(f).entries) {
      // Problems with the name point at the name, problems with the value at the value.
      auto fail_name = [&](const std::string& what) { r_.fail(value.key_mark, value.path, what); };
      if (!is_http_token(raw))
        fail_name(in_quotes(raw) + " is not a valid header name (expected an HTTP token)");
      std::string name = raw;
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (std::find(std::begin(kReservedHeaders), std::end(kReservedHeaders), name) !=
          std::end(kReservedHeaders))
        fail_name("header " + in_quotes(raw) + " is managed by sluice and cannot be set");
      if (name == "authorization" && !up.api_key.empty())
        fail_name("authorization conflicts with api_key/api_key_env: set only one");
      for (const auto& [other, unused] : up.headers)
        if (other == name)
          fail_name("header " + in_quotes(raw) + " is set twice (names are case-insensitive)");
      const std::string& v = r_.scalar(value, "a header value");
      if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
        r_.fail(value, "header values must not contain CR, LF or NUL");
      up.headers.emplace_back(std::move(name), v);
    }
  }

  void read_tls(const Field& f, gateway::TlsClient& tls) {
    Mapping m = r_.mapping(f, {"verify", "ca_file", "sni"});
    if (const Field* v = m.find("verify")) tls.verify = r_.boolean(*v);
    if (const Field* v = m.find("ca_file")) {
      tls.ca_file = r_.text(*v, "a file path");
      std::error_code ec;
      std::string why;
      if (std::filesystem::is_directory(tls.ca_file, ec))
        why = "it is a directory";
      else if (access(tls.ca_file.c_str(), R_OK) != 0)
        why = std::strerror(errno);
      if (!why.empty()) r_.fail(*v, "cannot read CA file " + in_quotes(tls.ca_file) + ": " + why);
    }
    if (const Field* v = m.find("sni")) {
      tls.sni = r_.text(*v, "a DNS name");
      if (!is_hostname(tls.sni)) r_.fail(*v, in_quotes(tls.sni) + " is not a DNS name");
    }
  }

  void read_model(const Field& f) {
    Mapping m = r_.mapping(f, {"name", "aliases", "upstream", "upstream_model", "timeouts"});
    gateway::ModelRoute route;
    const Field& name = r_.require(m, "name");
    route.name = model_name(name);
    claim_model_name(name, route.name);
    if (const Field* a = m.find("aliases")) {
      if (route.name == "*" && !r_.sequence(*a).empty())
        r_.fail(*a, "the catch-all route '*' cannot have aliases");
      for (const Field& alias : r_.sequence(*a)) {
        route.aliases.push_back(model_name(alias));
        if (route.aliases.back() == "*")
          r_.fail(alias, "'*' cannot be an alias: use it as a route name");
        claim_model_name(alias, route.aliases.back());
      }
    }
    route.upstream = upstream_named(r_.require(m, "upstream"));
    route.upstream_model = route.name == "*" ? "" : route.name;
    if (const Field* v = m.find("upstream_model")) route.upstream_model = model_name(*v);
    if (route.upstream_model == "*") r_.fail(*m.find("upstream_model"), "upstream_model must be a model name, not '*'");
    route.timeouts = s_.upstreams[route.upstream].timeouts;
    if (const Field* t = m.find("timeouts")) read_timeouts(*t, route.timeouts);
    s_.models.push_back(std::move(route));
  }

  // The index of the upstream named by `f`, or a config error listing the known ones.
  size_t upstream_named(const Field& f) {
    std::string up = r_.text(f, "an upstream name");
    auto it = upstream_index_.find(up);
    if (it == upstream_index_.end()) {
      std::vector<std::string_view> known;
      for (const gateway::Upstream& u : s_.upstreams) known.push_back(u.name);
      std::string list;
      for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      r_.fail(f, "unknown upstream " + in_quotes(up) +
                     (known.empty() ? " (no upstreams are defined)" : " (defined: " + list + ")") +
                     suggestion(up, known));
    }
    return it->second;
  }

  std::string model_name(const Field& f) {
    std::string name = r_.text(f, "a model name");
    if (std::any_of(name.begin(), name.end(), [](unsigned char c) { return std::isspace(c); }))
      r_.fail(f, "model names must not contain spaces, got " + in_quotes(name));
    if (name != "*" && name.find('*') != std::string::npos)
      r_.fail(f, "patterns are not supported: a name is exact, or '*' alone for the catch-all");
    return name;
  }

  // Names and aliases share one namespace: a request's model must match one route.
  void claim_model_name(const Field& f, const std::string& name) {
    auto [it, added] = model_names_.try_emplace(name, f.path, f.mark.line);
    if (!added)
      r_.fail(f, "duplicate model name " + in_quotes(name) + " (already used by " +
                     it->second.first + " at line " + std::to_string(it->second.second + 1) + ")");
  }

  static constexpr uint64_t kMaxWorkers = 256;

  const Reader& r_;
  const LoadOptions& options_;
  gateway::Settings s_;
  Field tls_listen_field_;
  std::unordered_map<std::string, size_t> upstream_index_;
  std::vector<int> upstream_lines_;  // of each upstream's name
  std::unordered_map<std::string, std::pair<std::string, int>> model_names_;  // -> path, line
};

Result<gateway::Settings> load(const std::string& yaml, std::string_view source, const LoadOptions& options) {
  Reader reader(source);
  try {
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(yaml);
    } catch (const YAML::Exception& e) {
      reader.fail(e.mark, "", "invalid YAML: " + e.msg);
    }
    if (docs.size() > 1)
      reader.fail(docs[1].Mark(), "", "expected one YAML document, found several ('---')");
    YAML::Node root = docs.empty() ? YAML::Node() : docs[0];
    return SettingsBuilder(reader, source, options).build(root);
  } catch (const ConfigError& e) {
    return Status(Errc::kInvalid, e.message);
  } catch (const YAML::Exception& e) {  // not expected: every access above is type-checked
    return Status(Errc::kInvalid, std::string(source) + ": " + e.what());
  }
}

}  // namespace

Result<gateway::Settings> load_config_string(std::string_view yaml, std::string_view source_name,
                                             const LoadOptions& options) {
  return load(std::string(yaml), source_name, options);
}

Result<gateway::Settings> load_config_file(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return Status(Errc::kInvalid, path + ": cannot read config file: it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status(Errc::kInvalid, path + ": cannot read config file: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return Status(Errc::kInvalid, path + ": cannot read config file: " + std::strerror(errno));
  return load(text.str(), path, options);
}

std::string_view embedded_default_yaml() { return kEmbeddedYaml; }

Result<gateway::Settings> load_embedded_default(const LoadOptions& options) {
  return load_config_string(kEmbeddedYaml, kEmbeddedSource, options);
}

gateway::Settings embedded_default_settings() {
  Result<gateway::Settings> s = load_config_string(kEmbeddedYaml, kEmbeddedSource);
  if (!s) {  // a bug in this file, caught by the unit tests
    std::fprintf(stderr, "sluice: embedded default config is invalid: %s\n",
                 s.status().message().c_str());
    std::abort();
  }
  return std::move(s).value();
}

}  // namespace sluice::control
