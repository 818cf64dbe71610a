// policy/: what the gateway admits. Plain objects, each with an injected clock
// where time matters, that pipeline stages call; no sockets, no protocol.
//
// Header rules: per-header RE2 patterns (required or optional), a cap on any
// one header value, and per-route allow-lists. Patterns are compiled once when
// the configuration loads; checking a request allocates nothing.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "http/message.h"
#include "policy/simple_pattern.h"

namespace re2 {
class RE2;
}

namespace sluice::policy {

// Why a request was refused: the rule and the header's name and length, never
// its value (rejections are logged, and values carry credentials). Views point
// into the rules or into the request's header names.
struct HeaderViolation {
  int status = 400;          // 400 invalid_header / header_not_allowed, 431 header_value_too_large
  std::string_view code;     // the client-facing error code
  std::string_view rule;     // the metric label and audit "rule": "pattern:x-request-id", ...
  std::string_view header;   // lowercase header name
  size_t value_length = 0;   // bytes of the offending value (0 when missing)
};

class HeaderRules {
 public:
  struct Spec {
    std::string header;   // any case; matched case-insensitively
    std::string pattern;  // RE2 syntax, matched against the whole value
    bool required = false;
  };

  HeaderRules() = default;
  // Compiles each pattern; the error names the rule's index and RE2's reason.
  static Result<HeaderRules> compile(std::vector<Spec> specs, uint64_t max_value_bytes);

  // The first violation, in the order the rules were written (the value cap
  // first), or nothing.
  std::optional<HeaderViolation> check(std::span<const http::Header> headers) const;

  bool empty() const { return rules_.empty() && max_value_bytes_ == 0; }
  size_t size() const { return rules_.size(); }
  // Every rule label check() can return, for metrics set to 0 at start.
  std::vector<std::string_view> labels() const;

 private:
  struct Rule {
    std::string header;  // lowercase
    std::string label;   // "pattern:<header>"
    std::string missing_label;  // "required:<header>"
    std::shared_ptr<const re2::RE2> re;
    std::optional<SimplePattern> fast;  // the same language without RE2, when the pattern is simple
    bool required = false;
  };
  std::vector<Rule> rules_;
  uint64_t max_value_bytes_ = 0;  // 0: no cap
};

// A route's allow-list: request headers not named are dropped before the
// upstream, or the request is refused. Headers the gateway always handles
// itself (hop-by-hop, framing, credentials, the request id) are not subject
// to it.
struct AllowHeaders {
  enum class Mode { kDrop, kReject };
  Mode mode = Mode::kDrop;
  std::vector<std::string> names;  // lowercase

  bool allows(std::string_view name) const;
};

}  // namespace sluice::policy
