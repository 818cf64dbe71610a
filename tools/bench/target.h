// Where the load goes: a parsed http:// or https:// URL.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace sluice::bench {

struct Target {
  bool tls = false;
  std::string host;       // name or IP literal, without brackets
  uint16_t port = 0;
  std::string authority;  // host header value: host[:port], brackets kept for IPv6
  std::string path;       // origin-form, "/v1/chat/completions" when the URL has none
  bool host_is_ip = false;
};

// http[s]://host[:port][/path[?query]]. No userinfo, no fragment.
Result<Target> parse_target(std::string_view url);

}  // namespace sluice::bench
