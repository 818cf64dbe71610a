// What a run measured: histograms and counters, one Stats per worker thread,
// merged exactly at the end.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "bench/histogram.h"

namespace sluice::bench {

enum class ErrorKind : uint8_t { kConnect, kReset, kTimeout, kNon2xx, kBadResponse };
inline constexpr size_t kErrorKinds = 5;
std::string_view error_kind_name(ErrorKind k);  // "connect", "reset", "timeout", "non_2xx", "bad_response"

struct Stats {
  // Completed requests: a 2xx response read to its end. Their clock starts at
  // the intended send time (open loop) or the send time (closed loop).
  Histogram latency;
  Histogram ttft;  // event streams: request start -> first content event
  Histogram gap;   // event streams: between consecutive content events
  Histogram wait;  // open loop: intended send time -> actual send time

  uint64_t completed = 0;
  uint64_t streams = 0;         // completed requests answered with text/event-stream
  uint64_t events = 0;          // SSE events with data (role, content, finish, [DONE], ...)
  uint64_t content_events = 0;  // events whose delta carries non-empty content
  uint64_t body_bytes = 0;      // decoded response body bytes of completed requests

  // Chunk fidelity, over streams whose expected length is known (x-mock-tokens).
  uint64_t fidelity_streams = 0;
  uint64_t fidelity_expected = 0;  // content events the server was asked for
  uint64_t fidelity_received = 0;  // content events that arrived
  uint64_t streams_missing_events = 0;
  uint64_t streams_extra_events = 0;

  std::array<uint64_t, kErrorKinds> errors{};
  std::array<uint64_t, 600> status_counts{};  // non-2xx responses by status

  uint64_t error(ErrorKind k) const { return errors[static_cast<size_t>(k)]; }
  void count_error(ErrorKind k) { ++errors[static_cast<size_t>(k)]; }
  uint64_t total_errors() const;
  void merge(const Stats& o);
};

}  // namespace sluice::bench
