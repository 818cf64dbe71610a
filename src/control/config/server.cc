// The `server` section: listeners, limits, HTTP/2, TLS and the access log, and
// the command-line overrides that replace some of them.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "control/config/builder.h"

namespace sluice::control::config {
namespace {

constexpr uint64_t kMaxWorkers = 256;
constexpr uint64_t kMaxProcesses = 64;

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

void read_http2(const Reader& r, const Field& f, gateway::Server& sv) {
  Mapping m = r.mapping(f, {"enabled", "max_concurrent_streams", "max_header_list_bytes", "header_table_bytes",
                            "stream_window_bytes", "connection_window_bytes", "stream_buffer_bytes",
                            "max_continuations", "max_connection_memory", "max_resets_per_second",
                            "max_control_frames_per_second", "max_empty_frames_per_second"});
  http::h2::Options& o = sv.h2;
  constexpr uint64_t kMaxWindow = (1u << 31) - 1;
  auto u32 = [&](const char* key, uint32_t& out, uint64_t lo, uint64_t hi, bool size) {
    if (const Field* v = m.find(key)) {
      uint64_t x = size ? r.size(*v) : r.integer(*v, lo, hi);
      if (x < lo || x > hi)
        r.fail(*v, std::string(key) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi));
      out = static_cast<uint32_t>(x);
    }
  };
  auto rate = [&](const char* key, http::h2::RateLimit& out) {
    if (const Field* v = m.find(key)) {
      out.per_second = static_cast<double>(r.integer(*v, 1, 1'000'000));
      out.burst = out.per_second * 2;
    }
  };
  if (const Field* v = m.find("enabled")) sv.http2 = r.boolean(*v);
  u32("max_concurrent_streams", o.max_concurrent_streams, 1, 10'000, false);
  u32("max_header_list_bytes", o.max_header_list_bytes, 1024, 1u << 30, true);
  u32("header_table_bytes", o.header_table_bytes, 0, 1u << 20, true);
  u32("stream_window_bytes", o.stream_window_bytes, 65'535, kMaxWindow, true);
  u32("connection_window_bytes", o.connection_window_bytes, 65'535, kMaxWindow, true);
  u32("stream_buffer_bytes", o.stream_buffer_bytes, 1024, 1u << 30, true);
  u32("max_continuations", o.max_continuations, 1, 1000, false);
  if (const Field* v = m.find("max_connection_memory")) o.max_connection_memory = r.size(*v);
  rate("max_resets_per_second", o.resets);
  rate("max_control_frames_per_second", o.control_frames);
  rate("max_empty_frames_per_second", o.empty_frames);
}

void read_server_tls(Builder& b, const Field& f) {
  const Reader& r = b.r;
  Mapping m = r.mapping(f, {"listen", "certificates", "min_version", "session_tickets", "reload_check"});
  gateway::ServerTls& t = b.s.server.tls;
  const Field& listen = r.require(m, "listen");
  t.listen = r.text(listen, "an address like 0.0.0.0:8443");
  ListenAddr a;
  if (std::string why = parse_listen(t.listen, a); !why.empty()) r.fail(listen, why);
  b.tls_listen_field = listen;  // checked against the other listeners after the overrides
  const Field& certs = r.require(m, "certificates");
  for (const Field& c : r.sequence(certs)) {
    Mapping cm = r.mapping(c, {"cert_file", "key_file"});
    auto readable = [&](const Field& v) {
      std::string path = r.text(v, "a file path");
      if (access(path.c_str(), R_OK) != 0)
        r.fail(v, "cannot read " + in_quotes(path) + ": " + std::strerror(errno));
      return path;
    };
    std::string cert = readable(r.require(cm, "cert_file"));
    std::string key = readable(r.require(cm, "key_file"));
    t.certificates.emplace_back(std::move(cert), std::move(key));
  }
  if (t.certificates.empty()) r.fail(certs, "no certificates: add at least one cert_file/key_file pair");
  if (const Field* v = m.find("min_version")) {
    std::string mv = r.text(*v, "\"1.2\" or \"1.3\"");
    if (mv != "1.2" && mv != "1.3") r.fail(*v, "min_version must be \"1.2\" or \"1.3\", got " + in_quotes(mv));
    t.tls12 = mv == "1.2";
  }
  if (const Field* v = m.find("session_tickets")) t.session_tickets = r.boolean(*v);
  if (const Field* v = m.find("reload_check")) t.reload_check = r.duration(*v);
}

}  // namespace

void read_server(Builder& b, const Field& f) {
  const Reader& r = b.r;
  Mapping m = r.mapping(
      f, {"listen", "admin_listen", "workers", "processes", "max_header_bytes", "max_headers", "max_body_bytes",
          "max_header_value_bytes", "header_timeout", "idle_timeout", "drain_timeout", "body_timeout",
          "min_body_rate", "max_connections", "access_log", "tls", "http2"});
  gateway::Server& sv = b.s.server;
  const Field* listen = m.find("listen");
  const Field* admin = m.find("admin_listen");
  ListenAddr a;
  if (listen) {
    sv.listen = r.text(*listen, "an address like 0.0.0.0:8080");
    if (std::string why = parse_listen(sv.listen, a); !why.empty()) r.fail(*listen, why);
  }
  if (admin) {
    sv.admin_listen = r.text(*admin, "an address like 127.0.0.1:9901");
    if (std::string why = parse_listen(sv.admin_listen, a); !why.empty()) r.fail(*admin, why);
  }
  if (const Field* v = m.find("workers"))
    sv.workers = static_cast<uint32_t>(r.integer(*v, 0, kMaxWorkers));
  if (const Field* v = m.find("processes"))
    sv.processes = static_cast<uint32_t>(r.integer(*v, 0, kMaxProcesses));
  if (const Field* v = m.find("max_header_bytes")) sv.max_header_bytes = r.size(*v);
  if (const Field* v = m.find("max_headers"))
    sv.max_headers =
        static_cast<uint32_t>(r.integer(*v, 1, std::numeric_limits<uint32_t>::max()));
  if (const Field* v = m.find("max_body_bytes")) sv.max_body_bytes = r.size(*v);
  if (const Field* v = m.find("max_header_value_bytes")) sv.max_header_value_bytes = r.size(*v);
  if (const Field* v = m.find("body_timeout")) sv.body_timeout = r.duration(*v);
  if (const Field* v = m.find("min_body_rate")) {
    // {bytes_per_second: 1024, grace: 5s}; bytes_per_second 0 turns the check off.
    Mapping rate = r.mapping(*v, {"bytes_per_second", "grace"});
    if (const Field* b = rate.find("bytes_per_second")) sv.min_body_rate = r.integer(*b, 0, uint64_t{1} << 40);
    if (const Field* g = rate.find("grace")) sv.min_body_rate_grace = r.duration(*g);
  }
  if (const Field* v = m.find("max_connections"))
    sv.max_connections = static_cast<uint32_t>(r.integer(*v, 1, 10'000'000));
  if (const Field* v = m.find("header_timeout")) sv.header_timeout = r.duration(*v);
  if (const Field* v = m.find("idle_timeout")) sv.idle_timeout = r.duration(*v);
  if (const Field* v = m.find("drain_timeout")) sv.drain_timeout = r.duration(*v);
  if (const Field* v = m.find("access_log")) {
    sv.access_log = r.text(*v, "stdout, stderr, off or a file path");
    if (std::string why = check_log_destination(sv.access_log, "access log"); !why.empty()) r.fail(*v, why);
  }
  sv.h2.max_header_list_bytes = static_cast<uint32_t>(std::min<uint64_t>(sv.max_header_bytes, 1u << 30));
  sv.h2.max_headers = sv.max_headers;
  if (const Field* v = m.find("http2")) read_http2(r, *v, sv);
  if (const Field* v = m.find("tls")) read_server_tls(b, *v);
}

void apply_overrides(Builder& b, const Field* server) {
  const Reader& r = b.r;
  const LoadOptions& options = b.options;
  gateway::Server& sv = b.s.server;
  ListenAddr a;
  auto address = [&](const std::optional<std::string>& flag_value, const char* flag, std::string& out) {
    if (!flag_value) return;
    if (std::string why = parse_listen(*flag_value, a); !why.empty()) r.fail_flag(flag, why);
    out = *flag_value;
  };
  address(options.listen, "--listen", sv.listen);
  address(options.admin_listen, "--admin", sv.admin_listen);
  if (options.workers) {
    std::optional<uint64_t> n = parse_u64(trim(*options.workers));
    if (!n || *n > kMaxWorkers)
      r.fail_flag("--workers", "expected an integer from 0 to " + std::to_string(kMaxWorkers) +
                                   " (0 = one per core), got " + in_quotes(*options.workers));
    sv.workers = static_cast<uint32_t>(*n);
  }
  if (options.access_log) {
    if (options.access_log->empty()) r.fail_flag("--access-log", "expected stdout, stderr, off or a file path");
    if (std::string why = check_log_destination(*options.access_log, "access log"); !why.empty()) r.fail_flag("--access-log", why);
    sv.access_log = *options.access_log;
  }

  ListenAddr api, admin;
  (void)parse_listen(sv.listen, api);
  (void)parse_listen(sv.admin_listen, admin);
  auto wildcard = [](const std::string& h) { return h == "0.0.0.0" || h == "::"; };
  if (api.port != 0 && api.port == admin.port &&
      (api.host == admin.host || wildcard(api.host) || wildcard(admin.host))) {
    std::string why = "admin_listen " + in_quotes(sv.admin_listen) + " overlaps listen " + in_quotes(sv.listen) +
                      ": give the admin endpoint its own port";
    if (options.admin_listen || options.listen) r.fail_flag(options.admin_listen ? "--admin" : "--listen", why);
    Field where = server ? *server : Field{};
    if (server) {
      Mapping m = r.mapping(*server);
      if (const Field* f = m.find("admin_listen")) where = *f;
      else if (const Field* f = m.find("listen")) where = *f;
    }
    r.fail(where, why);
  }
  if (!sv.tls.listen.empty() && (sv.tls.listen == sv.listen || sv.tls.listen == sv.admin_listen)) {
    ListenAddr t;
    (void)parse_listen(sv.tls.listen, t);
    if (t.port != 0) {
      std::string why = "tls.listen " + in_quotes(sv.tls.listen) + " must differ from listen and admin_listen";
      if (options.admin_listen || options.listen) r.fail_flag(options.listen ? "--listen" : "--admin", why);
      r.fail(b.tls_listen_field, why);
    }
  }
}

}  // namespace sluice::control::config
