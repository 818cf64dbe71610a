// Measures one request as its response arrives, whatever the protocol: the
// connection reports the head and each piece of decoded body with the time it
// was read; the meter splits event streams into events (llm::SseScanner),
// times the first content event and the gaps between content events, and on
// finish() adds the request to a Stats.
//
// One meter per connection, reused for every request: no allocation per
// request once its buffers have grown.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "bench/client_connection.h"
#include "bench/stats.h"
#include "llm/sse_scanner.h"

namespace sluice::bench {

// True for an event whose data has a non-empty "content" string (an OpenAI
// chat delta or message). A substring check, not a JSON parse: cheap, and
// exact for what OpenAI-compatible servers send.
bool is_content_event(std::string_view data);

// True for a content-type of text/event-stream (parameters allowed).
bool is_event_stream(std::string_view content_type);

class ResponseMeter {
 public:
  explicit ResponseMeter(size_t max_event_bytes = size_t{1} << 20) : max_event_bytes_(max_event_bytes) {}

  // Before each request. `expected_content` < 0 when unknown; `stats` null
  // for a request that is not measured (warm-up).
  void begin(int64_t start_ns, int64_t expected_content, Stats* stats);

  // From the connection.
  void on_head(int status, bool event_stream);
  bool on_body(std::string_view data, int64_t now_ns);  // false: malformed event stream

  // After the exchange; `timed_out` wins over the outcome (the timeout is
  // what closed the connection).
  void finish(Outcome outcome, bool timed_out, int64_t end_ns);

  int status() const { return status_; }
  bool event_stream() const { return event_stream_; }
  uint64_t events() const { return events_; }
  uint64_t content_events() const { return content_events_; }
  int64_t first_content_ns() const { return first_content_ns_; }  // 0 if none

 private:
  size_t max_event_bytes_;
  std::optional<llm::SseScanner> scanner_;
  bool scanner_reusable_ = false;  // the last stream ended cleanly on an event boundary

  Stats* stats_ = nullptr;
  int64_t start_ns_ = 0;
  int64_t expected_ = -1;
  int status_ = 0;
  bool event_stream_ = false;
  char last_byte_ = 0;
  uint64_t body_bytes_ = 0;
  uint64_t events_ = 0;
  uint64_t content_events_ = 0;
  int64_t first_content_ns_ = 0;
  int64_t last_content_ns_ = 0;
};

}  // namespace sluice::bench
