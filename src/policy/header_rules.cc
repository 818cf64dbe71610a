#include "policy/header_rules.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>

namespace sluice::policy {

namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

constexpr std::string_view kValueCapRule = "max_header_value_bytes";

}  // namespace

Result<HeaderRules> HeaderRules::compile(std::vector<Spec> specs, uint64_t max_value_bytes) {
  HeaderRules r;
  r.max_value_bytes_ = max_value_bytes;
  for (size_t i = 0; i < specs.size(); ++i) {
    Spec& s = specs[i];
    RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(1 << 20);  // a rule is a shape check, not a program
    auto re = std::make_shared<const RE2>(s.pattern, o);
    if (!re->ok()) return Status(Errc::kInvalid, "invalid pattern: " + re->error());
    Rule rule;
    rule.header = lowercase(s.header);
    rule.label = "pattern:" + rule.header;
    rule.missing_label = "required:" + rule.header;
    rule.re = std::move(re);
    rule.fast = SimplePattern::compile(s.pattern);
    rule.required = s.required;
    r.rules_.push_back(std::move(rule));
  }
  return r;
}

std::optional<HeaderViolation> HeaderRules::check(std::span<const http::Header> headers) const {
  if (max_value_bytes_ > 0) {
    for (const http::Header& h : headers)
      if (h.value.size() > max_value_bytes_)
        return HeaderViolation{431, "header_value_too_large", kValueCapRule, h.name, h.value.size()};
  }
  for (const Rule& rule : rules_) {
    bool seen = false;
    for (const http::Header& h : headers) {
      if (!http::iequals(h.name, rule.header)) continue;
      seen = true;
      const bool ok = rule.fast ? rule.fast->full_match(h.value) : RE2::FullMatch(h.value, *rule.re);
      if (!ok)
        return HeaderViolation{400, "invalid_header", rule.label, rule.header, h.value.size()};
    }
    if (!seen && rule.required) return HeaderViolation{400, "missing_header", rule.missing_label, rule.header, 0};
  }
  return std::nullopt;
}

std::vector<std::string_view> HeaderRules::labels() const {
  std::vector<std::string_view> out;
  if (max_value_bytes_ > 0) out.push_back(kValueCapRule);
  for (const Rule& r : rules_) {
    out.push_back(r.label);
    if (r.required) out.push_back(r.missing_label);
  }
  return out;
}

bool AllowHeaders::allows(std::string_view name) const {
  for (const std::string& n : names)
    if (http::iequals(n, name)) return true;
  return false;
}

}  // namespace sluice::policy
