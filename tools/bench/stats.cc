#include "bench/stats.h"

namespace sluice::bench {

std::string_view error_kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::kConnect: return "connect";
    case ErrorKind::kReset: return "reset";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kNon2xx: return "non_2xx";
    case ErrorKind::kBadResponse: return "bad_response";
  }
  return "?";
}

uint64_t Stats::total_errors() const {
  uint64_t n = 0;
  for (uint64_t e : errors) n += e;
  return n;
}

void Stats::merge(const Stats& o) {
  latency.merge(o.latency);
  ttft.merge(o.ttft);
  gap.merge(o.gap);
  wait.merge(o.wait);
  completed += o.completed;
  streams += o.streams;
  events += o.events;
  content_events += o.content_events;
  body_bytes += o.body_bytes;
  fidelity_streams += o.fidelity_streams;
  fidelity_expected += o.fidelity_expected;
  fidelity_received += o.fidelity_received;
  streams_missing_events += o.streams_missing_events;
  streams_extra_events += o.streams_extra_events;
  for (size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
  for (size_t i = 0; i < status_counts.size(); ++i) status_counts[i] += o.status_counts[i];
}

}  // namespace sluice::bench
