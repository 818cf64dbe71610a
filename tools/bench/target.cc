#include "bench/target.h"

#include <arpa/inet.h>

#include <charconv>

namespace sluice::bench {
namespace {
Status bad(std::string_view url, std::string_view why) {
  return Status(Errc::kInvalid, "bad URL '" + std::string(url) + "': " + std::string(why));
}

bool is_ip_literal(const std::string& h) {
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}
}  // namespace

Result<Target> parse_target(std::string_view url) {
  Target t;
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    t.tls = true;
    rest = url.substr(8);
  } else {
    return bad(url, "expected http:// or https://");
  }
  size_t path_at = rest.find_first_of("/?#");
  std::string_view hostport = rest.substr(0, path_at);
  std::string_view path = path_at == std::string_view::npos ? std::string_view{} : rest.substr(path_at);
  if (path.find('#') != std::string_view::npos) return bad(url, "fragments are not sent");
  if (hostport.find('@') != std::string_view::npos) return bad(url, "userinfo is not supported");
  if (hostport.empty()) return bad(url, "no host");

  std::string_view port_text;
  if (hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return bad(url, "unclosed '['");
    t.host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad(url, "junk after ']'");
      port_text = after.substr(1);
    }
  } else {
    size_t colon = hostport.find(':');
    t.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) port_text = hostport.substr(colon + 1);
  }
  if (t.host.empty()) return bad(url, "no host");
  t.port = t.tls ? 443 : 80;
  if (!port_text.empty()) {
    unsigned v = 0;
    auto r = std::from_chars(port_text.data(), port_text.data() + port_text.size(), v);
    if (r.ec != std::errc() || r.ptr != port_text.data() + port_text.size() || v == 0 || v > 65535) {
      return bad(url, "bad port");
    }
    t.port = static_cast<uint16_t>(v);
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad(url, "path needs percent-encoding");
  }
  t.host_is_ip = is_ip_literal(t.host);
  t.authority = std::string(hostport);
  t.path = path.empty() || path == "/" ? "/v1/chat/completions" : std::string(path);
  if (t.path.front() == '?') t.path = "/v1/chat/completions" + t.path;
  return t;
}

}  // namespace sluice::bench
