#include "bench/response_meter.h"

#include "http/message.h"

namespace sluice::bench {

bool is_content_event(std::string_view data) {
  static constexpr std::string_view kKey = "\"content\":\"";
  for (size_t at = data.find(kKey); at != std::string_view::npos; at = data.find(kKey, at + 1)) {
    size_t v = at + kKey.size();
    if (v < data.size() && data[v] != '"') return true;
  }
  return false;
}

bool is_event_stream(std::string_view content_type) {
  static constexpr std::string_view kType = "text/event-stream";
  return content_type.size() >= kType.size() && http::iequals(content_type.substr(0, kType.size()), kType);
}

void ResponseMeter::begin(int64_t start_ns, int64_t expected_content, Stats* stats) {
  stats_ = stats;
  start_ns_ = start_ns;
  expected_ = expected_content;
  status_ = 0;
  event_stream_ = false;
  last_byte_ = 0;
  body_bytes_ = events_ = content_events_ = 0;
  first_content_ns_ = last_content_ns_ = 0;
}

void ResponseMeter::on_head(int status, bool event_stream) {
  status_ = status;
  event_stream_ = event_stream;
  if (!event_stream) return;
  // A scanner that ended cleanly is as good as new (a BOM aside, which only
  // matters at the very start of a stream); otherwise start afresh.
  if (!scanner_ || !scanner_reusable_) scanner_.emplace(max_event_bytes_);
  scanner_reusable_ = false;
}

bool ResponseMeter::on_body(std::string_view data, int64_t now_ns) {
  if (data.empty()) return true;
  body_bytes_ += data.size();
  last_byte_ = data.back();
  if (!event_stream_) return true;
  Status st = scanner_->feed(data, [&](const llm::SseEvent& ev) {
    if (ev.data.empty()) return;  // comments, keep-alives, stray blank lines
    ++events_;
    if (!is_content_event(ev.data)) return;
    ++content_events_;
    if (first_content_ns_ == 0) {
      first_content_ns_ = now_ns;
    } else if (stats_) {
      stats_->gap.record(now_ns - last_content_ns_);
    }
    last_content_ns_ = now_ns;
  });
  return st.is_ok();
}

void ResponseMeter::finish(Outcome outcome, bool timed_out, int64_t end_ns) {
  if (event_stream_) {
    scanner_reusable_ = outcome == Outcome::kOk && !timed_out && scanner_->pending_bytes() == 0 &&
                        (last_byte_ == '\n' || body_bytes_ == 0);
  }
  if (!stats_) return;
  Stats& s = *stats_;
  if (timed_out) {
    s.count_error(ErrorKind::kTimeout);
    return;
  }
  switch (outcome) {
    case Outcome::kConnect:
      s.count_error(ErrorKind::kConnect);
      return;
    case Outcome::kReset:
      s.count_error(ErrorKind::kReset);
      return;
    case Outcome::kBadResponse:
      s.count_error(ErrorKind::kBadResponse);
      return;
    case Outcome::kOk:
      break;
  }
  if (status_ < 200 || status_ > 299) {
    s.count_error(ErrorKind::kNon2xx);
    if (status_ > 0 && static_cast<size_t>(status_) < s.status_counts.size()) ++s.status_counts[status_];
    return;
  }
  ++s.completed;
  s.latency.record(end_ns - start_ns_);
  s.body_bytes += body_bytes_;
  if (!event_stream_) return;
  ++s.streams;
  s.events += events_;
  s.content_events += content_events_;
  if (first_content_ns_ != 0) s.ttft.record(first_content_ns_ - start_ns_);
  if (expected_ >= 0) {
    auto expected = static_cast<uint64_t>(expected_);
    ++s.fidelity_streams;
    s.fidelity_expected += expected;
    s.fidelity_received += content_events_;
    if (content_events_ < expected) ++s.streams_missing_events;
    if (content_events_ > expected) ++s.streams_extra_events;
  }
}

}  // namespace sluice::bench
