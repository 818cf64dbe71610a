// The `upstreams` section: endpoints, credentials, headers, TLS, protocol and
// timeouts of each upstream, and the `timeouts` they inherit.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <vector>

#include "control/config/builder.h"

namespace sluice::control::config {
namespace {

// Headers the gateway itself owns on the upstream connection: setting them from
// config would break message framing or routing.
constexpr std::string_view kReservedHeaders[] = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
    "te",   "trailer",        "proxy-connection"};

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

void read_upstream_http2(const Reader& r, const Field& f, gateway::UpstreamHttp2& h) {
  Mapping m = r.mapping(f, {"ping_interval", "ping_timeout", "max_streams_per_connection",
                            "max_connections_per_endpoint"});
  auto positive = [&](const char* key, gateway::Millis& out) {
    if (const Field* v = m.find(key)) {
      out = r.duration(*v);
      if (out.count() <= 0) r.fail(*v, "must be greater than zero");
    }
  };
  positive("ping_interval", h.ping_interval);
  positive("ping_timeout", h.ping_timeout);
  if (const Field* v = m.find("max_streams_per_connection"))
    h.max_streams = static_cast<uint32_t>(r.integer(*v, 1, 10'000));
  if (const Field* v = m.find("max_connections_per_endpoint"))
    h.max_connections = static_cast<uint32_t>(r.integer(*v, 1, 1'000));
}

// Never echoes the key itself into a message: config errors end up in logs.
void read_api_key(Builder& b, const Mapping& m, gateway::Upstream& up) {
  const Reader& r = b.r;
  const Field* key = m.find("api_key");
  const Field* env = m.find("api_key_env");
  if (key && env) r.fail(*env, "set either api_key or api_key_env, not both");
  if (key) {
    const std::string& v = r.scalar(*key, "a string");
    if (v.empty()) r.fail(*key, "the API key is empty (leave api_key out to send none)");
    if (has_control_chars(v))
      r.fail(*key, "the API key contains control characters (CR, LF, NUL, ...)");
    up.api_key = v;
  }
  if (env) {
    std::string var = r.text(*env, "an environment variable name");
    bool valid = (std::isalpha((unsigned char)var[0]) || var[0] == '_') &&
                 std::all_of(var.begin(), var.end(),
                             [](unsigned char c) { return std::isalnum(c) || c == '_'; });
    if (!valid)
      r.fail(*env,
             in_quotes(var) + " is not an environment variable name (letters, digits, '_')");
    const char* v = std::getenv(var.c_str());
    if (!v && b.options.check_only) {
      // Configs are checked where the secrets are not (CI): a warning here,
      // an error at start-up.
      b.s.warnings.push_back(r.where(*env) + "environment variable " + var +
                             " is not set (it must hold the upstream's API key when sluice starts)");
      return;
    }
    if (!v)
      r.fail(*env, "environment variable " + var +
                       " is not set (it should hold the upstream's API key)");
    if (!*v)
      r.fail(*env, "environment variable " + var +
                       " is empty (it should hold the upstream's API key)");
    if (has_control_chars(v))
      r.fail(*env, "environment variable " + var + " contains control characters");
    up.api_key = v;
  }
}

void read_headers(const Reader& r, const Field& f, gateway::Upstream& up) {
  for (const auto& [raw, value] : r.mapping(f).entries) {
    // Problems with the name point at the name, problems with the value at the value.
    auto fail_name = [&](const std::string& what) { r.fail(value.key_mark, value.path, what); };
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
    const std::string& v = r.scalar(value, "a header value");
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      r.fail(value, "header values must not contain CR, LF or NUL");
    up.headers.emplace_back(std::move(name), v);
  }
}

void read_tls(const Reader& r, const Field& f, gateway::TlsClient& tls) {
  Mapping m = r.mapping(f, {"verify", "ca_file", "sni"});
  if (const Field* v = m.find("verify")) tls.verify = r.boolean(*v);
  if (const Field* v = m.find("ca_file")) {
    tls.ca_file = r.text(*v, "a file path");
    std::error_code ec;
    std::string why;
    if (std::filesystem::is_directory(tls.ca_file, ec))
      why = "it is a directory";
    else if (access(tls.ca_file.c_str(), R_OK) != 0)
      why = std::strerror(errno);
    if (!why.empty()) r.fail(*v, "cannot read CA file " + in_quotes(tls.ca_file) + ": " + why);
  }
  if (const Field* v = m.find("sni")) {
    tls.sni = r.text(*v, "a DNS name");
    if (!is_hostname(tls.sni)) r.fail(*v, in_quotes(tls.sni) + " is not a DNS name");
  }
}

// `name_lines` holds the line of each earlier upstream's name, for the duplicate message.
void read_upstream(Builder& b, const Field& f, std::vector<int>& name_lines) {
  const Reader& r = b.r;
  Mapping m = r.mapping(f, {"name", "endpoints", "api_key", "api_key_env", "headers", "tls",
                            "max_idle_per_endpoint", "protocol", "http2", "timeouts", "concurrency"});
  gateway::Upstream up;
  const Field& name = r.require(m, "name");
  up.name = r.text(name, "an upstream name");
  if (!std::all_of(up.name.begin(), up.name.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '_' || c == '.';
      }))
    r.fail(name, "upstream names may contain only letters, digits, '-', '_' and '.', got " +
                     in_quotes(up.name));
  if (auto [it, added] = b.upstream_index.try_emplace(up.name, b.s.upstreams.size()); !added)
    r.fail(name, "duplicate upstream name " + in_quotes(up.name) + " (first defined at line " +
                     std::to_string(name_lines[it->second] + 1) + ")");

  const Field& endpoints = r.require(m, "endpoints");
  for (const Field& e : r.sequence(endpoints)) {
    gateway::Endpoint ep;
    if (std::string why = parse_endpoint(r.text(e, "an endpoint URL"), ep); !why.empty())
      r.fail(e, why);
    for (const gateway::Endpoint& other : up.endpoints)
      if (other.url == ep.url) r.fail(e, "duplicate endpoint " + in_quotes(ep.url));
    up.endpoints.push_back(std::move(ep));
  }
  if (up.endpoints.empty()) r.fail(endpoints, "no endpoints: add at least one URL");

  read_api_key(b, m, up);
  if (!up.api_key.empty()) up.authorization = "Bearer " + up.api_key;
  if (const Field* h = m.find("headers")) read_headers(r, *h, up);
  if (const Field* t = m.find("tls")) read_tls(r, *t, up.tls);
  if (const Field* v = m.find("max_idle_per_endpoint"))
    up.max_idle_per_endpoint =
        static_cast<uint32_t>(r.integer(*v, 0, std::numeric_limits<uint32_t>::max()));
  if (const Field* v = m.find("protocol")) {
    std::string p = r.text(*v, "\"http1\" or \"h2\"");
    if (p != "http1" && p != "h2") r.fail(*v, "protocol must be \"http1\" or \"h2\", got " + in_quotes(p));
    up.http2 = p == "h2";
  }
  if (const Field* v = m.find("http2")) {
    if (!up.http2) r.fail(*v, "http2 settings need protocol: h2");
    read_upstream_http2(r, *v, up.h2);
  }
  up.timeouts = b.s.default_timeouts;
  if (const Field* t = m.find("timeouts")) read_timeouts(r, *t, up.timeouts);
  if (const Field* v = m.find("concurrency")) read_concurrency(r, *v, up.concurrency);

  name_lines.push_back(name.mark.line);
  b.s.upstreams.push_back(std::move(up));
}

}  // namespace

void read_timeouts(const Reader& r, const Field& f, gateway::Timeouts& t) {
  static constexpr std::pair<std::string_view, gateway::Millis gateway::Timeouts::*> kFields[] = {
      {"connect", &gateway::Timeouts::connect},
      {"ttft", &gateway::Timeouts::ttft},
      {"idle", &gateway::Timeouts::idle},
      {"total", &gateway::Timeouts::total},
      {"client_stall", &gateway::Timeouts::client_stall}};
  Mapping m = r.mapping(f, {"connect", "ttft", "idle", "total", "client_stall"});
  for (const auto& [name, member] : kFields)
    if (const Field* v = m.find(name)) t.*member = r.duration(*v);
}

void read_upstreams(Builder& b, const Field& f) {
  std::vector<int> name_lines;
  for (const Field& u : b.r.sequence(f)) read_upstream(b, u, name_lines);
}

}  // namespace sluice::control::config
