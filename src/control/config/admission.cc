// The `admission` section: header rules and their audit log, memory-watermark
// shedding, the global concurrency limit; and the concurrency shape that
// upstreams and models share.
#include <cmath>

#include "control/config/builder.h"

namespace sluice::control::config {
namespace {

void read_header_rules(Builder& b, const Field& f, std::vector<policy::HeaderRules::Spec>& specs) {
  const Reader& r = b.r;
  for (const Field& item : r.sequence(f)) {
    Mapping m = r.mapping(item, {"header", "pattern", "required"});
    policy::HeaderRules::Spec spec;
    const Field& header = r.require(m, "header");
    spec.header = r.text(header, "a header name");
    if (!is_http_token(spec.header))
      r.fail(header, in_quotes(spec.header) + " is not a valid header name (expected an HTTP token)");
    const Field& pattern = r.require(m, "pattern");
    spec.pattern = r.scalar(pattern, "an RE2 pattern");
    if (const Field* v = m.find("required")) spec.required = r.boolean(*v);
    // Compiled here, one by one, so a bad pattern is reported where it is written.
    if (auto one = policy::HeaderRules::compile({spec}, 0); !one) r.fail(pattern, one.status().message());
    specs.push_back(std::move(spec));
  }
}

void read_memory(const Reader& r, const Field& f, gateway::MemoryShedding& mem) {
  Mapping m = r.mapping(f, {"limit", "high", "low", "sample", "stop_accepting", "retry_after"});
  if (const Field* v = m.find("limit")) mem.limit = r.size(*v);
  if (const Field* v = m.find("high")) mem.high = r.fraction(*v);
  if (const Field* v = m.find("low")) mem.low = r.fraction(*v);
  if (mem.low >= mem.high) {
    const Field* at = m.find("low") ? m.find("low") : m.find("high");
    r.fail(*at, "low (" + std::to_string(mem.low) + ") must be below high (" + std::to_string(mem.high) +
                    "): admission resumes only under the low watermark");
  }
  if (const Field* v = m.find("sample")) {
    mem.sample = r.duration(*v);
    if (mem.sample.count() < 10) r.fail(*v, "sample must be at least 10ms");
  }
  if (const Field* v = m.find("stop_accepting")) mem.stop_accepting = r.boolean(*v);
  if (const Field* v = m.find("retry_after")) mem.retry_after = r.duration(*v);
}

}  // namespace

void read_concurrency(const Reader& r, const Field& f, gateway::Concurrency& c) {
  Mapping m = r.mapping(f, {"max", "queue", "queue_timeout", "status"});
  c.max = static_cast<uint32_t>(r.integer(r.require(m, "max"), 1, 10'000'000));
  if (const Field* v = m.find("queue")) c.queue = static_cast<uint32_t>(r.integer(*v, 0, 10'000'000));
  if (const Field* v = m.find("queue_timeout")) c.queue_timeout = r.duration(*v);
  if (const Field* v = m.find("status")) {
    c.status = static_cast<int>(r.integer(*v, 0, 999));
    if (c.status != 503 && c.status != 429)
      r.fail(*v, "status must be 503 (overloaded) or 429 (too many requests), got " + std::to_string(c.status));
  }
}

void read_admission(Builder& b, const Field* f) {
  const Reader& r = b.r;
  gateway::Admission& a = b.s.admission;
  std::vector<policy::HeaderRules::Spec> specs;
  if (f) {
    Mapping m = r.mapping(*f, {"header_rules", "audit_log", "memory", "concurrency"});
    if (const Field* v = m.find("header_rules")) read_header_rules(b, *v, specs);
    if (const Field* v = m.find("audit_log")) {
      a.audit_log = r.text(*v, "stderr, stdout, off or a file path");
      if (std::string why = check_log_destination(a.audit_log, "audit log"); !why.empty()) r.fail(*v, why);
    }
    if (const Field* v = m.find("memory")) read_memory(r, *v, a.memory);
    if (const Field* v = m.find("concurrency")) read_concurrency(r, *v, a.concurrency);
  }
  auto rules = policy::HeaderRules::compile(std::move(specs), b.s.server.max_header_value_bytes);
  if (!rules) r.fail(f ? *f : Field{}, rules.status().message());  // each pattern compiled above
  a.header_rules = std::move(*rules);
}

}  // namespace sluice::control::config
